//! The drone-payload family: push-broom lines (or whole scenes replayed line by line) →
//! streaming RX → a constant-false-alarm-rate threshold → alerts on connected groups of
//! anomalous pixels, with map coordinates when the data is georeferenced, and anomaly-map PNG
//! strips written as the flight goes.

mod decide;
mod detect;
mod fers;
pub mod map;
mod prepare;

pub use decide::AnomalyDecide;
pub use detect::StreamingRxDetect;
pub use fers::{FersBlockDetect, HyperspectralDetect};
pub use prepare::LinePrepare;

use std::path::PathBuf;

use serde::Deserialize;

use crate::hsi::streaming::StreamingSettings;
use crate::hsi::threshold::ThresholdRule;

/// The built-in detector a hyperspectral stream names as its `model`; any other name is a
/// FERS-edge model from the manifest (`fers-edge-200`, ...).
pub const STREAMING_RX: &str = "rx";

/// `[stream.hyperspectral]` in a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperspectralSettings {
    /// How scores become alarms; alerts carry the rule's name.
    #[serde(default = "default_threshold")]
    pub threshold: ThresholdRule,
    #[serde(default)]
    pub streaming: StreamingSettings,
    /// Keep only the first this many bands (as FERS does); 0 keeps them all.
    #[serde(default)]
    pub bands: usize,
    /// Smallest group of connected anomalous pixels that raises an alert.
    #[serde(default = "default_min_pixels")]
    pub min_pixels: usize,
    /// Where anomaly-map PNG strips go (relative to the profile); none when absent.
    #[serde(default)]
    pub map_dir: Option<PathBuf>,
    /// Lines per anomaly-map strip.
    #[serde(default = "default_map_lines")]
    pub map_lines: usize,
    /// The alert label.
    #[serde(default = "default_label")]
    pub label: String,
    /// Threads for the covariance and scoring kernels.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_threshold() -> ThresholdRule {
    ThresholdRule::CfarChi2 { p_fa: 1e-4 }
}

fn default_min_pixels() -> usize {
    1
}

fn default_map_lines() -> usize {
    512
}

fn default_label() -> String {
    "spectral_anomaly".into()
}

fn default_threads() -> usize {
    2
}

impl Default for HyperspectralSettings {
    fn default() -> HyperspectralSettings {
        HyperspectralSettings {
            threshold: default_threshold(),
            streaming: StreamingSettings::default(),
            bands: 0,
            min_pixels: default_min_pixels(),
            map_dir: None,
            map_lines: default_map_lines(),
            label: default_label(),
            threads: default_threads(),
        }
    }
}
