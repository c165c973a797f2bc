//! `vigil-train industrial fit --method patchcore`: a PatchCore detector from a folder of good
//! images, in minutes on the box's CPU.
//!
//! 1. The good images are listed (an MVTec AD category's `train/good`, or a plain folder of
//!    PNGs) with the good images held out to fit the thresholds (a folder of their own, or
//!    every `validation_every`-th), and each one is read and checked *before* the run folder is
//!    made, so a corrupt or undersized file fails the fit with its name and leaves nothing
//!    behind.
//! 2. The rest go through the runtime's own path (the same resize and normalisation as a camera
//!    frame, the backbone on tract, [`PatchFeatures`]) and a greedy coreset of their patch
//!    features becomes the memory bank (`bank.bank`).
//! 3. The held-out good images are scored by the runtime's detector with that bank; the image
//!    threshold is the larger of their highest score and the (1 − target) quantile of a normal
//!    fitted to their scores, so that a bank fitted on few images does not get a threshold at
//!    the edge of its handful of samples; the pixel threshold is the largest pixel-map value
//!    over them (no good part is boxed).
//!
//! `config.json` in the run folder records what was done, with the thresholds, the
//! validation scores and the false-alarm rates the threshold implies.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::IndustrialFitError;
use super::coreset::{CoresetConfig, greedy_coreset};
use crate::detector::Plan;
use crate::detector::manifest::sha256_file;
use crate::detector::manifest::{ElementType, FileSpec, Manifest, ModelSpec, TensorSpec};
use crate::io::png::read_png;
use crate::models::industrial::patchcore::bank::{BankHeader, MemoryBank};
use crate::models::industrial::patchcore::embed::TapShape;
use crate::models::industrial::patchcore::{
    DEFAULT_NEIGHBOURS, FAMILY, INPUT, PatchCoreDetector, PatchCoreSpec, PatchFeatures,
};
use crate::prepare::imagenet::{IMAGENET_MEAN, IMAGENET_STD};
use crate::prepare::resize::FrameResizer;
use crate::train::isstad::mvtec::read_good_folder;
use crate::train::run::RunDir;

/// The bank file's name in a run folder.
pub const BANK_FILE: &str = "bank.bank";

/// σ of PatchCore's pixel-map blur.
pub const MAP_SIGMA: f32 = 4.0;

/// What `fit` is asked to do.
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// An MVTec AD category (its `train/good` is used) or a folder of good PNGs.
    pub data: PathBuf,
    /// The backbone's patch-feature graph (`vigil-train industrial backbone`).
    pub backbone: PathBuf,
    /// Side of the square model input.
    pub image_size: usize,
    pub coreset: CoresetConfig,
    /// Good images held out of the bank to fit the thresholds: this folder; else the data
    /// set's `validation/good`; else every `validation_every`-th good image (in name order).
    pub validation: Option<PathBuf>,
    pub validation_every: usize,
    /// The false-alarm rate the image threshold aims at on good parts.
    pub target_false_alarm: f64,
}

impl FitConfig {
    pub fn new(data: PathBuf, backbone: PathBuf) -> Self {
        Self {
            data,
            backbone,
            image_size: 224,
            coreset: CoresetConfig::default(),
            validation: None,
            validation_every: 5,
            target_false_alarm: 0.01,
        }
    }
}

/// The thresholds and what they imply on the held-out good images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub image: f64,
    pub pixel: f64,
    /// Image scores of the held-out good images, in file order.
    pub validation_scores: Vec<f64>,
    /// Mean and standard deviation of those scores.
    pub validation_mean: f64,
    pub validation_std: f64,
    /// Share of held-out good images at or above the image threshold (0 by construction when
    /// the threshold is their maximum or above).
    pub validation_false_alarms: f64,
    /// The false-alarm rate the normal fitted to the validation scores gives at the threshold.
    pub implied_false_alarm: f64,
}

/// `config.json` of a PatchCore run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitRecord {
    pub method: String,
    pub data: PathBuf,
    /// A name for the model: the data folder's name.
    pub category: String,
    pub backbone: PathBuf,
    pub backbone_sha256: String,
    pub image_size: usize,
    /// The median width and height of the good images: the size of a part at the scale the
    /// bank knows it.
    #[serde(default)]
    pub part_size: Option<(usize, usize)>,
    pub taps: Vec<TapShape>,
    pub train_images: Vec<PathBuf>,
    pub validation_images: Vec<PathBuf>,
    pub validation_source: ValidationSource,
    pub coreset_fraction: f64,
    pub projection_dim: usize,
    pub seed: u64,
    pub candidates: usize,
    pub bank_patches: usize,
    pub bank_bytes: u64,
    pub feature_seconds: f64,
    pub coreset_seconds: f64,
    pub total_seconds: f64,
    pub neighbours: usize,
    pub map_sigma: f32,
    pub thresholds: Thresholds,
}

/// The good images of `data`: `train/good/*.png` of an MVTec AD category, else `data/*.png`;
/// sorted by name. Fewer than two is an error naming the folder.
pub fn good_images(data: &Path) -> Result<Vec<PathBuf>, IndustrialFitError> {
    let mvtec = data.join("train").join("good");
    let folder = if mvtec.is_dir() {
        mvtec
    } else {
        data.to_path_buf()
    };
    if !folder.is_dir() {
        return Err(IndustrialFitError::Data {
            what: "no good images",
            detail: "expected a folder of PNGs or an MVTec AD category (train/good)".into(),
            path: folder,
        });
    }
    Ok(read_good_folder(&folder)?)
}

/// Where the good images that fit the thresholds come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ValidationSource {
    /// A folder of its own: `--validation`, or the data set's `validation/good` (which
    /// `make-data` writes from texture no training image covers).
    Folder(PathBuf),
    /// Every n-th of the good images, in name order.
    EveryNth(usize),
}

/// The good images of `data` split into (fit, validation), and where validation came from:
/// the `validation` folder; else `data`'s `validation/good`; else every `every`-th image.
pub fn split_good_images(
    data: &Path,
    validation: Option<&Path>,
    every: usize,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>, ValidationSource), IndustrialFitError> {
    let images = good_images(data)?;
    let own_folder = validation
        .map(Path::to_path_buf)
        .or_else(|| Some(data.join("validation").join("good")).filter(|d| d.is_dir()));
    if let Some(folder) = own_folder {
        let validation = read_good_folder(&folder)?;
        return Ok((images, validation, ValidationSource::Folder(folder)));
    }
    if every < 2 {
        return Err(setting(
            "validation_every",
            every,
            "must be at least 2 (every n-th good image is held out)",
        ));
    }
    if images.len() < every {
        return Err(IndustrialFitError::Data {
            what: "too few good images",
            detail: format!(
                "{} PNGs; at least {every} are needed to hold every {every}th out for the \
                 thresholds and fit the bank on the rest",
                images.len()
            ),
            path: data.to_path_buf(),
        });
    }
    let (mut bank, mut validation) = (Vec::new(), Vec::new());
    for (index, path) in images.into_iter().enumerate() {
        if index % every == every - 1 {
            validation.push(path);
        } else {
            bank.push(path);
        }
    }
    Ok((bank, validation, ValidationSource::EveryNth(every)))
}

/// Reads one image and resizes it to the model's normalised input, as a camera frame is;
/// refuses an image smaller than the input.
pub fn load_image(path: &Path, resizer: &mut FrameResizer) -> Result<Vec<f32>, IndustrialFitError> {
    load_sized_image(path, resizer).map(|(input, _)| input)
}

/// [`load_image`], with the image's width and height.
pub fn load_sized_image(
    path: &Path,
    resizer: &mut FrameResizer,
) -> Result<(Vec<f32>, (usize, usize)), IndustrialFitError> {
    let image = read_png(path)?;
    let side = resizer.side();
    if image.width < side || image.height < side {
        return Err(IndustrialFitError::TooSmall {
            width: image.width,
            height: image.height,
            side,
            path: path.to_path_buf(),
        });
    }
    let mut out = vec![0.0; resizer.output_len()];
    resizer
        .normalised_chw(&image.pixels, image.width, image.height, &mut out)
        .map_err(|err| IndustrialFitError::Data {
            what: "cannot resize the image",
            detail: err.to_string(),
            path: path.to_path_buf(),
        })?;
    Ok((out, (image.width, image.height)))
}

/// The resizer of PatchCore's backbone input: ImageNet's normalisation.
pub fn imagenet_resizer(side: usize) -> Result<FrameResizer, IndustrialFitError> {
    FrameResizer::with_normalisation(side, IMAGENET_MEAN, IMAGENET_STD).map_err(|err| {
        IndustrialFitError::Setting {
            setting: "image_size",
            value: side.to_string(),
            detail: err.to_string(),
        }
    })
}

/// The backbone graph's outputs for `side`×`side` input, read from the file: the taps.
pub fn backbone_taps(path: &Path, side: usize) -> Result<Vec<TapShape>, IndustrialFitError> {
    use tract_onnx::prelude::*;
    let failed = |detail: String| IndustrialFitError::Data {
        what: "not a usable backbone graph",
        detail,
        path: path.to_path_buf(),
    };
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|err| failed(format!("{err:#}")))?;
    model
        .set_input_fact(0, f32::fact([1, 3, side, side]).into())
        .map_err(|err| failed(format!("{err:#}")))?;
    let typed = model
        .into_typed()
        .map_err(|err| failed(format!("{err:#}")))?;
    let mut taps = Vec::new();
    for outlet in typed
        .output_outlets()
        .map_err(|err| failed(format!("{err:#}")))?
    {
        let fact = typed
            .outlet_fact(*outlet)
            .map_err(|err| failed(format!("{err:#}")))?;
        let name = typed
            .outlet_label(*outlet)
            .map(str::to_string)
            .unwrap_or_else(|| typed.node(outlet.node).name.clone());
        let shape: Option<Vec<usize>> = fact.shape.as_concrete().map(|s| s.to_vec());
        let Some(&[1, channels, height, width]) = shape.as_deref() else {
            return Err(failed(format!(
                "output {name} has shape {:?}, expected [1, C, H, W]",
                fact.shape
            )));
        };
        taps.push(TapShape::new(&name, channels, height, width));
    }
    if taps.is_empty() || taps.iter().any(|t| t.is_empty()) {
        return Err(failed(format!(
            "outputs {taps:?} are not [1, C, H, W] feature maps"
        )));
    }
    Ok(taps)
}

/// A manifest entry for the backbone alone (its outputs the taps), so the fit loads it with
/// the runtime's checks; `bank` is appended as the second file when given.
pub fn backbone_spec(
    name: &str,
    backbone: &Path,
    sha256: &str,
    side: usize,
    taps: &[TapShape],
    threshold: f32,
) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        family: FAMILY.into(),
        description: "PatchCore backbone".into(),
        source: backbone.display().to_string(),
        fetch: None,
        files: vec![FileSpec {
            path: backbone.to_path_buf(),
            sha256: sha256.into(),
        }],
        inputs: vec![TensorSpec {
            name: INPUT.into(),
            alias: None,
            dtype: ElementType::F32,
            shape: vec![1, 3, side, side],
            scale: None,
            zero_point: None,
        }],
        outputs: taps
            .iter()
            .map(|tap| TensorSpec {
                name: tap.name.clone(),
                alias: None,
                dtype: ElementType::F32,
                shape: vec![1, tap.channels, tap.height, tap.width],
                scale: None,
                zero_point: None,
            })
            .collect(),
        settings: Default::default(),
        threshold,
    }
}

/// Loads the backbone as the runtime does (sha256, boundary shapes).
pub fn backbone_plan(spec: &ModelSpec) -> Result<Plan, IndustrialFitError> {
    let manifest = Manifest {
        models: vec![spec.clone()],
        dir: PathBuf::new(),
    };
    Ok(Plan::load(&manifest, &spec.name)?)
}

/// The detector spec of a fitted bank, as an installed manifest entry would give it.
pub fn detector_spec(
    record: &FitRecord,
    bank: PathBuf,
    thresholds: Option<&Thresholds>,
) -> PatchCoreSpec {
    PatchCoreSpec {
        model: format!("patchcore-{}", record.category),
        side: record.image_size,
        taps: record.taps.clone(),
        map_sigma: record.map_sigma,
        neighbours: record.neighbours,
        image_threshold: thresholds.map_or(f32::INFINITY, |t| t.image as f32),
        pixel_threshold: thresholds.map(|t| t.pixel as f32),
        part_size: record.part_size,
        backbone_sha256: record.backbone_sha256.clone(),
        bank,
    }
}

fn setting(setting: &'static str, value: impl ToString, detail: &str) -> IndustrialFitError {
    IndustrialFitError::Setting {
        setting,
        value: value.to_string(),
        detail: detail.into(),
    }
}

/// Fits a PatchCore bank and its thresholds into the new run folder `out`.
pub fn fit(config: &FitConfig, out: &Path) -> Result<FitRecord, IndustrialFitError> {
    let started = Instant::now();
    if !(config.target_false_alarm > 0.0 && config.target_false_alarm < 0.5) {
        return Err(setting(
            "target_false_alarm",
            config.target_false_alarm,
            "must lie in (0, 0.5)",
        ));
    }
    let (bank_images, validation_images, validation_source) = split_good_images(
        &config.data,
        config.validation.as_deref(),
        config.validation_every,
    )?;
    let side = config.image_size;
    let mut resizer = imagenet_resizer(side)?;
    // Every image is read and checked before anything is written.
    let mut sizes = Vec::new();
    let mut read = |paths: Vec<PathBuf>| -> Result<Vec<(PathBuf, Vec<f32>)>, IndustrialFitError> {
        paths
            .into_iter()
            .map(|path| {
                let (input, size) = load_sized_image(&path, &mut resizer)?;
                sizes.push(size);
                Ok((path, input))
            })
            .collect()
    };
    let train = read(bank_images)?;
    let validation = read(validation_images)?;
    let median = |mut values: Vec<usize>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    let part_size = (!sizes.is_empty()).then(|| {
        (
            median(sizes.iter().map(|s| s.0).collect()),
            median(sizes.iter().map(|s| s.1).collect()),
        )
    });
    let taps = backbone_taps(&config.backbone, side)?;
    let backbone_sha256 = sha256_file(&config.backbone)?;
    let spec = backbone_spec(
        "patchcore-fit",
        &config.backbone,
        &backbone_sha256,
        side,
        &taps,
        0.0,
    );
    let plan = backbone_plan(&spec)?;
    if out.join("config.json").exists() {
        return Err(IndustrialFitError::RunExists {
            path: out.to_path_buf(),
        });
    }

    // The bank: every training patch's feature, then the coreset of them.
    let mut features = PatchFeatures::new(&plan, side, taps.clone())?;
    let (patches, dim) = (features.embedder().patches(), features.embedder().dim());
    let mut candidates = Vec::with_capacity(train.len() * patches * dim);
    let feature_start = Instant::now();
    for (_, input) in &train {
        candidates.extend_from_slice(features.extract(input)?);
    }
    let feature_seconds = feature_start.elapsed().as_secs_f64();
    let coreset_start = Instant::now();
    let chosen = greedy_coreset(&candidates, dim, &config.coreset)?;
    let coreset_seconds = coreset_start.elapsed().as_secs_f64();
    let mut bank_features = Vec::with_capacity(chosen.len() * dim);
    for &row in &chosen {
        bank_features.extend_from_slice(&candidates[row * dim..(row + 1) * dim]);
    }
    drop(candidates);
    let category = config.data.file_name().map_or_else(
        || "parts".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let bank = MemoryBank {
        header: BankHeader {
            backbone_sha256: backbone_sha256.clone(),
            image_size: side,
            taps: taps.clone(),
            feature_dim: dim,
            patches: chosen.len(),
            images: train.len(),
            candidates: train.len() * patches,
        },
        features: bank_features,
    };
    let run = RunDir::create(out)?;
    let bank_path = run.file(BANK_FILE);
    bank.write(&bank_path)?;
    let bank_bytes = std::fs::metadata(&bank_path).map_or(0, |m| m.len());

    let mut record = FitRecord {
        method: "patchcore".into(),
        data: config.data.clone(),
        category,
        backbone: config.backbone.clone(),
        backbone_sha256,
        image_size: side,
        part_size,
        taps,
        train_images: train.iter().map(|(path, _)| path.clone()).collect(),
        validation_images: validation.iter().map(|(path, _)| path.clone()).collect(),
        validation_source,
        coreset_fraction: config.coreset.fraction,
        projection_dim: config.coreset.projection_dim,
        seed: config.coreset.seed,
        candidates: train.len() * patches,
        bank_patches: chosen.len(),
        bank_bytes,
        feature_seconds,
        coreset_seconds,
        total_seconds: 0.0,
        neighbours: DEFAULT_NEIGHBOURS,
        map_sigma: MAP_SIGMA,
        thresholds: Thresholds {
            image: f64::INFINITY,
            pixel: f64::INFINITY,
            validation_scores: Vec::new(),
            validation_mean: f64::NAN,
            validation_std: f64::NAN,
            validation_false_alarms: f64::NAN,
            implied_false_alarm: f64::NAN,
        },
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut detector = PatchCoreDetector::with_bank(
        &plan,
        detector_spec(&record, bank_path, None),
        bank,
        threads,
    )?;
    let mut scores = Vec::with_capacity(validation.len());
    let mut pixel_max = f64::NEG_INFINITY;
    for (_, input) in &validation {
        scores.push(f64::from(detector.run(input)?));
        let largest = detector
            .map()
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        pixel_max = pixel_max.max(f64::from(largest));
    }
    record.thresholds = fit_thresholds(scores, pixel_max, config.target_false_alarm);
    record.total_seconds = started.elapsed().as_secs_f64();
    run.write_json("config.json", &record)?;
    Ok(record)
}

/// The image threshold from good validation scores: the larger of their maximum and the
/// (1 − `target`) quantile of the normal fitted to them.
pub fn fit_thresholds(scores: Vec<f64>, pixel_max: f64, target: f64) -> Thresholds {
    let n = scores.len().max(1) as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let variance = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    let std = variance.sqrt();
    let largest = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let quantile = mean + std * normal_upper_quantile(target);
    // Just above the largest good score: a frame alerts at or above the threshold, and no
    // held-out good image should.
    let image = (largest + largest.abs() * 1e-4).max(quantile);
    let validation_false_alarms = scores.iter().filter(|&&s| s >= image).count() as f64 / n;
    let implied_false_alarm = if std > 0.0 {
        normal_upper_tail((image - mean) / std)
    } else {
        0.0
    };
    Thresholds {
        image,
        pixel: pixel_max,
        validation_scores: scores,
        validation_mean: mean,
        validation_std: std,
        validation_false_alarms,
        implied_false_alarm,
    }
}

/// P(Z > z) for a standard normal Z (Abramowitz & Stegun 7.1.26 through erfc; error < 1.5e-7).
pub fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// z with P(Z > z) = `p`, by bisection on [`normal_upper_tail`].
pub fn normal_upper_quantile(p: f64) -> f64 {
    let (mut low, mut high) = (-10.0f64, 10.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if normal_upper_tail(mid) > p {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_and_quantile_match_tables() {
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_upper_tail(1.96) - 0.024_997_9).abs() < 1e-6);
        assert!((normal_upper_tail(-1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((normal_upper_quantile(0.01) - 2.326_347_9).abs() < 1e-5);
    }

    #[test]
    fn the_threshold_is_at_least_the_largest_good_score() {
        // Tight scores with one outlier: the maximum wins.
        let mut scores = vec![1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.0, 1.02, 0.98];
        scores.push(3.0);
        let t = fit_thresholds(scores, 5.0, 0.01);
        assert!((t.image - 3.0).abs() < 1e-3 && t.image > 3.0, "{t:?}");
        assert_eq!(t.validation_false_alarms, 0.0);
        // Spread scores: the normal's 99th percentile lies above the maximum.
        let t = fit_thresholds(vec![1.0, 2.0, 3.0, 4.0, 5.0], 5.0, 0.01);
        assert!(
            t.image > 5.0 && (t.implied_false_alarm - 0.01).abs() < 1e-4,
            "{t:?}"
        );
        assert_eq!(t.validation_false_alarms, 0.0);
    }
}
