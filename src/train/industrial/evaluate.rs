//! `vigil-train industrial eval`: a fitted PatchCore run scored on a labelled test set through
//! the runtime's detector, at the thresholds the fit chose on held-out good images, and its
//! installation into a models folder.
//!
//! The test set is an MVTec AD category's `test/` (good and one folder per defect type), with
//! `ground_truth/` masks for pixel metrics when the set has them; a set labelled per image only
//! gets image metrics, and the report says pixel metrics were skipped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::IndustrialFitError;
use super::fit::{
    BANK_FILE, FitRecord, backbone_plan, backbone_spec, detector_spec, imagenet_resizer, load_image,
};
use crate::eval::{AUPRO_MAX_FPR, aupro, roc_auc};
use crate::models::industrial::patchcore::{FAMILY, INPUT, PatchCoreDetector};
use crate::train::isstad::mvtec::{TestImage, load_mask, read_category};
use crate::train::manifest::{ModelEntry, TensorEntry, upsert};
use crate::train::run::RunDir;

/// One defect type's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefectResult {
    pub defect: String,
    pub images: usize,
    /// Image AUROC of this type's images against the good test images.
    pub image_auroc: f64,
    /// Share of this type's images that alert at the fitted threshold.
    pub detected: f64,
}

/// `eval.json` of a PatchCore run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchCoreEvaluation {
    pub category: String,
    pub test_root: PathBuf,
    pub good_images: usize,
    pub defect_images: usize,
    pub validation_images: usize,
    pub image_threshold: f64,
    pub pixel_threshold: f64,
    pub image_auroc: f64,
    /// At the fitted threshold: the share of defective test images that alert, and of good.
    pub detected: f64,
    pub false_alarms: f64,
    pub per_defect: Vec<DefectResult>,
    /// `None` when the test set has no masks.
    pub pixel_auroc: Option<f64>,
    pub aupro: Option<f64>,
    pub ms_per_image: f64,
    pub bank_patches: usize,
    pub bank_bytes: u64,
}

/// Share of `scores` at or above `threshold` (a frame alerts at or above it).
fn alert_share<'a>(scores: impl Iterator<Item = &'a f64>, threshold: f64) -> f64 {
    let (hits, total) = scores.fold((0usize, 0usize), |(h, t), &s| {
        (h + usize::from(s >= threshold), t + 1)
    });
    hits as f64 / total.max(1) as f64
}

/// Scores `test_root` (an MVTec AD category; default: the fit's data folder) with the run's
/// bank and thresholds; writes `eval.json` and `eval.md` into the run.
pub fn evaluate(
    run: &RunDir,
    test_root: Option<&Path>,
) -> Result<PatchCoreEvaluation, IndustrialFitError> {
    let record: FitRecord = run.read_json("config.json")?;
    let root = test_root.unwrap_or(&record.data).to_path_buf();
    let category = read_category(&root)?;
    let side = record.image_size;
    let spec = backbone_spec(
        "patchcore-eval",
        &record.backbone,
        &record.backbone_sha256,
        side,
        &record.taps,
        0.0,
    );
    let plan = backbone_plan(&spec)?;
    let detector_spec = detector_spec(&record, run.file(BANK_FILE), Some(&record.thresholds));
    // One thread, as a stream runs it, so the time per image is the runtime's.
    let mut detector = PatchCoreDetector::new(&plan, detector_spec, 1)?;
    let mut resizer = imagenet_resizer(side)?;
    let has_masks = category
        .test
        .iter()
        .all(|test| test.is_good() || test.mask.is_some());
    let mut scores = Vec::with_capacity(category.test.len());
    let mut maps = Vec::new();
    let mut masks = Vec::new();
    let mut seconds = 0.0;
    for test in &category.test {
        let input = load_image(&test.image, &mut resizer)?;
        let started = Instant::now();
        scores.push(f64::from(detector.run(&input)?));
        seconds += started.elapsed().as_secs_f64();
        if has_masks {
            maps.push(detector.map().to_vec());
            masks.push(mask_of(test, side)?);
        }
    }
    let labels: Vec<bool> = category.test.iter().map(|t| !t.is_good()).collect();
    let threshold = record.thresholds.image;
    let mut defects: Vec<&str> = category
        .test
        .iter()
        .filter(|t| !t.is_good())
        .map(|t| t.defect.as_str())
        .collect();
    defects.dedup();
    let mut per_defect = Vec::with_capacity(defects.len());
    for defect in defects {
        let (subset, subset_labels): (Vec<f64>, Vec<bool>) = category
            .test
            .iter()
            .zip(&scores)
            .filter(|(t, _)| t.is_good() || t.defect == defect)
            .map(|(t, &s)| (s, !t.is_good()))
            .unzip();
        let of_type: Vec<f64> = subset
            .iter()
            .zip(&subset_labels)
            .filter(|(_, defective)| **defective)
            .map(|(&s, _)| s)
            .collect();
        per_defect.push(DefectResult {
            defect: defect.to_string(),
            images: of_type.len(),
            image_auroc: roc_auc(&subset, &subset_labels)?,
            detected: alert_share(of_type.iter(), threshold),
        });
    }
    let (pixel_auroc, aupro_value) = if has_masks {
        let pixel_scores: Vec<f64> = maps.iter().flatten().map(|&v| f64::from(v)).collect();
        let pixel_labels: Vec<bool> = masks.iter().flatten().copied().collect();
        let map_refs: Vec<&[f32]> = maps.iter().map(Vec::as_slice).collect();
        let mask_refs: Vec<&[bool]> = masks.iter().map(Vec::as_slice).collect();
        (
            Some(roc_auc(&pixel_scores, &pixel_labels)?),
            Some(aupro(&map_refs, &mask_refs, side, side, AUPRO_MAX_FPR)?),
        )
    } else {
        (None, None)
    };
    let pick = |defective: bool| {
        scores
            .iter()
            .zip(&labels)
            .filter(move |(_, d)| **d == defective)
            .map(|(s, _)| s)
    };
    let evaluation = PatchCoreEvaluation {
        category: record.category.clone(),
        test_root: root,
        good_images: labels.iter().filter(|d| !**d).count(),
        defect_images: labels.iter().filter(|d| **d).count(),
        validation_images: record.validation_images.len(),
        image_threshold: threshold,
        pixel_threshold: record.thresholds.pixel,
        image_auroc: roc_auc(&scores, &labels)?,
        detected: alert_share(pick(true), threshold),
        false_alarms: alert_share(pick(false), threshold),
        per_defect,
        pixel_auroc,
        aupro: aupro_value,
        ms_per_image: seconds * 1e3 / scores.len().max(1) as f64,
        bank_patches: record.bank_patches,
        bank_bytes: record.bank_bytes,
    };
    run.write_json("eval.json", &evaluation)?;
    let path = run.file("eval.md");
    std::fs::write(&path, card_table(&evaluation)).map_err(|err| IndustrialFitError::Data {
        what: "cannot write the report",
        detail: err.to_string(),
        path,
    })?;
    Ok(evaluation)
}

fn mask_of(test: &TestImage, side: usize) -> Result<Vec<bool>, IndustrialFitError> {
    Ok(match &test.mask {
        Some(path) => load_mask(path, side)?.iter().map(|&v| v > 0.5).collect(),
        None => vec![false; side * side],
    })
}

/// The model card's rows for one category, in Markdown.
pub fn card_table(e: &PatchCoreEvaluation) -> String {
    let percent = |v: f64| format!("{:.1} %", 100.0 * v);
    let pixel =
        |v: Option<f64>| v.map_or_else(|| "skipped (no masks)".into(), |v| format!("{v:.4}"));
    let mut out = format!(
        "#### {} ({} good, {} defective test images; thresholds from {} held-out good images)\n\n\
         | image AUROC | detected | false alarms | pixel AUROC | AUPRO (30 % FPR) | ms/image | bank |\n\
         |---|---|---|---|---|---|---|\n\
         | {:.4} | {} | {} | {} | {} | {:.1} | {} patches, {:.1} MB |\n\n",
        e.category,
        e.good_images,
        e.defect_images,
        e.validation_images,
        e.image_auroc,
        percent(e.detected),
        percent(e.false_alarms),
        pixel(e.pixel_auroc),
        pixel(e.aupro),
        e.ms_per_image,
        e.bank_patches,
        e.bank_bytes as f64 / 1e6,
    );
    out.push_str("| defect | images | image AUROC | detected |\n|---|---|---|---|\n");
    for d in &e.per_defect {
        out.push_str(&format!(
            "| {} | {} | {:.4} | {} |\n",
            d.defect,
            d.images,
            d.image_auroc,
            percent(d.detected)
        ));
    }
    out
}

/// Copies the run's backbone and bank into `models_dir/patchcore/` and records the model, with
/// its thresholds and test metrics, in `models_dir/manifest.toml`. Returns the model's name.
pub fn install(run: &RunDir, models_dir: &Path) -> Result<String, IndustrialFitError> {
    let record: FitRecord = run.read_json("config.json")?;
    let evaluation: PatchCoreEvaluation = run.read_json("eval.json")?;
    let dir = models_dir.join("patchcore");
    let io = |what, path: &Path, err: std::io::Error| IndustrialFitError::Data {
        what,
        detail: err.to_string(),
        path: path.to_path_buf(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io("cannot create the models folder", &dir, e))?;
    let name = format!("patchcore-{}", record.category);
    let backbone_name = record.backbone.file_name().map_or_else(
        || "backbone.onnx".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let backbone = dir.join(&backbone_name);
    let same_file =
        std::fs::canonicalize(&backbone).ok() == std::fs::canonicalize(&record.backbone).ok();
    if !same_file {
        std::fs::copy(&record.backbone, &backbone)
            .map_err(|e| io("cannot copy the backbone", &backbone, e))?;
    }
    let bank = dir.join(format!("{name}.bank"));
    std::fs::copy(run.file(BANK_FILE), &bank).map_err(|e| io("cannot copy the bank", &bank, e))?;
    let side = record.image_size;
    let mut settings = toml_edit::Table::new();
    settings.insert("image_size", toml_edit::value(side as i64));
    settings.insert("map_sigma", toml_edit::value(f64::from(record.map_sigma)));
    settings.insert("neighbours", toml_edit::value(record.neighbours as i64));
    settings.insert("pixel_threshold", toml_edit::value(record.thresholds.pixel));
    if let Some((width, height)) = record.part_size {
        let mut size = toml_edit::Array::new();
        size.push(width as i64);
        size.push(height as i64);
        settings.insert("part_size", toml_edit::value(size));
    }
    let mut metrics = toml_edit::InlineTable::new();
    metrics.insert("image_auroc", evaluation.image_auroc.into());
    metrics.insert("detected", evaluation.detected.into());
    metrics.insert("false_alarms", evaluation.false_alarms.into());
    if let Some(v) = evaluation.pixel_auroc {
        metrics.insert("pixel_auroc", v.into());
    }
    if let Some(v) = evaluation.aupro {
        metrics.insert("aupro", v.into());
    }
    settings.insert("test_metrics", toml_edit::value(metrics));
    let entry = ModelEntry {
        name: name.clone(),
        family: FAMILY.into(),
        description: format!(
            "PatchCore for {}: ImageNet MobileNetV2 patch features of a {side}×{side} image against a memory bank of {} good patches (vigil-train industrial fit)",
            record.category, record.bank_patches
        ),
        source: format!(
            "fitted by `vigil-train industrial fit` on {} good images of {}; thresholds from {} held-out good images; backbone: torchvision MobileNetV2 ImageNet weights (BSD-3)",
            record.train_images.len(),
            record.data.display(),
            record.validation_images.len()
        ),
        files: vec![backbone, bank],
        inputs: vec![TensorEntry {
            name: INPUT.into(),
            shape: vec![1, 3, side, side],
        }],
        outputs: record
            .taps
            .iter()
            .map(|tap| TensorEntry {
                name: tap.name.clone(),
                shape: vec![1, tap.channels, tap.height, tap.width],
            })
            .collect(),
        threshold: record.thresholds.image as f32,
        settings,
    };
    upsert(&models_dir.join("manifest.toml"), &entry)?;
    Ok(name)
}
