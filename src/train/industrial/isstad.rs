//! `industrial fit --method isstad`: ISSTAD's stage 2 (the pixel classifier after every decoder
//! block, the reconstruction head, the authors' corruption and loss) on the frozen ImageNet
//! MobileNetV2 (or, `--encoder mae`, on the paper's MAE trained here from scratch first),
//! fitted on a folder of good parts. The run folder is an ISSTAD run: `industrial
//! eval` exports it (fp32 and int8), scores it at thresholds from the held-out good images and
//! installs it, through the ISSTAD pipeline.

use std::path::{Path, PathBuf};

use super::IndustrialFitError;
use super::fit::{ValidationSource, split_good_images};
use crate::train::backend::BackendKind;
use crate::train::isstad::corrupt::CorruptionConfig;
use crate::train::isstad::model::{EncoderKind, IsstadConfig};
use crate::train::isstad::train::{IsstadTrainConfig, IsstadTrainSummary, NormalImages, train};

/// What `industrial fit --method isstad` takes.
#[derive(Debug, Clone)]
pub struct IsstadFitConfig {
    /// An MVTec AD category (its `train/good`) or a folder of good PNGs.
    pub data: PathBuf,
    /// torchvision's MobileNetV2 ImageNet weights.
    pub weights: PathBuf,
    /// As PatchCore's fit: this folder, else `validation/good`, else every n-th good image.
    pub validation: Option<PathBuf>,
    pub validation_every: usize,
    /// The frozen encoder: the ImageNet MobileNetV2 (the default) or the paper's MAE trained
    /// from scratch here in a first stage of `mae_epochs`.
    pub encoder: EncoderKind,
    pub mae_epochs: usize,
    /// Epochs of the pixel classifier (stage 2).
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub backend: BackendKind,
}

/// What the fit did.
#[derive(Debug, Clone)]
pub struct IsstadFit {
    pub summary: IsstadTrainSummary,
    pub train_images: usize,
    pub validation_images: usize,
    pub validation_source: ValidationSource,
}

/// Trains the pixel classifier into the new run folder `out`. Every image is read and checked
/// (readable, at least the model's input side) before the folder is written.
pub fn fit(config: &IsstadFitConfig, out: &Path) -> Result<IsstadFit, IndustrialFitError> {
    if out.exists() {
        return Err(IndustrialFitError::RunExists {
            path: out.to_path_buf(),
        });
    }
    let model = match config.encoder {
        EncoderKind::MobileNetV2 => IsstadConfig::pretrained(),
        EncoderKind::Mae => IsstadConfig::new(),
    };
    let (train_files, validation_files, validation_source) = split_good_images(
        &config.data,
        config.validation.as_deref(),
        config.validation_every,
    )?;
    let side = model.image_size;
    let read = |files: Vec<PathBuf>| -> Result<NormalImages, IndustrialFitError> {
        let images = NormalImages::read(files)?;
        for (image, path) in images.images.iter().zip(&images.files) {
            if image.width < side || image.height < side {
                return Err(IndustrialFitError::TooSmall {
                    width: image.width,
                    height: image.height,
                    side,
                    path: path.clone(),
                });
            }
        }
        Ok(images)
    };
    let training = read(train_files)?;
    let validation = read(validation_files)?;
    let train_config = IsstadTrainConfig::new(model, CorruptionConfig::new())
        .with_mae_epochs(config.mae_epochs)
        .with_pixel_epochs(config.epochs)
        .with_batch_size(config.batch_size)
        .with_seed(config.seed);
    let summary = train(
        &config.data,
        &training,
        &validation,
        out,
        config.backend,
        train_config,
        (config.encoder == EncoderKind::MobileNetV2).then_some(config.weights.as_path()),
    )?;
    Ok(IsstadFit {
        summary,
        train_images: training.images.len(),
        validation_images: validation.images.len(),
        validation_source,
    })
}

/// Whether a run folder holds an ISSTAD run (its `config.json` says family `isstad`) rather
/// than a PatchCore fit.
pub fn is_isstad_run(run: &crate::train::run::RunDir) -> Result<bool, IndustrialFitError> {
    let config: serde_json::Value = run.read_json("config.json")?;
    Ok(config.get("family").and_then(serde_json::Value::as_str) == Some("isstad"))
}
