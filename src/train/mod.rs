//! The training companion behind `vigil-train` (cargo feature `train`).
//!
//! The data flow mirrors the runtime's hand-offs, each checked: a family's burn module trains
//! on a [`backend`] chosen at run time into a [`run`] folder, [`onnx`] writes its inference
//! graph, [`parity`] runs both on the same input, [`quantize`] rewrites the linear layers into
//! the int8 form tract runs on int8 kernels, and evaluation goes through the runtime's own
//! tract path and [`crate::eval`] metrics.

pub mod audio_events;
pub mod backend;
pub mod epoch;
pub mod event_head;
pub mod fers;
pub mod image;
pub mod industrial;
pub mod isstad;
pub mod manifest;
pub mod mavd;
pub mod mobilenet;
pub mod nn;
pub mod onnx;
pub mod parity;
pub mod plot;
pub use crate::io::pytorch;
pub mod quantize;
pub mod release;
pub use crate::rng;
pub mod run;
pub mod ssim;
pub mod toy;

/// Why a training command failed. Each variant carries what names the bad input.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    #[error("backend failure: {0}")]
    Device(String),
    #[error(transparent)]
    Data(#[from] toy::data::DataError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error(transparent)]
    Export(#[from] onnx::ExportError),
    #[error(transparent)]
    Parity(#[from] parity::ParityError),
    #[error(transparent)]
    Quantize(#[from] quantize::QuantizeError),
    #[error(transparent)]
    Torch(#[from] pytorch::TorchReadError),
    #[error(transparent)]
    MavdWeights(#[from] mavd::weights::WeightsError),
    #[error(transparent)]
    Window(#[from] crate::models::violence::window::WindowError),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Hsi(#[from] crate::hsi::HsiError),
    #[error("checkpoint {0}")]
    Checkpoint(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("training diverged in epoch {epoch}: loss is {loss}")]
    Diverged { epoch: usize, loss: f64 },
}
