//! After training: export with parity against burn, int8 quantization, thresholds fitted on
//! validation images, evaluation on the category's test set, and installation into `models/`.
//!
//! Evaluation runs the exported graphs in tract and the runtime's anomaly map
//! ([`AnomalyMapper`]), so the numbers on the card are what a factory-line stream computes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::export::{INPUT, PROBABILITY, RECONSTRUCTION_ERROR};
use super::model::EncoderKind;
use super::mvtec::{MvtecError, TestImage, load_test_image, read_category};
use super::train::{IsstadRunConfig, MAP_SIGMA, load_trained, pixel_outputs};
use crate::eval::{AUPRO_MAX_FPR, aupro};
use crate::models::industrial::anomaly_map::{AnomalyMapError, AnomalyMapper, ImageScore};
use crate::train::TrainError;
use crate::train::image::{Crop, normalised_chw, read_png};
use crate::train::industrial::fit::fit_thresholds;
use crate::train::manifest::{ModelEntry, TensorEntry, upsert};
use crate::train::onnx;
use crate::train::parity::{TractPlan, plan, run_plan_outputs};
use crate::train::release::check_and_quantize;
use crate::train::run::RunDir;

/// The false-alarm rate on good parts the image thresholds aim at.
const TARGET_FALSE_ALARM: f64 = 0.01;

/// Validation images the export is checked and calibrated on.
const CALIBRATION_IMAGES: usize = 8;

/// What `fers export` wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsstadExportRecord {
    pub category: String,
    pub image_size: usize,
    pub fp32: PathBuf,
    pub int8: PathBuf,
    pub parity_relative: f32,
    /// Worst |int8 − fp32| over the calibration images, relative to the largest output.
    pub int8_relative: f32,
    pub quantized_layers: usize,
    pub fp32_ms: f64,
    pub int8_ms: f64,
}

/// The model's name in the manifest: `isstad-edge-<category>` on the scratch MAE,
/// `isstad-mobilenet-<category>` on the pretrained encoder; `-fp32` for the float graph.
pub fn model_name(category: &str, encoder: EncoderKind, int8: bool) -> String {
    let base = match encoder {
        EncoderKind::Mae => "isstad-edge",
        EncoderKind::MobileNetV2 => "isstad-mobilenet",
    };
    if int8 {
        format!("{base}-{category}")
    } else {
        format!("{base}-{category}-fp32")
    }
}

fn category_name(config: &IsstadRunConfig) -> String {
    config
        .data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "category".into())
}

/// Validation images as network inputs.
fn validation_inputs(config: &IsstadRunConfig, limit: usize) -> Result<Vec<Vec<f32>>, TrainError> {
    let side = config.train.model.image_size;
    config
        .validation_files
        .iter()
        .take(limit)
        .map(|file| {
            let image = read_png(file)?;
            Ok(normalised_chw(
                &image,
                Crop::whole(image.width, image.height),
                side,
                false,
            ))
        })
        .collect()
}

/// Writes `isstad-edge-<category>-fp32.onnx` and `isstad-edge-<category>.onnx` (int8) into the
/// run, checks the first against burn and calibrates the second on validation images, and
/// records both in the run's `manifest.toml`.
pub fn export(run: &RunDir) -> Result<IsstadExportRecord, TrainError> {
    let trained = load_trained(run)?;
    let side = trained.config.train.model.image_size;
    let shape = [1, 3, side, side];
    let inputs = validation_inputs(&trained.config, CALIBRATION_IMAGES)?;
    if inputs.is_empty() {
        return Err(TrainError::Config(
            "the run lists no validation image to check the export on".into(),
        ));
    }
    let fp32_model = trained.model.to_onnx()?;
    let device = burn::prelude::Device::flex();
    let checked = check_and_quantize(&fp32_model, &shape, &inputs, |input| {
        Ok(pixel_outputs(&trained.model, input.to_vec(), side, &device)?.to_vec())
    })?;
    let category = category_name(&trained.config);
    let encoder = trained.config.train.model.encoder;
    let fp32_path = run.file(&format!("{}.onnx", model_name(&category, encoder, false)));
    let int8_path = run.file(&format!("{}.onnx", model_name(&category, encoder, true)));
    onnx::save(&fp32_model, &fp32_path)?;
    onnx::save(&checked.quantized.model, &int8_path)?;
    let record = IsstadExportRecord {
        category,
        image_size: side,
        fp32: fp32_path,
        int8: int8_path,
        parity_relative: checked.parity_relative,
        int8_relative: checked.int8_relative,
        quantized_layers: checked.quantized.layers.len(),
        fp32_ms: checked.fp32_ms,
        int8_ms: checked.int8_ms,
    };
    run.write_json("export.json", &record)?;
    Ok(record)
}

/// The image-score rules the card reports: the paper's mean, the maximum, and the mean of the
/// top 1 % of the pixel map (small defects vanish in a whole-image mean).
pub const IMAGE_RULES: [(&str, ImageScore); 3] = [
    ("mean", ImageScore::Mean),
    ("max", ImageScore::Max),
    ("top_1_percent", ImageScore::TopKMean { fraction: 0.01 }),
];

/// One image-score rule's results on the test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: String,
    pub image_auroc: f64,
    /// Just above the largest validation image score under this rule (or the normal fit's
    /// 99th percentile, if higher): at or above it a frame alerts.
    pub threshold: f64,
    /// At the threshold, the share of defect test images that alert, and of good ones.
    pub detected: f64,
    pub false_alarms: f64,
    /// Image AUROC of each defect type against the good test images.
    pub per_defect_image_auroc: Vec<(String, f64)>,
}

/// One precision's results on the test set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrecisionResult {
    /// One entry per [`IMAGE_RULES`], in that order; the first is the paper's.
    pub rules: Vec<RuleResult>,
    /// `None` where the category has no ground-truth masks (image-level labels only).
    pub pixel_auroc: Option<f64>,
    /// Area under the PRO curve up to 30 % FPR, normalised; `None` as `pixel_auroc`.
    pub aupro: Option<f64>,
    /// The largest validation pixel-map value: above it a pixel belongs to a defect box.
    pub pixel_threshold: f64,
    pub ms_per_image: f64,
}

/// `vigil-train isstad eval`'s report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsstadEvaluation {
    pub category: String,
    pub test_images: usize,
    pub good_images: usize,
    pub validation_images: usize,
    pub fp32: PrecisionResult,
    pub int8: PrecisionResult,
}

struct Scored {
    /// Per [`IMAGE_RULES`] entry, each image's score.
    image_scores: Vec<Vec<f64>>,
    maps: Vec<Vec<f32>>,
    seconds: f64,
}

fn map_error(e: AnomalyMapError) -> TrainError {
    TrainError::Config(format!("anomaly map: {e}"))
}

fn score_all(plan: &TractPlan, inputs: &[Vec<f32>], side: usize) -> Result<Scored, TrainError> {
    let mut mappers = IMAGE_RULES
        .iter()
        .map(|&(_, rule)| AnomalyMapper::new(MAP_SIGMA, rule))
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_error)?;
    let shape = [1, 3, side, side];
    let mut scored = Scored {
        image_scores: vec![Vec::with_capacity(inputs.len()); IMAGE_RULES.len()],
        maps: Vec::with_capacity(inputs.len()),
        seconds: 0.0,
    };
    for input in inputs {
        let started = Instant::now();
        let outputs = run_plan_outputs(plan, &shape, input)?;
        let [p, r] = [&outputs[0], &outputs[1]];
        let mut map = vec![0.0f32; side * side];
        mappers[0].map(p, r, side, &mut map).map_err(map_error)?;
        let score = mappers[0]
            .image_score(p, r, &map, side)
            .map_err(map_error)?;
        // Only the paper's rule is timed: it is what a stream computes by default.
        scored.seconds += started.elapsed().as_secs_f64();
        scored.image_scores[0].push(f64::from(score));
        for (mapper, scores) in mappers.iter_mut().zip(&mut scored.image_scores).skip(1) {
            scores.push(f64::from(
                mapper.image_score(p, r, &map, side).map_err(map_error)?,
            ));
        }
        scored.maps.push(map);
    }
    Ok(scored)
}

fn largest(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(f64::NEG_INFINITY, f64::max)
}

fn metrics_error(e: crate::eval::EvalError) -> TrainError {
    TrainError::Config(format!("metrics: {e}"))
}

fn rule_result(
    name: &str,
    scores: &[f64],
    threshold: f64,
    test: &[TestImage],
) -> Result<RuleResult, TrainError> {
    let labels: Vec<bool> = test.iter().map(|t| !t.is_good()).collect();
    let alert_share = |want_defect: bool| {
        let (hits, total) = scores
            .iter()
            .zip(&labels)
            .filter(|(_, defect)| **defect == want_defect)
            .fold((0usize, 0usize), |(h, t), (&s, _)| {
                // A frame alerts at or above the threshold, as in the runtime.
                (h + usize::from(s >= threshold), t + 1)
            });
        hits as f64 / total.max(1) as f64
    };
    let mut defects: Vec<&str> = test
        .iter()
        .filter(|t| !t.is_good())
        .map(|t| t.defect.as_str())
        .collect();
    defects.dedup();
    let mut per_defect_image_auroc = Vec::with_capacity(defects.len());
    for defect in defects {
        let (subset, subset_labels): (Vec<f64>, Vec<bool>) = test
            .iter()
            .zip(scores)
            .filter(|(t, _)| t.is_good() || t.defect == defect)
            .map(|(t, &s)| (s, !t.is_good()))
            .unzip();
        let auroc = crate::eval::roc_auc(&subset, &subset_labels).map_err(metrics_error)?;
        per_defect_image_auroc.push((defect.to_string(), auroc));
    }
    Ok(RuleResult {
        rule: name.into(),
        image_auroc: crate::eval::roc_auc(scores, &labels).map_err(metrics_error)?,
        threshold,
        detected: alert_share(true),
        false_alarms: alert_share(false),
        per_defect_image_auroc,
    })
}

/// Scores a test set (an MVTec AD category's `test/`; default the training category's) with
/// both graphs and writes `eval.json` and `eval.md`.
pub fn evaluate(run: &RunDir, test: Option<&Path>) -> Result<IsstadEvaluation, TrainError> {
    let config: IsstadRunConfig = run.read_json("config.json")?;
    let record: IsstadExportRecord = run.read_json("export.json")?;
    let side = config.train.model.image_size;
    let data_error = |e: MvtecError| TrainError::Config(e.to_string());
    let category = read_category(test.unwrap_or(&config.data)).map_err(data_error)?;
    let validation = validation_inputs(&config, usize::MAX)?;
    let mut inputs = Vec::with_capacity(category.test.len());
    let mut masks = Vec::with_capacity(category.test.len());
    for test in &category.test {
        let (image, mask) = load_test_image(test, side).map_err(data_error)?;
        inputs.push(image);
        masks.push(mask.iter().map(|&v| v > 0.5).collect::<Vec<bool>>());
    }
    let image_labels: Vec<bool> = category.test.iter().map(|t| !t.is_good()).collect();
    let pixel_labels: Vec<bool> = masks.iter().flatten().copied().collect();
    let mask_refs: Vec<&[bool]> = masks.iter().map(Vec::as_slice).collect();
    let mut results = Vec::with_capacity(2);
    for path in [&record.fp32, &record.int8] {
        let graph = plan(&onnx::load(path)?)?;
        let validation_scored = score_all(&graph, &validation, side)?;
        let scored = score_all(&graph, &inputs, side)?;
        let mut rules = Vec::with_capacity(IMAGE_RULES.len());
        for (index, (name, _)) in IMAGE_RULES.iter().enumerate() {
            // The rule PatchCore's fit uses: just above the largest held-out good score, or
            // the normal fit's 99th percentile when that is higher.
            let threshold = fit_thresholds(
                validation_scored.image_scores[index].clone(),
                f64::NAN,
                TARGET_FALSE_ALARM,
            )
            .image;
            rules.push(rule_result(
                name,
                &scored.image_scores[index],
                threshold,
                &category.test,
            )?);
        }
        // Without masks every defect image's mask reads as zeros: pixel metrics on those would
        // count every defect pixel as normal, so they are not computed at all.
        let (pixel_auroc, aupro) = if category.pixel_labels {
            let pixel_scores: Vec<f64> = scored
                .maps
                .iter()
                .flat_map(|m| m.iter().map(|&v| f64::from(v)))
                .collect();
            let pixel_auroc =
                crate::eval::roc_auc(&pixel_scores, &pixel_labels).map_err(metrics_error)?;
            let map_refs: Vec<&[f32]> = scored.maps.iter().map(Vec::as_slice).collect();
            let aupro =
                aupro(&map_refs, &mask_refs, side, side, AUPRO_MAX_FPR).map_err(metrics_error)?;
            (Some(pixel_auroc), Some(aupro))
        } else {
            (None, None)
        };
        let pixel_threshold = largest(
            validation_scored
                .maps
                .iter()
                .flat_map(|m| m.iter().map(|&v| f64::from(v))),
        );
        results.push(PrecisionResult {
            rules,
            pixel_auroc,
            aupro,
            pixel_threshold,
            ms_per_image: scored.seconds * 1e3 / inputs.len().max(1) as f64,
        });
    }
    let int8 = results
        .pop()
        .ok_or_else(|| TrainError::Config("no int8 result".into()))?;
    let fp32 = results
        .pop()
        .ok_or_else(|| TrainError::Config("no fp32 result".into()))?;
    let evaluation = IsstadEvaluation {
        category: record.category.clone(),
        test_images: category.test.len(),
        good_images: image_labels.iter().filter(|&&d| !d).count(),
        validation_images: validation.len(),
        fp32,
        int8,
    };
    run.write_json("eval.json", &evaluation)?;
    let card = card_table(&evaluation);
    std::fs::write(run.file("eval.md"), card)
        .map_err(|e| TrainError::Config(format!("{}: {e}", run.file("eval.md").display())))?;
    Ok(evaluation)
}

/// The model card's results tables, in Markdown.
pub fn card_table(evaluation: &IsstadEvaluation) -> String {
    let mut out = format!(
        "{}: {} test images ({} good), thresholds fitted on {} validation images\n\n\
         | graph | pixel AUROC | AUPRO (30 % FPR) | image AUROC: mean (paper) | max | top 1 % | ms/image |\n\
         |---|---|---|---|---|---|---|\n",
        evaluation.category,
        evaluation.test_images,
        evaluation.good_images,
        evaluation.validation_images
    );
    let pixel = |value: Option<f64>| value.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    for (name, r) in [("fp32", &evaluation.fp32), ("int8", &evaluation.int8)] {
        out.push_str(&format!(
            "| {name} | {} | {} |",
            pixel(r.pixel_auroc),
            pixel(r.aupro)
        ));
        for rule in &r.rules {
            out.push_str(&format!(" {:.4} |", rule.image_auroc));
        }
        out.push_str(&format!(" {:.1} |\n", r.ms_per_image));
    }
    if evaluation.fp32.pixel_auroc.is_none() {
        out.push_str(
            "\nNo ground-truth masks (image-level labels only): pixel AUROC and AUPRO are not \
             computed.\n",
        );
    }
    out.push_str(
        "\nint8, at each rule's validation threshold (defect images that alert / good images \
         that alert), and image AUROC per defect type:\n\n| rule | detected | false alarms |",
    );
    let int8 = &evaluation.int8;
    let defects: Vec<&str> = int8
        .rules
        .first()
        .map(|r| {
            r.per_defect_image_auroc
                .iter()
                .map(|(d, _)| d.as_str())
                .collect()
        })
        .unwrap_or_default();
    for defect in &defects {
        out.push_str(&format!(" {defect} |"));
    }
    out.push_str(&format!(
        "\n|---|---|---|{}\n",
        "---|".repeat(defects.len())
    ));
    for rule in &int8.rules {
        out.push_str(&format!(
            "| {} | {:.0} % | {:.0} % |",
            rule.rule,
            rule.detected * 100.0,
            rule.false_alarms * 100.0
        ));
        for (_, auroc) in &rule.per_defect_image_auroc {
            out.push_str(&format!(" {auroc:.4} |"));
        }
        out.push('\n');
    }
    out
}

/// Copies the run's int8 graph (and its fp32 original when `with_fp32`) into
/// `models_dir/isstad-edge/` and records them, with the thresholds `eval` fitted, in that
/// folder's `manifest.toml`: how a model ships.
pub fn install(
    run: &RunDir,
    models_dir: &Path,
    with_fp32: bool,
) -> Result<Vec<PathBuf>, TrainError> {
    let config: IsstadRunConfig = run.read_json("config.json")?;
    let record: IsstadExportRecord = run.read_json("export.json")?;
    let evaluation: IsstadEvaluation = run.read_json("eval.json").map_err(|e| {
        TrainError::Config(format!(
            "{e}: run `vigil-train isstad eval` first, which fits the thresholds"
        ))
    })?;
    let dir = models_dir.join("isstad-edge");
    std::fs::create_dir_all(&dir)
        .map_err(|e| TrainError::Config(format!("{}: {e}", dir.display())))?;
    let mut installed = Vec::new();
    let precisions: &[bool] = if with_fp32 { &[true, false] } else { &[true] };
    for &int8 in precisions {
        let source = if int8 { &record.int8 } else { &record.fp32 };
        let name = model_name(&record.category, config.train.model.encoder, int8);
        let target = dir.join(format!("{name}.onnx"));
        std::fs::copy(source, &target)
            .map_err(|e| TrainError::Config(format!("{}: {e}", target.display())))?;
        let result = if int8 {
            &evaluation.int8
        } else {
            &evaluation.fp32
        };
        let mut entry = model_entry(&config, &record, result, int8);
        entry.files = vec![target.clone()];
        upsert(&models_dir.join("manifest.toml"), &entry)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        installed.push(target);
    }
    Ok(installed)
}

fn model_entry(
    config: &IsstadRunConfig,
    record: &IsstadExportRecord,
    result: &PrecisionResult,
    int8: bool,
) -> ModelEntry {
    let side = record.image_size;
    let mut settings = toml_edit::Table::new();
    settings.insert("image_size", toml_edit::value(side as i64));
    settings.insert("map_sigma", toml_edit::value(f64::from(MAP_SIGMA)));
    settings.insert("pixel_threshold", toml_edit::value(result.pixel_threshold));
    // The manifest's `threshold` is the paper's mean rule; a profile choosing another rule
    // takes its threshold from here.
    let mut thresholds = toml_edit::InlineTable::new();
    for rule in &result.rules {
        thresholds.insert(&rule.rule, rule.threshold.into());
    }
    settings.insert("image_thresholds", toml_edit::value(thresholds));
    let mut metrics = toml_edit::InlineTable::new();
    for rule in &result.rules {
        metrics.insert(
            format!("image_auroc_{}", rule.rule),
            rule.image_auroc.into(),
        );
    }
    // Absent, not zero, where the test set had no masks.
    if let Some(pixel_auroc) = result.pixel_auroc {
        metrics.insert("pixel_auroc", pixel_auroc.into());
    }
    if let Some(aupro) = result.aupro {
        metrics.insert("aupro", aupro.into());
    }
    settings.insert("test_metrics", toml_edit::value(metrics));
    if int8 {
        let mut table = toml_edit::InlineTable::new();
        table.insert("layers", (record.quantized_layers as i64).into());
        table.insert("fp32_ms", record.fp32_ms.into());
        table.insert("int8_ms", record.int8_ms.into());
        table.insert(
            "max_relative_change",
            f64::from(record.int8_relative).into(),
        );
        settings.insert("quantization", toml_edit::value(table));
    }
    let map = TensorEntry {
        name: String::new(),
        shape: vec![1, side, side],
    };
    ModelEntry {
        name: model_name(&record.category, config.train.model.encoder, int8),
        family: "isstad_edge".into(),
        description: format!(
            "ISSTAD-edge for {}: per-pixel anomaly probability and reconstruction error of a {side}×{side} image, {}, {} (vigil-train isstad)",
            record.category,
            match config.train.model.encoder {
                EncoderKind::Mae => "scratch MAE encoder",
                EncoderKind::MobileNetV2 => "frozen ImageNet MobileNetV2 encoder",
            },
            if int8 { "int8 linear layers" } else { "fp32" }
        ),
        source: format!(
            "pixel classifier trained on the normal images of {} only (the encoder {}); thresholds fitted on {} held-out normal images",
            config.data.display(),
            match &config.backbone_weights {
                Some(weights) => format!("torchvision's MobileNetV2, {}", weights.display()),
                None => "a MAE trained on the same images".into(),
            },
            config.validation_files.len()
        ),
        files: vec![if int8 {
            record.int8.clone()
        } else {
            record.fp32.clone()
        }],
        inputs: vec![TensorEntry {
            name: INPUT.into(),
            shape: vec![1, 3, side, side],
        }],
        outputs: vec![
            TensorEntry {
                name: PROBABILITY.into(),
                ..map.clone()
            },
            TensorEntry {
                name: RECONSTRUCTION_ERROR.into(),
                ..map
            },
        ],
        threshold: result.rules.first().map_or(f64::INFINITY, |r| r.threshold) as f32,
        settings,
    }
}
