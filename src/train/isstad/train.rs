//! Training ISSTAD-edge in the paper's two stages, on normal images only.
//!
//! Stage 1 trains the masked autoencoder (75 % of patches hidden, MSE on the hidden ones) on
//! random resized crops and flips. Stage 2 freezes the encoder, keeps the stage-1 decoder
//! blocks, adds the rest and the pixel classifier, and learns to find and repair the
//! corruptions of [`super::corrupt`]. Each stage keeps the epoch that does best on held-out
//! *normal* images (stage 1: masked MSE; stage 2: pixel AUROC of the anomaly map on their
//! corruptions); no defect image is ever looked at, where the authors' code reported the best
//! test epoch.
//!
//! Two departures from the authors' recipe, both because there are no pretrained MAE weights
//! here: the encoder trains from scratch, and stage 1 normalises with mean 0.5 / std 0.5 like
//! stage 2 (the code switches from ImageNet statistics, harmless for a fine-tuned ViT-L but a
//! distribution shift for a small encoder frozen after stage 1).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::AdamWConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::corrupt::{CorruptError, CorruptionConfig, corrupt, mask_to_label};
use super::losses::{masked_patch_mse, pixel_loss};
use super::model::{EncoderKind, Isstad, IsstadConfig, Mae, PatchMask, patchify};
use super::pretrained::PretrainedEncoder;
use crate::models::industrial::anomaly_map::{AnomalyMapper, ImageScore};
use crate::rng::SplitMix64;
use crate::train::TrainError;
use crate::train::backend::{BackendKind, inference_device, training_device};
use crate::train::epoch::{MetricsLog, save, scalar, train_epoch};
use crate::train::image::{Crop, Rgb8, normalised_chw};
use crate::train::mobilenet::MobileNetV2;
use crate::train::pytorch::read_state_dict;
use crate::train::run::RunDir;

/// Hyper-parameters of an ISSTAD run. Stage 2 follows the paper (AdamW lr 1e-3, betas
/// (0.9, 0.95), weight decay 0.05, cosine annealing with a 30-epoch period to 1e-6, batch 16,
/// seed 111); stage 1 uses MAE's warm-up and half-cosine schedule at a from-scratch rate.
#[derive(Config, Debug)]
pub struct IsstadTrainConfig {
    pub model: IsstadConfig,
    pub corruption: CorruptionConfig,
    #[config(default = 60)]
    pub mae_epochs: usize,
    #[config(default = 5)]
    pub mae_warmup_epochs: usize,
    #[config(default = 1e-3)]
    pub mae_learning_rate: f64,
    #[config(default = 40)]
    pub pixel_epochs: usize,
    #[config(default = 1e-3)]
    pub pixel_learning_rate: f64,
    /// `CosineAnnealingLR(T_max)`, stepped per epoch; the rate cycles past it, as in the code.
    #[config(default = 30)]
    pub cosine_period_epochs: usize,
    #[config(default = 1e-6)]
    pub min_learning_rate: f64,
    #[config(default = 16)]
    pub batch_size: usize,
    #[config(default = 0.05)]
    pub weight_decay: f32,
    /// Smallest share of the random resized crops of stage 1 (torchvision's scale=(0.2, 1)).
    #[config(default = 0.2)]
    pub min_crop_area: f64,
    #[config(default = 111)]
    pub seed: u64,
}

/// Normal images, kept at full resolution: the corruption works on them before resizing.
#[derive(Debug, Clone)]
pub struct NormalImages {
    pub files: Vec<PathBuf>,
    pub images: Vec<Rgb8>,
}

impl NormalImages {
    /// Reads the PNGs, naming the file that fails.
    pub fn read(files: Vec<PathBuf>) -> Result<Self, TrainError> {
        let images = files
            .iter()
            .map(|file| crate::train::image::read_png(file))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { files, images })
    }
}

/// What `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsstadRunConfig {
    pub family: String,
    /// The MVTec-layout category folder.
    pub data: PathBuf,
    pub training_files: Vec<PathBuf>,
    pub validation_files: Vec<PathBuf>,
    pub backend: BackendKind,
    pub train: IsstadTrainConfig,
    /// torchvision's weights the pretrained encoder came from (`None` for the scratch MAE).
    #[serde(default)]
    pub backbone_weights: Option<PathBuf>,
}

/// The selected epoch of each stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsstadTrainSummary {
    /// Stage 1's selected epoch and its validation MSE; `None` on a pretrained encoder.
    pub mae_best_epoch: Option<usize>,
    pub mae_validation_mse: Option<f64>,
    pub pixel_best_epoch: usize,
    /// Pixel AUROC of the anomaly map on the validation images' corruptions.
    pub pixel_validation_auroc: f64,
    pub mae_seconds: f64,
    pub pixel_seconds: f64,
}

pub const MAE_FILE: &str = "mae.bpk";
pub const ISSTAD_FILE: &str = "isstad.bpk";

/// The Gaussian σ of the paper's anomaly map.
pub const MAP_SIGMA: f32 = 4.0;

/// Trains into a new run folder: both stages on the scratch MAE, stage 2 alone on a pretrained
/// encoder (whose torchvision weights `backbone_weights` names).
pub fn train(
    data: &Path,
    training: &NormalImages,
    validation: &NormalImages,
    run_path: &Path,
    backend: BackendKind,
    config: IsstadTrainConfig,
    backbone_weights: Option<&Path>,
) -> Result<IsstadTrainSummary, TrainError> {
    config.model.check().map_err(TrainError::Config)?;
    // A missing or foreign weights file fails before the run folder exists.
    let backbone = match (config.model.encoder, backbone_weights) {
        (EncoderKind::Mae, _) => None,
        (EncoderKind::MobileNetV2, Some(weights)) => Some(read_mobilenet(weights)?),
        (EncoderKind::MobileNetV2, None) => {
            return Err(TrainError::Config(
                "the MobileNetV2 encoder needs torchvision's weights (scripts/fetch-mobilenet.sh)"
                    .into(),
            ));
        }
    };
    if training.images.is_empty() || validation.images.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: {} training and {} validation images; both stages need some of each",
            data.display(),
            training.images.len(),
            validation.images.len()
        )));
    }
    // A backend that cannot start fails before the run folder exists.
    let device = training_device(backend)?;
    let eval_device = inference_device(backend)?;
    let run = RunDir::create(run_path)?;
    let run_config = IsstadRunConfig {
        family: "isstad".into(),
        data: data.to_path_buf(),
        training_files: training.files.clone(),
        validation_files: validation.files.clone(),
        backend,
        train: config,
        backbone_weights: backbone_weights
            .filter(|_| backbone.is_some())
            .map(Path::to_path_buf),
    };
    run.write_json("config.json", &run_config)?;
    let config = &run_config.train;
    device.seed(config.seed);

    let clock = Instant::now();
    let (model, mae_best_epoch, mae_validation_mse) = match backbone {
        None => {
            let (epoch, mse) =
                train_mae(&run, config, training, validation, &device, &eval_device)?;
            let mae = load_module(config.model.init_mae(&device), &run.file(MAE_FILE))?;
            (
                config.model.init_isstad(mae, &device),
                Some(epoch),
                Some(mse),
            )
        }
        Some(net) => {
            let encoder = pretrained_encoder(net, config, training, &device);
            (
                config.model.init_isstad_pretrained(encoder, &device),
                None,
                None,
            )
        }
    };
    let mae_seconds = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let (pixel_best_epoch, pixel_validation_auroc) = train_pixels(
        &run,
        config,
        model,
        training,
        validation,
        &device,
        &eval_device,
    )?;
    let summary = IsstadTrainSummary {
        mae_best_epoch,
        mae_validation_mse,
        pixel_best_epoch,
        pixel_validation_auroc,
        mae_seconds,
        pixel_seconds: clock.elapsed().as_secs_f64(),
    };
    run.write_json("summary.json", &summary)?;
    Ok(summary)
}

fn adamw(config: &IsstadTrainConfig) -> burn::optim::ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.95)
        .with_weight_decay(config.weight_decay)
        .init()
}

/// MAE's schedule: linear warm-up, then a half cosine to zero, per step.
fn mae_learning_rate(
    config: &IsstadTrainConfig,
    step: usize,
    total_steps: usize,
    warmup_steps: usize,
) -> f64 {
    let peak = config.mae_learning_rate;
    if step < warmup_steps {
        return peak * (step + 1) as f64 / warmup_steps as f64;
    }
    let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
    let progress = (step - warmup_steps) as f64 / span;
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

/// torch's `CosineAnnealingLR(T_max, eta_min)` after `epoch` epochs (periodic past `T_max`).
fn pixel_learning_rate(config: &IsstadTrainConfig, epoch: usize) -> f64 {
    let period = config.cosine_period_epochs.max(1) as f64;
    let (peak, floor) = (config.pixel_learning_rate, config.min_learning_rate);
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / period).cos())
}

/// One epoch's batches of image indices, in a seeded order, each with its own seed for the
/// random crops, masks and corruptions drawn inside it.
fn batches_of(count: usize, batch_size: usize, seed: u64, epoch: usize) -> Vec<(Vec<usize>, u64)> {
    let mut rng = SplitMix64::derive(seed, epoch as u64);
    let mut order: Vec<usize> = (0..count).collect();
    rng.shuffle(&mut order);
    order
        .chunks(batch_size.max(1))
        .map(|chunk| (chunk.to_vec(), rng.next_u64()))
        .collect()
}

fn image_batch(values: Vec<f32>, batch: usize, side: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, [batch, 3, side, side]), device)
}

/// torchvision's `RandomResizedCrop(scale=(min_area, 1), ratio=(3/4, 4/3))`: ten tries at a
/// random area and aspect, then the whole image.
fn random_resized_crop(image: &Rgb8, min_area: f64, rng: &mut SplitMix64) -> Crop {
    let (width, height) = (image.width, image.height);
    let area = (width * height) as f64;
    let (log_low, log_high) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.range(min_area, 1.0);
        let ratio = rng.range(log_low, log_high).exp();
        let w = (target * ratio).sqrt().round() as usize;
        let h = (target / ratio).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            return Crop {
                x: rng.below(width - w + 1),
                y: rng.below(height - h + 1),
                width: w,
                height: h,
            };
        }
    }
    Crop::whole(width, height)
}

/// Stage 1: the masked autoencoder. Returns the selected epoch and its validation MSE.
fn train_mae(
    run: &RunDir,
    config: &IsstadTrainConfig,
    training: &NormalImages,
    validation: &NormalImages,
    device: &Device,
    eval_device: &Device,
) -> Result<(usize, f64), TrainError> {
    let model_config = &config.model;
    let side = model_config.image_size;
    let mut mae = model_config.init_mae(device);
    let mut optimizer = adamw(config);
    let steps_per_epoch = training.images.len().div_ceil(config.batch_size.max(1));
    let total_steps = steps_per_epoch * config.mae_epochs;
    let warmup_steps = steps_per_epoch * config.mae_warmup_epochs;
    let mut log = MetricsLog::create(
        run,
        "mae.csv",
        "epoch,loss,validation_mse,learning_rate,images_per_second",
    )?;
    let (mut best_epoch, mut best_mse) = (0, f64::INFINITY);
    for epoch in 1..=config.mae_epochs {
        let first_step = (epoch - 1) * steps_per_epoch;
        let batches = batches_of(training.images.len(), config.batch_size, config.seed, epoch);
        let (trained, means, rate) = train_epoch(
            mae,
            &mut optimizer,
            batches,
            |step| mae_learning_rate(config, first_step + step, total_steps, warmup_steps),
            epoch,
            |mae: &Mae, (indices, seed)| {
                let mut rng = SplitMix64::new(seed);
                let mut values = Vec::with_capacity(indices.len() * 3 * side * side);
                for &i in &indices {
                    let image = &training.images[i];
                    let crop = random_resized_crop(image, config.min_crop_area, &mut rng);
                    let mirror = rng.uniform() < 0.5;
                    values.extend(normalised_chw(image, crop, side, mirror));
                }
                let images = image_batch(values, indices.len(), side, device);
                let mask = PatchMask::random(
                    indices.len(),
                    model_config.patches(),
                    model_config.visible_patches(),
                    &mut rng,
                );
                let predicted = mae.forward(images.clone(), &mask);
                let target = patchify(images, model_config.patch_size);
                let loss = masked_patch_mse(predicted, target, mask.hidden(device));
                (vec![loss], indices.len())
            },
        )?;
        mae = trained;
        let mse = mae_validation_mse(&mae.valid(), config, validation, eval_device)?;
        let learning_rate = mae_learning_rate(config, first_step, total_steps, warmup_steps);
        log.row(&format!(
            "{epoch},{},{mse},{learning_rate:.3e},{rate:.2}",
            means[0]
        ))?;
        log::info!(
            "MAE epoch {epoch}/{}: loss {:.4}, validation masked MSE {mse:.4}, {rate:.1} images/s",
            config.mae_epochs,
            means[0]
        );
        if mse < best_mse {
            (best_epoch, best_mse) = (epoch, mse);
            save(&mae.valid(), &run.file(MAE_FILE))?;
        }
    }
    if best_epoch == 0 {
        return Err(TrainError::Config("stage 1 ran no epoch".into()));
    }
    Ok((best_epoch, best_mse))
}

/// Masked MSE on the whole validation images, with masks fixed by the seed so that epochs
/// compare on the same draws.
fn mae_validation_mse(
    mae: &Mae,
    config: &IsstadTrainConfig,
    validation: &NormalImages,
    device: &Device,
) -> Result<f64, TrainError> {
    let model_config = &config.model;
    let side = model_config.image_size;
    let mut rng = SplitMix64::derive(config.seed, 0x7a1d);
    let mut total = 0.0;
    for image in &validation.images {
        let values = normalised_chw(image, Crop::whole(image.width, image.height), side, false);
        let images = image_batch(values, 1, side, device);
        let mask = PatchMask::random(
            1,
            model_config.patches(),
            model_config.visible_patches(),
            &mut rng,
        );
        let predicted = mae.forward(images.clone(), &mask);
        let target = patchify(images, model_config.patch_size);
        total += scalar(&masked_patch_mse(predicted, target, mask.hidden(device)))?;
    }
    Ok(total / validation.images.len().max(1) as f64)
}

/// One stage-2 sample: the (maybe) corrupted image, its clean version, and the pixel label,
/// all at the model's side.
struct PixelSample {
    corrupted: Vec<f32>,
    clean: Vec<f32>,
    label: Vec<f32>,
}

fn pixel_sample(
    image: &Rgb8,
    config: &IsstadTrainConfig,
    rng: &mut SplitMix64,
) -> Result<PixelSample, TrainError> {
    let side = config.model.image_size;
    let whole = Crop::whole(image.width, image.height);
    let corruption_error = |e: CorruptError| TrainError::Config(format!("corruption: {e}"));
    let corrupted = corrupt(image, &config.corruption, rng).map_err(corruption_error)?;
    let label = mask_to_label(&corrupted.mask, image.width, image.height, side)
        .map_err(corruption_error)?;
    Ok(PixelSample {
        corrupted: normalised_chw(&corrupted.image, whole, side, false),
        clean: normalised_chw(image, whole, side, false),
        label,
    })
}

/// Refuses corruption settings or training images the corruption cannot work on, before
/// stage 2 starts, so that the training loop can rely on every draw succeeding.
fn check_corruption(config: &IsstadTrainConfig, training: &NormalImages) -> Result<(), TrainError> {
    let mut rng = SplitMix64::new(config.seed);
    for (image, file) in training.images.iter().zip(&training.files) {
        pixel_sample(image, config, &mut rng)
            .map_err(|e| TrainError::Config(format!("{}: {e}", file.display())))?;
    }
    Ok(())
}

/// A stage-2 sample inside the training loop. [`check_corruption`] has run every image
/// through the corruption, so a failure here is unreachable; it falls back to the clean image
/// with an all-normal label rather than stop the run.
fn sample_or_clean(image: &Rgb8, config: &IsstadTrainConfig, rng: &mut SplitMix64) -> PixelSample {
    pixel_sample(image, config, rng).unwrap_or_else(|e| {
        log::warn!("corruption failed ({e}); training on the clean image");
        let side = config.model.image_size;
        let clean = normalised_chw(image, Crop::whole(image.width, image.height), side, false);
        PixelSample {
            corrupted: clean.clone(),
            clean,
            label: vec![0.0; side * side],
        }
    })
}

/// torchvision's MobileNetV2 from its `.pth`, naming the file when it is not one.
fn read_mobilenet(weights: &Path) -> Result<MobileNetV2, TrainError> {
    let state = read_state_dict(weights)?;
    MobileNetV2::from_torchvision(&state, &Device::flex())
        .map_err(|e| TrainError::Config(format!("{}: {e}", weights.display())))
}

/// The frozen pretrained encoder, its token standardisation fitted on the clean training
/// images.
fn pretrained_encoder(
    net: MobileNetV2,
    config: &IsstadTrainConfig,
    training: &NormalImages,
    device: &Device,
) -> PretrainedEncoder {
    let side = config.model.image_size;
    // Loaded on the host, moved to the training device, frozen first so that its batch norms
    // use their ImageNet statistics while the standardisation is measured.
    let encoder = PretrainedEncoder::from_mobilenet(net, side, &Device::flex())
        .to_device(device)
        .freeze();
    let batches = training
        .images
        .chunks(config.batch_size.max(1))
        .map(|chunk| {
            let mut values = Vec::with_capacity(chunk.len() * 3 * side * side);
            for image in chunk {
                let whole = Crop::whole(image.width, image.height);
                values.extend(normalised_chw(image, whole, side, false));
            }
            image_batch(values, chunk.len(), side, device)
        });
    encoder.standardise_on(batches)
}

/// Stage 2 from `model` (its encoder is frozen here). Returns the selected epoch and its
/// validation pixel AUROC.
fn train_pixels(
    run: &RunDir,
    config: &IsstadTrainConfig,
    mut model: Isstad,
    training: &NormalImages,
    validation: &NormalImages,
    device: &Device,
    eval_device: &Device,
) -> Result<(usize, f64), TrainError> {
    let model_config = &config.model;
    let (side, patch) = (model_config.image_size, model_config.patch_size);
    model.encoder = model.encoder.freeze();
    let mut optimizer = adamw(config);
    // Every image and the corruption settings were checked before the first epoch (in
    // `validation_samples` and by `check_corruption`), so a sample cannot fail inside the loop.
    check_corruption(config, training)?;
    let validation_samples = validation_samples(config, validation)?;
    let mut log = MetricsLog::create(
        run,
        "pixel.csv",
        "epoch,loss,cross_entropy,mse,ssim,validation_pixel_auroc,learning_rate,images_per_second",
    )?;
    let (mut best_epoch, mut best_auroc) = (0, f64::NEG_INFINITY);
    for epoch in 1..=config.pixel_epochs {
        let learning_rate = pixel_learning_rate(config, epoch - 1);
        let batches = batches_of(
            training.images.len(),
            config.batch_size,
            config.seed ^ 0x9e1,
            epoch,
        );
        let (trained, means, rate) = train_epoch(
            model,
            &mut optimizer,
            batches,
            |_| learning_rate,
            epoch,
            |model: &Isstad, (indices, seed)| {
                let mut rng = SplitMix64::new(seed);
                let b = indices.len();
                let (mut corrupted, mut clean, mut labels) = (Vec::new(), Vec::new(), Vec::new());
                for &i in &indices {
                    let sample = sample_or_clean(&training.images[i], config, &mut rng);
                    corrupted.extend(sample.corrupted);
                    clean.extend(sample.clean);
                    labels.extend(sample.label);
                }
                let labels: Tensor<4> =
                    Tensor::from_data(TensorData::new(labels, [b, 1, side, side]), device);
                let encoded = model
                    .encoder
                    .forward(image_batch(corrupted, b, side, device))
                    .detach();
                let (logits, reconstruction) = model.decoder.forward_full(encoded);
                let loss = pixel_loss(
                    logits,
                    patchify(labels, patch),
                    reconstruction,
                    patchify(image_batch(clean, b, side, device), patch),
                    patch,
                );
                (vec![loss.total, loss.cross_entropy, loss.mse, loss.ssim], b)
            },
        )?;
        model = trained;
        let auroc = pixel_validation_auroc(&model.valid(), &validation_samples, side, eval_device)?;
        log.row(&format!(
            "{epoch},{},{},{},{},{auroc},{learning_rate:.3e},{rate:.2}",
            means[0], means[1], means[2], means[3]
        ))?;
        log::info!(
            "pixel epoch {epoch}/{}: loss {:.4} (ce {:.4}, mse {:.4}, ssim {:.3}), validation pixel AUROC {auroc:.4}, {rate:.1} images/s",
            config.pixel_epochs,
            means[0],
            means[1],
            means[2],
            means[3]
        );
        if auroc > best_auroc {
            (best_epoch, best_auroc) = (epoch, auroc);
            save(&model.valid(), &run.file(ISSTAD_FILE))?;
        }
    }
    if best_epoch == 0 {
        return Err(TrainError::Config("stage 2 ran no epoch".into()));
    }
    Ok((best_epoch, best_auroc))
}

/// The validation images with corruptions drawn once, so every epoch is judged on the same.
fn validation_samples(
    config: &IsstadTrainConfig,
    validation: &NormalImages,
) -> Result<Vec<PixelSample>, TrainError> {
    let mut rng = SplitMix64::derive(config.seed, 0x5a11);
    validation
        .images
        .iter()
        .map(|image| pixel_sample(image, config, &mut rng))
        .collect()
}

/// Pooled pixel AUROC of the runtime's anomaly map against the corruption labels.
fn pixel_validation_auroc(
    model: &Isstad,
    samples: &[PixelSample],
    side: usize,
    device: &Device,
) -> Result<f64, TrainError> {
    let mut mapper = AnomalyMapper::new(MAP_SIGMA, ImageScore::Mean)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let mut map = vec![0.0f32; side * side];
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for sample in samples {
        let [p, r] = pixel_outputs(model, sample.corrupted.clone(), side, device)?;
        mapper
            .map(&p, &r, side, &mut map)
            .map_err(|e| TrainError::Config(format!("validation anomaly map: {e}")))?;
        scores.extend(map.iter().map(|&v| f64::from(v)));
        labels.extend(sample.label.iter().map(|&v| v > 0.5));
    }
    if !labels.iter().any(|&l| l) {
        // No validation image drew a corruption: rank on nothing rather than fail the run.
        return Ok(0.5);
    }
    crate::eval::roc_auc(&scores, &labels)
        .map_err(|e| TrainError::Config(format!("validation AUROC: {e}")))
}

/// P and R of one normalised `[3, S, S]` image, as host vectors.
pub fn pixel_outputs(
    model: &Isstad,
    image: Vec<f32>,
    side: usize,
    device: &Device,
) -> Result<[Vec<f32>; 2], TrainError> {
    let outputs = model.pixel_outputs(image_batch(image, 1, side, device));
    let read = |t: Tensor<3>| {
        t.into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| TrainError::Device(format!("{e:?}")))
    };
    Ok([
        read(outputs.probability)?,
        read(outputs.reconstruction_error)?,
    ])
}

fn load_module<M: Module>(module: M, path: &Path) -> Result<M, TrainError> {
    module.try_load_file(path).map_err(|e| {
        TrainError::Checkpoint(format!(
            "{}: {e} (has the run finished training?)",
            path.display()
        ))
    })
}

/// A run's trained stage-2 network, on the CPU, for export and evaluation.
pub struct TrainedIsstad {
    pub config: IsstadRunConfig,
    pub model: Isstad,
}

pub fn load_trained(run: &RunDir) -> Result<TrainedIsstad, TrainError> {
    let config: IsstadRunConfig = run.read_json("config.json")?;
    let device = inference_device(BackendKind::Flex)?;
    let skeleton = config.train.model.isstad_skeleton(&device);
    let model = load_module(skeleton, &run.file(ISSTAD_FILE))?;
    Ok(TrainedIsstad { config, model })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_warm_up_decay_and_cycle_like_the_references() {
        let config = IsstadTrainConfig::new(IsstadConfig::new(), CorruptionConfig::new());
        // Warm-up reaches the peak at its last step, then the half cosine ends at zero.
        assert!((mae_learning_rate(&config, 9, 100, 10) - 1e-3).abs() < 1e-12);
        assert!((mae_learning_rate(&config, 55, 100, 10) - 0.5e-3).abs() < 1e-9);
        assert!(mae_learning_rate(&config, 100, 100, 10) < 1e-12);
        // CosineAnnealingLR: the floor at T_max, back to the peak at 2·T_max.
        assert!((pixel_learning_rate(&config, 0) - 1e-3).abs() < 1e-12);
        assert!((pixel_learning_rate(&config, 30) - 1e-6).abs() < 1e-12);
        assert!((pixel_learning_rate(&config, 60) - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn random_resized_crops_stay_inside_the_image_and_cover_the_area_range() {
        let image = Rgb8 {
            width: 64,
            height: 48,
            pixels: vec![0; 64 * 48 * 3],
        };
        let mut rng = SplitMix64::new(1);
        let mut smallest = f64::INFINITY;
        for _ in 0..500 {
            let crop = random_resized_crop(&image, 0.2, &mut rng);
            assert!(
                crop.x + crop.width <= 64 && crop.y + crop.height <= 48,
                "{crop:?}"
            );
            smallest = smallest.min((crop.width * crop.height) as f64 / (64.0 * 48.0));
        }
        assert!(smallest < 0.3 && smallest > 0.15, "{smallest}");
    }

    #[test]
    fn every_image_is_in_exactly_one_batch_per_epoch() {
        let batches = batches_of(37, 8, 5, 2);
        let mut seen: Vec<usize> = batches.iter().flat_map(|(b, _)| b.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..37).collect::<Vec<_>>());
        assert_eq!(batches.len(), 5);
        assert_ne!(batches_of(37, 8, 5, 3)[0].0, batches[0].0);
    }
}
