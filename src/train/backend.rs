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

/// The CUDA device, after checking that the driver, NVRTC and the CUDA headers are there.
///
/// cudarc loads the driver lazily and panics, in cubecl's device thread, when it is missing;
/// the main thread would then wait forever. Checking first with cudarc's own loaders (the same
/// file names the backend will try) turns each missing piece into an error that says what to
/// install.
#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, BackendError> {
    let summary = cuda_preflight().map_err(BackendError::NoCudaDriver)?;
    log::info!("CUDA: {summary}");
    Ok(Device::cuda(0))
}

#[cfg(feature = "cuda")]
fn cuda_preflight() -> Result<String, String> {
    use cudarc::{driver, nvrtc};
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if !unsafe { driver::sys::is_culib_present() } {
        return Err(
            "libcuda.so not found: is the NVIDIA driver installed, and is this a GPU \
                    machine? (the search follows LD_LIBRARY_PATH)"
                .into(),
        );
    }
    let probe = std::panic::catch_unwind(|| -> Result<(i32, i32), driver::DriverError> {
        driver::result::init()?;
        let devices = driver::result::device::get_count()?;
        let mut version = 0;
        // SAFETY: writes one int through a valid pointer.
        unsafe { driver::sys::cuDriverGetVersion(&mut version) }.result()?;
        Ok((devices, version))
    });
    let (devices, version) = match probe {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => return Err(format!("the CUDA driver failed to initialise: {err}")),
        Err(_) => return Err("the CUDA driver failed to initialise (cudarc panicked)".into()),
    };
    if devices < 1 {
        return Err("the CUDA driver loaded but sees no GPU".into());
    }
    // SAFETY: only tries to dlopen libnvrtc by its usual names.
    if !unsafe { nvrtc::sys::is_culib_present() } {
        return Err(
            "libnvrtc not found: kernels are compiled at run time with NVRTC; install \
                    the CUDA toolkit or the nvidia-cuda-nvrtc wheel and put its lib folder on \
                    LD_LIBRARY_PATH"
                .into(),
        );
    }
    let Some(cuda_path) = cubecl_cuda::install::cuda_path() else {
        return Err(
            "CUDA headers not found: NVRTC needs $CUDA_PATH/include (default \
                    /usr/local/cuda); set CUDA_PATH"
                .into(),
        );
    };
    Ok(format!(
        "driver {}.{}, {devices} GPU(s), headers in {}",
        version / 1000,
        (version % 1000) / 10,
        cuda_path.display()
    ))
}
