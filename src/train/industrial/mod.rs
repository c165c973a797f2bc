//! `vigil-train industrial`: factory-line detectors fitted on a folder of good parts.
//!
//! PatchCore needs no training: [`backbone`] exports the frozen ImageNet backbone's
//! intermediate layers once, [`fit`] runs it on the good images through the runtime's own
//! feature path, keeps a [`coreset`] of the patch features as the memory bank and fits the
//! thresholds on good images held out from the bank, and [`evaluate`] scores a labelled test set
//! through the runtime's detector and installs the model. [`isstad`] trains ISSTAD's pixel
//! classifier on the same frozen backbone instead (`--method isstad`).

pub mod backbone;
pub mod coreset;
pub mod evaluate;
pub mod fit;
pub mod isstad;

use std::path::PathBuf;

/// Why an industrial command failed; each variant names the file, folder or setting.
#[derive(Debug, thiserror::Error)]
pub enum IndustrialFitError {
    #[error("{what}: {detail}: {}", path.display())]
    Data {
        what: &'static str,
        detail: String,
        path: PathBuf,
    },
    #[error(
        "image is {width}×{height}, smaller than the model's {side}×{side} input (upscaling \
         would change the scale the backbone sees): {}", path.display()
    )]
    TooSmall {
        width: usize,
        height: usize,
        side: usize,
        path: PathBuf,
    },
    #[error("{setting} = {value}: {detail}")]
    Setting {
        setting: &'static str,
        value: String,
        detail: String,
    },
    #[error("run folder already exists (choose another --out): {}", path.display())]
    RunExists { path: PathBuf },
    #[error(transparent)]
    Image(#[from] crate::io::png::ImageError),
    #[error(transparent)]
    Coreset(#[from] coreset::CoresetError),
    #[error(transparent)]
    Bank(#[from] crate::models::industrial::patchcore::bank::BankError),
    #[error(transparent)]
    Model(#[from] crate::models::industrial::IndustrialError),
    #[error(transparent)]
    Detector(#[from] crate::detector::DetectorError),
    #[error("scoring: {0}")]
    Stage(#[from] crate::pipeline::StageError),
    #[error(transparent)]
    Run(#[from] super::run::RunError),
    #[error(transparent)]
    Metrics(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Category(#[from] super::isstad::mvtec::MvtecError),
    #[error(transparent)]
    Manifest(#[from] super::manifest::ManifestWriteError),
    #[error(transparent)]
    Train(#[from] Box<super::TrainError>),
}

impl From<super::TrainError> for IndustrialFitError {
    fn from(err: super::TrainError) -> Self {
        Self::Train(Box::new(err))
    }
}
