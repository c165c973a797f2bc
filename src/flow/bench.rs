//! The flow benchmark's vigil side: frame pairs with known motion in, endpoint error and time
//! per pair out, for each search preset. `scripts/bench/flow.py` writes the pairs, runs
//! OpenCV's DIS and Farneback on them in the same run, calls `vigil flow-bench` and prints the
//! comparison.
//!
//! A pair `<name>` is two files: `<name>.frames.npy` (u8, `[2, H, W]`, grey) and
//! `<name>.flow.npy` (f32, `[2, H, W]`: u then v, the true motion of each first-frame pixel).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{DisParams, FlowField, GrayImage, dense_flow};
use crate::io::npy::read_npy;

/// What one preset did on one pair.
#[derive(Debug, Clone, Serialize)]
pub struct FlowResult {
    pub sequence: String,
    pub method: String,
    pub width: usize,
    pub height: usize,
    /// Mean endpoint error over all pixels, in pixels.
    pub endpoint_error: f64,
    /// Median wall time of one pair, in ms, over the repeats.
    pub median_ms: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum FlowBenchError {
    #[error("cannot list {path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Pair { path: PathBuf, detail: String },
}

/// The named presets the benchmark runs.
pub fn presets() -> [(&'static str, DisParams); 3] {
    [
        ("vigil-dis-ultrafast", DisParams::ULTRAFAST),
        ("vigil-dis-fast", DisParams::FAST),
        ("vigil-dis-medium", DisParams::MEDIUM),
    ]
}

fn read_pair(frames: &Path) -> Result<(GrayImage, GrayImage, FlowField), FlowBenchError> {
    let bad = |detail: String| FlowBenchError::Pair {
        path: frames.to_path_buf(),
        detail,
    };
    let pixels = read_npy::<u8>(frames).map_err(|e| bad(e.to_string()))?;
    let &[2, height, width] = pixels.shape.as_slice() else {
        return Err(bad(format!("shape {:?}, expected [2, H, W]", pixels.shape)));
    };
    let plane = width * height;
    let first = GrayImage::from_gray8(width, height, &pixels.data[..plane])
        .map_err(|e| bad(e.to_string()))?;
    let second = GrayImage::from_gray8(width, height, &pixels.data[plane..])
        .map_err(|e| bad(e.to_string()))?;
    let flow_path = PathBuf::from(frames.to_string_lossy().replace(".frames.npy", ".flow.npy"));
    let truth = read_npy::<f32>(&flow_path).map_err(|e| bad(e.to_string()))?;
    if truth.shape != [2, height, width] {
        return Err(bad(format!(
            "{} has shape {:?}, expected [2, {height}, {width}]",
            flow_path.display(),
            truth.shape
        )));
    }
    let truth = FlowField {
        width,
        height,
        u: truth.data[..plane].to_vec(),
        v: truth.data[plane..].to_vec(),
    };
    Ok((first, second, truth))
}

/// Runs every preset on every pair in `dir`, `repeats` times each (at least once).
pub fn run(dir: &Path, repeats: usize) -> Result<Vec<FlowResult>, FlowBenchError> {
    let listing = std::fs::read_dir(dir).map_err(|source| FlowBenchError::List {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut pairs: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().ends_with(".frames.npy"))
        .collect();
    pairs.sort();
    let mut results = Vec::new();
    for path in pairs {
        let (first, second, truth) = read_pair(&path)?;
        let sequence = path
            .file_name()
            .map(|n| n.to_string_lossy().replace(".frames.npy", ""))
            .unwrap_or_default();
        for (method, params) in presets() {
            let mut times = Vec::with_capacity(repeats.max(1));
            let mut flow = None;
            for _ in 0..repeats.max(1) {
                let clock = Instant::now();
                let computed =
                    dense_flow(&first, &second, &params).map_err(|e| FlowBenchError::Pair {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                times.push(clock.elapsed().as_secs_f64() * 1e3);
                flow = Some(computed);
            }
            times.sort_by(f64::total_cmp);
            let endpoint_error = flow
                .and_then(|f| f.endpoint_error(&truth))
                .unwrap_or(f64::NAN);
            results.push(FlowResult {
                sequence: sequence.clone(),
                method: method.to_string(),
                width: truth.width,
                height: truth.height,
                endpoint_error,
                median_ms: times[times.len() / 2],
            });
        }
    }
    Ok(results)
}
