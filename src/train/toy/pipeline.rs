//! After training: export (with parity), quantize (with speed and metric checks) and evaluate
//! through the runtime's own tract path, each writing into the run folder.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::Tensor as TractTensor;

use super::data::{ToySplit, read_split};
use super::model::ToyNet;
use super::train::{ToyRunConfig, plot_curves};
use crate::detector::{Manifest, Plan};
use crate::eval::{Report, evaluate, f1_max};
use crate::train::TrainError;
use crate::train::backend::{BackendKind, inference_device};
use crate::train::manifest::{ModelEntry, TensorEntry, upsert};
use crate::train::onnx;
use crate::train::parity::{Parity, TractPlan, compare_values, plan, run_plan};
use crate::train::quantize::{QuantizedLayer, median_latency_ms, quantize};
use crate::train::run::RunDir;

/// The tolerance the exporter must meet against burn.
pub const PARITY_TOLERANCE: f32 = 1e-4;
/// The model's name in manifests.
pub const MODEL_NAME: &str = "toy";

/// Loads the trained weights of a run on the flex device (export and evaluation run on CPU).
pub fn load_model(run: &RunDir) -> Result<(ToyRunConfig, ToyNet), TrainError> {
    let config: ToyRunConfig = run.read_json("config.json")?;
    let device = inference_device(BackendKind::Flex)?;
    let weights = run.file("model.bpk");
    if !weights.is_file() {
        return Err(TrainError::Checkpoint(format!(
            "{} is missing: the run has not finished training",
            weights.display()
        )));
    }
    let model = config
        .train
        .model
        .init(&device)
        .try_load_file(&weights)
        .map_err(|err| TrainError::Checkpoint(format!("{}: {err}", weights.display())))?;
    Ok((config, model))
}

fn input_shape(config: &ToyRunConfig) -> [usize; 4] {
    let patch = config.train.model.patch;
    [1, 1, patch, patch]
}

/// Writes `model.onnx` and checks it against burn on `samples` validation patches.
pub fn export(run: &RunDir, samples: usize) -> Result<Parity, TrainError> {
    let (config, model) = load_model(run)?;
    let shape = input_shape(&config);
    let onnx_model = model.to_onnx(shape)?;
    let val = read_split(&config.data, "val")?;
    let device = inference_device(BackendKind::Flex)?;
    let mut worst = Parity {
        max_abs_diff: 0.0,
        max_abs_value: 0.0,
    };
    for index in 0..samples.min(val.len()) {
        let image = val.image(index);
        let input = Tensor::<4>::from_data(TensorData::new(image.to_vec(), shape), &device);
        let parity = compare_values(
            model.probabilities(input),
            &onnx_model,
            &shape,
            image,
            PARITY_TOLERANCE,
        )?;
        worst.max_abs_diff = worst.max_abs_diff.max(parity.max_abs_diff);
        worst.max_abs_value = worst.max_abs_value.max(parity.max_abs_value);
    }
    onnx::save(&onnx_model, &run.file("model.onnx"))?;
    Ok(worst)
}

/// What quantization did, as `quantization.json` and the manifest's settings record it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantizationRecord {
    pub layers: usize,
    pub calibration_samples: usize,
    pub fp32_ms: f64,
    pub int8_ms: f64,
    pub speedup: f64,
    /// Test-split ROC AUC of each model, through tract.
    pub fp32_auroc: f64,
    pub int8_auroc: f64,
    pub auroc_lost: f64,
    pub worst_weight_error: f32,
}

/// Writes `model-int8.onnx` from `model.onnx`, calibrated on training patches, and measures
/// its speed and its ROC AUC on the held-out test split against fp32.
pub fn quantize_run(
    run: &RunDir,
    calibration_samples: usize,
) -> Result<QuantizationRecord, TrainError> {
    let config: ToyRunConfig = run.read_json("config.json")?;
    let shape = input_shape(&config);
    let fp32 = onnx::load(&run.file("model.onnx"))?;
    let train = read_split(&config.data, "train")?;
    let test = read_split(&config.data, "test")?;
    let calibration: Vec<Vec<f32>> = (0..calibration_samples.min(train.len()))
        .map(|i| train.image(i).to_vec())
        .collect();
    let quantized = quantize(&fp32, &shape, &calibration)?;
    onnx::save(&quantized.model, &run.file("model-int8.onnx"))?;
    let fp32_plan = plan(&fp32)?;
    let int8_plan = plan(&quantized.model)?;
    let fp32_scores = tract_scores(&fp32_plan, &shape, &test)?;
    let int8_scores = tract_scores(&int8_plan, &shape, &test)?;
    let metric = |scores: &[f64]| {
        crate::eval::roc_auc(scores, &test.labels)
            .map_err(|err| TrainError::Config(format!("test split: {err}")))
    };
    let (fp32_auroc, int8_auroc) = (metric(&fp32_scores)?, metric(&int8_scores)?);
    let probe = test.image(0);
    let fp32_ms = median_latency_ms(&fp32_plan, &shape, probe, 200)?;
    let int8_ms = median_latency_ms(&int8_plan, &shape, probe, 200)?;
    let record = QuantizationRecord {
        layers: quantized.layers.len(),
        calibration_samples: calibration.len(),
        fp32_ms,
        int8_ms,
        speedup: fp32_ms / int8_ms,
        fp32_auroc,
        int8_auroc,
        auroc_lost: fp32_auroc - int8_auroc,
        worst_weight_error: quantized
            .layers
            .iter()
            .map(|l: &QuantizedLayer| l.weight_error)
            .fold(0.0, f32::max),
    };
    run.write_json("quantization.json", &record)?;
    // The manifest entry gets the facts now, with a threshold fitted on validation data only
    // (what `eval` refits through the runtime's own loading path).
    let val = read_split(&config.data, "val")?;
    let val_scores = tract_scores(&int8_plan, &shape, &val)?;
    let (_, threshold) = f1_max(&val_scores, &val.labels)
        .map_err(|e| TrainError::Config(format!("validation split: {e}")))?;
    let entry = model_entry(
        &config,
        &run.file("model-int8.onnx"),
        threshold as f32,
        Some(&record),
    )?;
    upsert(&run.file("manifest.toml"), &entry).map_err(|e| TrainError::Config(e.to_string()))?;
    Ok(record)
}

/// Anomaly scores of a split from a tract plan, one patch at a time.
fn tract_scores(
    plan: &TractPlan,
    shape: &[usize; 4],
    split: &ToySplit,
) -> Result<Vec<f64>, TrainError> {
    (0..split.len())
        .map(|index| {
            let probabilities = run_plan(plan, shape, split.image(index))?;
            Ok(f64::from(probabilities[1]))
        })
        .collect()
}

/// The outcome of `eval`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub model_file: PathBuf,
    pub threshold: f64,
    pub validation_f1: f64,
    pub test: Report,
}

/// Evaluates the run's int8 model (or fp32 if not quantized) exactly as the runtime runs it:
/// the manifest entry is written first, then loaded with [`Plan::load`] (sha256 check, fixed
/// shapes, optimized plan). The alert threshold is the F1-max threshold on the validation split
/// only; the test split then gives the reported metrics. The threshold goes into the run's
/// `manifest.toml`, and into `extra_manifest` when given.
pub fn evaluate_run(run: &RunDir, extra_manifest: Option<&Path>) -> Result<Evaluation, TrainError> {
    let config: ToyRunConfig = run.read_json("config.json")?;
    let shape = input_shape(&config);
    let int8 = run.file("model-int8.onnx");
    let model_file = if int8.is_file() {
        int8
    } else {
        run.file("model.onnx")
    };
    if !model_file.is_file() {
        return Err(TrainError::Checkpoint(format!(
            "{} is missing: run `vigil-train toy export` first",
            model_file.display()
        )));
    }
    let quantization: Option<QuantizationRecord> = if run.file("quantization.json").is_file() {
        Some(run.read_json("quantization.json")?)
    } else {
        None
    };
    // The runtime loads a model only through a manifest entry, and the threshold is what this
    // evaluation fits; the plan is loaded from a provisional manifest (its threshold is unused
    // by `Plan::load`) so the run's own manifest keeps its last fitted threshold until then.
    let mut entry = model_entry(&config, &model_file, 0.5, quantization.as_ref())?;
    let provisional = run.file("manifest.eval.toml");
    if provisional.exists() {
        std::fs::remove_file(&provisional)
            .map_err(|e| TrainError::Config(format!("{}: {e}", provisional.display())))?;
    }
    upsert(&provisional, &entry).map_err(|e| TrainError::Config(e.to_string()))?;
    let loaded = Manifest::load(&provisional)
        .and_then(|manifest| Plan::load(&manifest, MODEL_NAME))
        .map_err(|e| TrainError::Config(e.to_string()));
    std::fs::remove_file(&provisional)
        .map_err(|e| TrainError::Config(format!("{}: {e}", provisional.display())))?;
    let plan = loaded?;
    let manifest_path = run.file("manifest.toml");
    let mut session = plan
        .session()
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let mut scores_of = |split: &ToySplit| -> Result<Vec<f64>, TrainError> {
        let mut out = [0.0f32; 2];
        (0..split.len())
            .map(|index| {
                let input = TractTensor::from_shape(&shape, split.image(index))
                    .map_err(|e| TrainError::Config(format!("{e:?}")))?;
                let outputs = session
                    .run(vec![input])
                    .map_err(|e| TrainError::Config(e.to_string()))?;
                session
                    .read_f32(&outputs, 0, &mut out)
                    .map_err(|e| TrainError::Config(e.to_string()))?;
                Ok(f64::from(out[1]))
            })
            .collect()
    };
    let val = read_split(&config.data, "val")?;
    let test = read_split(&config.data, "test")?;
    let val_scores = scores_of(&val)?;
    let test_scores = scores_of(&test)?;
    let (validation_f1, threshold) = f1_max(&val_scores, &val.labels)
        .map_err(|e| TrainError::Config(format!("validation split: {e}")))?;
    let report = evaluate(&test_scores, &test.labels)
        .map_err(|e| TrainError::Config(format!("test split: {e}")))?;
    plot_curves(run, &test_scores, &test.labels, "test");
    entry.threshold = threshold as f32;
    entry
        .settings
        .insert("test_auroc", toml_edit::value(report.roc_auc));
    entry.settings.insert(
        "test_average_precision",
        toml_edit::value(report.average_precision),
    );
    upsert(&manifest_path, &entry).map_err(|e| TrainError::Config(e.to_string()))?;
    if let Some(path) = extra_manifest {
        upsert(path, &entry).map_err(|e| TrainError::Config(e.to_string()))?;
    }
    Ok(Evaluation {
        model_file,
        threshold,
        validation_f1,
        test: report,
    })
}

fn model_entry(
    config: &ToyRunConfig,
    model_file: &Path,
    threshold: f32,
    quantization: Option<&QuantizationRecord>,
) -> Result<ModelEntry, TrainError> {
    let shape = input_shape(config);
    let int8 = model_file
        .file_name()
        .is_some_and(|n| n == "model-int8.onnx");
    let mut settings = toml_edit::Table::new();
    settings.insert("score_output", toml_edit::value("probabilities[1]"));
    if let Some(record) = quantization.filter(|_| int8) {
        let mut table = toml_edit::InlineTable::new();
        table.insert("layers", (record.layers as i64).into());
        table.insert("fp32_ms", record.fp32_ms.into());
        table.insert("int8_ms", record.int8_ms.into());
        table.insert("speedup", record.speedup.into());
        table.insert("metric", "test ROC AUC".into());
        table.insert("fp32", record.fp32_auroc.into());
        table.insert("int8", record.int8_auroc.into());
        table.insert("lost", record.auroc_lost.into());
        settings.insert("quantization", toml_edit::value(table));
    }
    Ok(ModelEntry {
        name: MODEL_NAME.into(),
        family: "toy".into(),
        description: format!(
            "ToyNet texture-defect classifier, {} (vigil-train toy)",
            if int8 { "int8 linear layers" } else { "fp32" }
        ),
        source: format!("trained by vigil-train on {}", config.data.display()),
        files: vec![model_file.to_path_buf()],
        inputs: vec![TensorEntry {
            name: "image".into(),
            shape: shape.to_vec(),
        }],
        outputs: vec![TensorEntry {
            name: "probabilities".into(),
            shape: vec![1, 2],
        }],
        threshold,
        settings,
    })
}
