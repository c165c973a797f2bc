//! One entry point for scoring a whole scene with any of the conventional detectors, as the
//! `vigil hsi` command and the evaluation use it.

use faer::Par;

use super::local::{DualWindow, crd, local_rx, slrx};
use super::{Cube, HsiError};

/// The conventional detectors, with their settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "detector", rename_all = "lowercase", deny_unknown_fields)]
pub enum SceneDetector {
    /// Global RX: squared Mahalanobis distance to the scene's mean and covariance.
    Rx,
    /// Local RX on a dual window.
    Lrx { window: DualWindow },
    /// The FERD authors' simplified local RX on `block_num` × `block_num` blocks.
    Slrx { block_num: usize },
    /// Collaborative representation on a dual window, regularised by `lambda`.
    Crd { window: DualWindow, lambda: f64 },
}

impl SceneDetector {
    pub fn name(&self) -> &'static str {
        match self {
            SceneDetector::Rx => "rx",
            SceneDetector::Lrx { .. } => "lrx",
            SceneDetector::Slrx { .. } => "slrx",
            SceneDetector::Crd { .. } => "crd",
        }
    }

    /// Scores every pixel, row-major; higher is more anomalous.
    pub fn score(&self, cube: &Cube, threads: usize) -> Result<Vec<f32>, HsiError> {
        let threads = threads.max(1);
        match *self {
            SceneDetector::Rx => {
                let par = if threads == 1 {
                    Par::Seq
                } else {
                    Par::rayon(threads)
                };
                super::background::global_rx(cube, par)
            }
            SceneDetector::Lrx { window } => local_rx(cube, window, threads),
            SceneDetector::Slrx { block_num } => slrx(cube, block_num),
            SceneDetector::Crd { window, lambda } => crd(cube, window, lambda, threads),
        }
    }
}
