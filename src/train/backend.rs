//! Picking the burn device at run time: flex on any CPU, or CUDA when built with `cuda`.

use burn::tensor::Device;

/// The backend a training run uses, chosen on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's portable CPU backend.
    Flex,
    /// NVIDIA GPUs through burn-cuda (needs the `cuda` feature and a CUDA driver).
    Cuda,
}

/// Why a backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("this vigil-train was built without CUDA support: rebuild with `--features cuda`")]
    CudaNotBuilt,
    #[error("no usable CUDA driver: {0}")]
    NoCudaDriver(String),
}

/// The training device (with autodiff) for `kind`.
pub fn training_device(kind: BackendKind) -> Result<Device, BackendError> {
    Ok(inference_device(kind)?.autodiff())
}

/// The device without autodiff, for evaluation and export.
pub fn inference_device(kind: BackendKind) -> Result<Device, BackendError> {
    match kind {
        BackendKind::Flex => Ok(Device::flex()),
        BackendKind::Cuda => cuda_device(),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, BackendError> {
    Err(BackendError::CudaNotBuilt)
}
