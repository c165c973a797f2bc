//! Checks against independent references: onnxruntime's outputs of every shipped network,
//! numpy/scipy/scikit-learn fixtures for the detectors, readers, log-mel front end and metrics,
//! PyTorch's tensors for the checkpoint reader and burn's layers. This binary is also the one
//! the test command runs for aarch64 under qemu-user (the training modules need `train`,
//! which the ARM build leaves out).

#[path = "../common/mod.rs"]
mod common;

mod eval_metrics;
mod hsi_detectors;
mod hsi_library;
mod hsi_readers;
mod mel_reference;
mod networks_parity;
#[cfg(feature = "train")]
mod torch_reference;
#[cfg(feature = "train")]
mod train_parity;
