//! After training: export with parity against burn, int8 quantization, manifest entries, and
//! the model card's evaluation on labelled scenes through the runtime's own tract path.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::data::read_training;
use super::export::{INPUT, to_onnx};
use super::train::{FersRunConfig, fen_features, load_trained, student_features};
use crate::detector::Manifest;
use crate::hsi::fers::{
    FersEdge, Fusion, SPATIAL_OUTPUT, SPECTRAL_OUTPUT, fused_scores, normalise,
};
use crate::hsi::local::{DualWindow, local_rx};
use crate::hsi::{Cube, HsiError};
use crate::train::TrainError;
use crate::train::manifest::{ModelEntry, TensorEntry, upsert};
use crate::train::onnx;
use crate::train::release::check_and_quantize;
use crate::train::run::RunDir;

/// The tile the shipped graphs read: HAD100's scene size, on which the student is trained.
pub const TILE: usize = 64;
/// Calibration tiles for the int8 activation scales.
const CALIBRATION_TILES: usize = 16;

/// What export measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    pub bands: usize,
    pub tile: usize,
    pub fp32: PathBuf,
    pub int8: PathBuf,
    /// Worst |burn − tract fp32| over the parity tiles, relative to the largest output.
    pub parity_relative: f32,
    /// Worst |int8 − fp32| over the parity tiles, relative to the largest output.
    pub int8_relative: f32,
    pub quantized_layers: usize,
    /// Median single-thread latency of one tile, in ms.
    pub fp32_ms: f64,
    pub int8_ms: f64,
}

/// The model's name in manifests: `fers-edge-<bands>` for the int8 graph, `-fp32` suffixed
/// for the float one.
pub fn model_name(bands: usize, int8: bool) -> String {
    if int8 {
        format!("fers-edge-{bands}")
    } else {
        format!("fers-edge-{bands}-fp32")
    }
}

/// Writes `fers-edge-<C>.onnx` (fp32) and `fers-edge-<C>-int8.onnx` into the run, checks the
/// first against burn on training tiles, calibrates the second on them, and records both in
/// the run's `manifest.toml`.
pub fn export(run: &RunDir) -> Result<ExportRecord, TrainError> {
    let trained = load_trained(run)?;
    let bands = trained.config.train.model.bands;
    let groups = read_training(&trained.config.data, &trained.config.sources, bands)
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let Some(group) = groups.iter().find(|g| g.side == TILE) else {
        return Err(TrainError::Config(format!(
            "no {TILE}×{TILE} training cube to check and calibrate the export on"
        )));
    };
    let tiles: Vec<Vec<f32>> = (0..group.len().min(CALIBRATION_TILES))
        .map(|i| group.tile(i).to_vec())
        .collect();
    let shape = [1, TILE, TILE, bands];
    let fp32_model = to_onnx(&trained.spectral, &trained.spatial, TILE)?;
    let checked = check_and_quantize(&fp32_model, &shape, &tiles, |tile| {
        let cube = Cube::from_bip(TILE, TILE, bands, tile.to_vec())?;
        Ok(vec![
            fen_features(&trained.spectral, &cube)?.data().to_vec(),
            student_features(&trained.spatial, &cube)?.data().to_vec(),
        ])
    })?;
    let fp32_path = run.file(&format!("{}.onnx", model_name(bands, false)));
    let int8_path = run.file(&format!("{}.onnx", model_name(bands, true)));
    onnx::save(&fp32_model, &fp32_path)?;
    onnx::save(&checked.quantized.model, &int8_path)?;
    let record = ExportRecord {
        bands,
        tile: TILE,
        fp32: fp32_path,
        int8: int8_path,
        parity_relative: checked.parity_relative,
        int8_relative: checked.int8_relative,
        quantized_layers: checked.quantized.layers.len(),
        fp32_ms: checked.fp32_ms,
        int8_ms: checked.int8_ms,
    };
    run.write_json("export.json", &record)?;
    let manifest = run.file("manifest.toml");
    for int8 in [false, true] {
        let entry = model_entry(&trained.config, &record, int8);
        upsert(&manifest, &entry).map_err(|e| TrainError::Config(e.to_string()))?;
    }
    Ok(record)
}

/// Copies the run's int8 graph and its fp32 original into `models_dir/fers-edge/` and
/// records both in that folder's `manifest.toml`, which is how a model ships. (The fp32 graph
/// ships too: on x86 tract runs it faster than the int8 one, see the model card.)
pub fn install(run: &RunDir, models_dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    // The entry needs the run's configuration only, not its networks.
    let config: FersRunConfig = run.read_json("config.json")?;
    let record: ExportRecord = run.read_json("export.json")?;
    let dir = models_dir.join("fers-edge");
    std::fs::create_dir_all(&dir)
        .map_err(|e| TrainError::Config(format!("{}: {e}", dir.display())))?;
    let mut installed = Vec::new();
    for int8 in [true, false] {
        let source = if int8 { &record.int8 } else { &record.fp32 };
        let target = dir.join(format!("{}.onnx", model_name(record.bands, int8)));
        std::fs::copy(source, &target)
            .map_err(|e| TrainError::Config(format!("{}: {e}", target.display())))?;
        let mut entry = model_entry(&config, &record, int8);
        entry.files = vec![target.clone()];
        upsert(&models_dir.join("manifest.toml"), &entry)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        installed.push(target);
    }
    Ok(installed)
}

fn model_entry(config: &FersRunConfig, record: &ExportRecord, int8: bool) -> ModelEntry {
    let bands = record.bands;
    let shape = vec![1, record.tile, record.tile, bands];
    let mut settings = toml_edit::Table::new();
    settings.insert("bands", toml_edit::value(bands as i64));
    settings.insert("tile", toml_edit::value(record.tile as i64));
    let fusion = match Fusion::for_bands(bands) {
        Fusion::Sum => "sum",
        Fusion::Hadamard => "hadamard",
    };
    settings.insert("fusion", toml_edit::value(fusion));
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
    ModelEntry {
        name: model_name(bands, int8),
        family: "fers_edge".into(),
        description: format!(
            "FERS-edge spectral and spatial feature maps of the first {bands} bands, {} (vigil-train fers)",
            if int8 { "int8 1×1 layers" } else { "fp32" }
        ),
        source: format!(
            "trained by `vigil-train fers train` on background cubes only ({}), checkpoints chosen on synthetic validation scenes; frozen torchvision MobileNetV2 ImageNet weights inside (BSD-3); earthlib spectra (MIT)",
            config.sources.join(" + ")
        ),
        files: vec![if int8 {
            record.int8.clone()
        } else {
            record.fp32.clone()
        }],
        inputs: vec![TensorEntry {
            name: INPUT.into(),
            shape: shape.clone(),
        }],
        outputs: vec![
            TensorEntry {
                name: SPECTRAL_OUTPUT.into(),
                shape: shape.clone(),
            },
            TensorEntry {
                name: SPATIAL_OUTPUT.into(),
                shape,
            },
        ],
        threshold: 0.0,
        settings,
    }
}

/// One scene's row of the model card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SceneResult {
    pub scene: String,
    pub rows: usize,
    pub cols: usize,
    pub bands: usize,
    /// `None` where the scene has fewer bands than the model reads.
    pub grx: Option<f64>,
    pub fp32_rx: Option<f64>,
    pub int8_rx: Option<f64>,
    pub fp32_lrx: Option<f64>,
    pub int8_lrx: Option<f64>,
    /// Seconds for the int8 features and the fused RX of the whole scene.
    pub int8_rx_seconds: Option<f64>,
    pub grx_seconds: Option<f64>,
    /// Why the scene has no numbers, or why they do not count.
    pub note: Option<String>,
}

/// How the card's local detector is set: LRX with the dual window `vigil hsi` defaults to.
pub const LRX_WINDOW: DualWindow = DualWindow { inner: 3, outer: 9 };

/// Scores every labelled `.mat` scene in `scenes` with GRX and with the run's fp32 and int8
/// graphs fused into RX and local RX, and writes `eval.json` and `eval.md` into the run.
/// A scene any of whose cubes trained the model is reported as seen, without numbers.
pub fn evaluate(run: &RunDir, scenes: &Path) -> Result<Vec<SceneResult>, TrainError> {
    let record: ExportRecord = run.read_json("export.json")?;
    // The graphs come from the run's manifest; the configuration says what trained them.
    let config: FersRunConfig = run.read_json("config.json")?;
    let manifest = Manifest::load(&run.file("manifest.toml"))
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let model = |int8: bool| {
        FersEdge::load(&manifest, &model_name(record.bands, int8))
            .map_err(|e| TrainError::Config(e.to_string()))
    };
    let (fp32, int8) = (model(false)?, model(true)?);
    let paths = crate::hsi::had100::labelled_scenes_in(scenes)?;
    let mut results = Vec::with_capacity(paths.len());
    for path in &paths {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        log::info!("evaluating {name}");
        let result = evaluate_scene(&name, path, &config, &fp32, &int8)?;
        results.push(result);
    }
    run.write_json("eval.json", &results)?;
    let markdown = card_table(record.bands, &results);
    std::fs::write(run.file("eval.md"), &markdown)
        .map_err(|e| TrainError::Config(format!("{}: {e}", run.file("eval.md").display())))?;
    Ok(results)
}

fn evaluate_scene(
    name: &str,
    path: &Path,
    config: &FersRunConfig,
    fp32: &FersEdge,
    int8: &FersEdge,
) -> Result<SceneResult, TrainError> {
    let scene_error = |e: HsiError| TrainError::Config(format!("{}: {e}", path.display()));
    let scene = crate::hsi::read_scene(path).map_err(scene_error)?;
    let Some(labels) = scene.labels else {
        return Err(TrainError::Config(format!(
            "{} has no ground-truth map",
            path.display()
        )));
    };
    let cube = scene.cube;
    let bands = fp32.bands();
    let mut result = SceneResult {
        scene: name.into(),
        rows: cube.rows(),
        cols: cube.cols(),
        bands: cube.bands(),
        grx: None,
        fp32_rx: None,
        int8_rx: None,
        fp32_lrx: None,
        int8_lrx: None,
        int8_rx_seconds: None,
        grx_seconds: None,
        note: None,
    };
    // Patches are written as `<scene stem>_<n>.npy`.
    let seen = config.training_files.iter().any(|file| {
        file.file_stem().is_some_and(|stem| {
            let stem = stem.to_string_lossy();
            stem == name
                || stem
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('_'))
        })
    });
    if seen {
        result.note = Some("patches of this scene trained the model: not reported".into());
        return Ok(result);
    }
    if cube.bands() < bands {
        result.note = Some(format!("{} bands, the model reads {bands}", cube.bands()));
        return Ok(result);
    }
    let data = normalise(&cube.first_bands(bands).map_err(scene_error)?).map_err(scene_error)?;
    let auc = |scores: Vec<f32>| -> Result<f64, TrainError> {
        let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
        crate::eval::roc_auc(&scores, &labels)
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    };
    let fusion = Fusion::for_bands(bands);
    let lrx = |c: &Cube| local_rx(c, LRX_WINDOW, 2);
    let started = Instant::now();
    let grx = super::train::rx(&data).map_err(scene_error)?;
    result.grx_seconds = Some(started.elapsed().as_secs_f64());
    result.grx = Some(auc(grx)?);
    for (model, is_int8) in [(fp32, false), (int8, true)] {
        let started = Instant::now();
        let features = model.features(&data).map_err(scene_error)?;
        let rx = fused_scores(&data, &features, fusion, super::train::rx).map_err(scene_error)?;
        let seconds = started.elapsed().as_secs_f64();
        let local = fused_scores(&data, &features, fusion, lrx).map_err(scene_error)?;
        let (rx, local) = (Some(auc(rx)?), Some(auc(local)?));
        if is_int8 {
            (result.int8_rx, result.int8_lrx) = (rx, local);
            result.int8_rx_seconds = Some(seconds);
        } else {
            (result.fp32_rx, result.fp32_lrx) = (rx, local);
        }
    }
    Ok(result)
}

/// The model card's table for one band count.
pub fn card_table(bands: usize, results: &[SceneResult]) -> String {
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.0}", v * 1e3));
    let mut out = format!(
        "| scene ({bands} bands) | GRX | FERS-edge fp32 + RX | int8 + RX | fp32 + LRX {in}/{out} | int8 + LRX | GRX ms | int8 + RX ms | note |\n|---|---|---|---|---|---|---|---|---|\n",
        in = LRX_WINDOW.inner,
        out = LRX_WINDOW.outer
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scene,
            cell(r.grx),
            cell(r.fp32_rx),
            cell(r.int8_rx),
            cell(r.fp32_lrx),
            cell(r.int8_lrx),
            ms(r.grx_seconds),
            ms(r.int8_rx_seconds),
            r.note.as_deref().unwrap_or("")
        ));
    }
    let mean = |get: fn(&SceneResult) -> Option<f64>| {
        let values: Vec<f64> = results.iter().filter_map(get).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    out.push_str(&format!(
        "| mean of scored scenes | {} | {} | {} | {} | {} | | | |\n",
        cell(mean(|r| r.grx)),
        cell(mean(|r| r.fp32_rx)),
        cell(mean(|r| r.int8_rx)),
        cell(mean(|r| r.fp32_lrx)),
        cell(mean(|r| r.int8_lrx)),
    ));
    out
}
