//! Industrial defects (ISSTAD-edge) on factory-line cameras: camera frames resized to the
//! model's input ([`prepare`]), the model's per-pixel outputs on tract ([`model`]), and the
//! anomaly map, defect boxes, alert lifecycle and heatmap snapshots written next to alerts
//! ([`decide`]).

pub mod anomaly_map;
pub mod boxes;
mod decide;
mod detect;
mod model;
pub mod overlay;
pub mod patchcore;
mod prepare;

pub use decide::IndustrialDecide;
pub use detect::{IndustrialDetector, IndustrialSpec};
pub use model::{IsstadDetector, IsstadSpec, MapOutputs, PixelMaps};
pub use prepare::{FrameInput, IndustrialPrepare, Normalisation};

use std::path::PathBuf;

use serde::Deserialize;

use self::anomaly_map::{AnomalyMapError, ImageScore};
use self::overlay::OverlayError;
use crate::alert::MAX_REGIONS;
use crate::decide::NameTooLong;
use crate::detector::DetectorError;

/// The manifest's `family` of ISSTAD-edge models.
pub const FAMILY: &str = "isstad_edge";

/// Largest capture side a profile may ask GStreamer for; beyond it a typo would ask for
/// gigabytes per frame.
pub const MAX_CAPTURE_SIDE: u32 = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum IndustrialError {
    #[error("model {model}: setting {key}: {detail}")]
    ModelSetting {
        model: String,
        key: &'static str,
        detail: String,
    },
    #[error("model {model}: tensor {tensor}: expected {expected}, got {got}")]
    Tensor {
        model: String,
        tensor: String,
        expected: String,
        got: String,
    },
    #[error("industrial.{key} = {value}: {detail}")]
    Setting {
        key: &'static str,
        value: String,
        detail: String,
    },
    #[error("industrial.snapshot_dir cannot be created ({reason}): {}", path.display())]
    SnapshotDir { reason: String, path: PathBuf },
    #[error(transparent)]
    Map(#[from] AnomalyMapError),
    #[error(transparent)]
    Bank(Box<patchcore::bank::BankError>),
    #[error("image score {score} is not a finite number")]
    NonFiniteScore { score: f32 },
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error(transparent)]
    Name(#[from] NameTooLong),
    #[error(transparent)]
    Detector(#[from] DetectorError),
}

/// The input every factory-line graph takes: one `image`, f32 `[1, 3, side, side]`. Refuses
/// another, naming the tensor and what it is.
fn check_image_input(
    spec: &crate::detector::ModelSpec,
    side: usize,
) -> Result<(), IndustrialError> {
    use self::model::INPUT;
    use crate::detector::{ElementType, TensorSpec};
    let tensor = |tensor: &str, expected: String, got: String| IndustrialError::Tensor {
        model: spec.name.clone(),
        tensor: tensor.into(),
        expected,
        got,
    };
    match spec.inputs.as_slice() {
        [input] if input.label() == INPUT => {
            if input.dtype != ElementType::F32 || input.shape != [1, 3, side, side] {
                return Err(tensor(
                    INPUT,
                    format!("F32 {:?} (image_size {side})", [1, 3, side, side]),
                    format!("{:?} {:?}", input.dtype, input.shape),
                ));
            }
            Ok(())
        }
        inputs => Err(tensor(
            "inputs",
            format!("one input named {INPUT:?}"),
            format!(
                "{:?}",
                inputs.iter().map(TensorSpec::label).collect::<Vec<_>>()
            ),
        )),
    }
}

/// `[stream.industrial]` in a profile. Thresholds default to the model's manifest entry, which
/// `vigil-train isstad eval` fitted on held-out normal images.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndustrialSettings {
    /// How a frame's anomaly map becomes one score: `"mean"` (the paper's), `"max"`, or
    /// `{ top_k_mean = { fraction = 0.01 } }`.
    #[serde(default)]
    pub image_score: Option<ImageScore>,
    /// The part of the frame the model sees, in capture pixels; default: the whole frame. A
    /// PatchCore model learned its parts at one scale, so the region should frame the part as
    /// the fitting images did.
    #[serde(default)]
    pub region: Option<Region>,
    /// Cut the region into tiles the size of the parts a PatchCore model was fitted on (its
    /// manifest's `part_size`), each seen at that scale; the frame's score is the largest
    /// tile's and its map covers the region. For a region holding several parts' worth of
    /// pixels, where one resize to the model's input would shrink every defect.
    #[serde(default)]
    pub tiles: bool,
    /// Image score at or above which a defect event opens; default: the manifest's `threshold`.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Image score below which an open event ends; default 0.8 × `threshold`, so a defect
    /// hovering at the threshold does not open and end an event every frame.
    #[serde(default)]
    pub off_threshold: Option<f32>,
    /// Pixel-map score above which pixels belong to a defect box; default: the manifest's
    /// `pixel_threshold`.
    #[serde(default)]
    pub pixel_threshold: Option<f32>,
    /// Smallest defect box, in pixels of the model's S×S map.
    #[serde(default = "default_min_box_area")]
    pub min_box_area: u32,
    /// Most boxes an alert carries, strongest first (1 to 16).
    #[serde(default = "default_max_boxes")]
    pub max_boxes: usize,
    /// Where heatmap snapshots are written (relative to the profile; created if absent); none
    /// when absent.
    #[serde(default)]
    pub snapshot_dir: Option<PathBuf>,
    /// An open event writes a new snapshot on an update at most once per this many frames;
    /// 0 writes snapshots only when events open.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// The alert label.
    #[serde(default = "default_label")]
    pub label: String,
    /// Frame size a GStreamer source delivers (the model resizes it to its own input); V4L2
    /// sources set theirs in the source.
    #[serde(default = "default_capture_width")]
    pub capture_width: u32,
    #[serde(default = "default_capture_height")]
    pub capture_height: u32,
    /// Consecutive frames at or above `threshold` needed to open an event.
    #[serde(default = "default_open_after")]
    pub open_after: u32,
    /// Consecutive frames below `off_threshold` needed to end it.
    #[serde(default = "default_close_after")]
    pub close_after: u32,
    /// An open event reports a higher peak at most this often.
    #[serde(default = "default_update_interval_ms")]
    pub update_interval_ms: u64,
}

/// A rectangle of the frame, in capture pixels: `region = { x = 120, y = 40, width = 384,
/// height = 384 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Region {
    pub fn to_crop(self) -> crate::prepare::resize::Crop {
        crate::prepare::resize::Crop {
            x: self.x as usize,
            y: self.y as usize,
            width: self.width as usize,
            height: self.height as usize,
        }
    }
}

fn default_min_box_area() -> u32 {
    self::boxes::BoxConfig::default().min_area_map_pixels
}

fn default_max_boxes() -> usize {
    MAX_REGIONS
}

fn default_snapshot_every() -> u64 {
    10
}

fn default_label() -> String {
    "defect".into()
}

fn default_capture_width() -> u32 {
    640
}

fn default_capture_height() -> u32 {
    480
}

fn default_open_after() -> u32 {
    1
}

fn default_close_after() -> u32 {
    2
}

fn default_update_interval_ms() -> u64 {
    1_000
}

impl Default for IndustrialSettings {
    fn default() -> Self {
        Self {
            image_score: None,
            region: None,
            tiles: false,
            threshold: None,
            off_threshold: None,
            pixel_threshold: None,
            min_box_area: default_min_box_area(),
            max_boxes: default_max_boxes(),
            snapshot_dir: None,
            snapshot_every: default_snapshot_every(),
            label: default_label(),
            capture_width: default_capture_width(),
            capture_height: default_capture_height(),
            open_after: default_open_after(),
            close_after: default_close_after(),
            update_interval_ms: default_update_interval_ms(),
        }
    }
}

impl IndustrialSettings {
    /// Refuses settings that cannot work, naming the key and its value.
    pub fn validate(&self) -> Result<(), IndustrialError> {
        let bad = |key, value: &dyn std::fmt::Display, detail: &str| IndustrialError::Setting {
            key,
            value: value.to_string(),
            detail: detail.into(),
        };
        if let Some(rule) = self.image_score {
            rule.validate()?;
        }
        if let Some(region) = self.region {
            let inside = region.width >= 1
                && region.height >= 1
                && region
                    .x
                    .checked_add(region.width)
                    .is_some_and(|r| r <= self.capture_width)
                && region
                    .y
                    .checked_add(region.height)
                    .is_some_and(|b| b <= self.capture_height);
            if !inside {
                return Err(bad(
                    "region",
                    &format!(
                        "{}×{} at ({}, {})",
                        region.width, region.height, region.x, region.y
                    ),
                    &format!(
                        "must lie inside the {}×{} frame (capture_width × capture_height)",
                        self.capture_width, self.capture_height
                    ),
                ));
            }
        }
        if !(1..=MAX_REGIONS).contains(&self.max_boxes) {
            return Err(bad(
                "max_boxes",
                &self.max_boxes,
                &format!("an alert carries 1 to {MAX_REGIONS} boxes"),
            ));
        }
        for (key, side) in [
            ("capture_width", self.capture_width),
            ("capture_height", self.capture_height),
        ] {
            if !(1..=MAX_CAPTURE_SIDE).contains(&side) {
                return Err(bad(
                    key,
                    &side,
                    &format!("must be between 1 and {MAX_CAPTURE_SIDE} pixels"),
                ));
            }
        }
        for (key, value) in [
            ("threshold", self.threshold),
            ("off_threshold", self.off_threshold),
            ("pixel_threshold", self.pixel_threshold),
        ] {
            if let Some(value) = value
                && !value.is_finite()
            {
                return Err(bad(key, &value, "not a finite number"));
            }
        }
        if self.open_after == 0 || self.close_after == 0 {
            return Err(bad(
                if self.open_after == 0 {
                    "open_after"
                } else {
                    "close_after"
                },
                &0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IndustrialSettings, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn settings_parse_with_defaults_and_refuse_unknown_keys() {
        let settings = parse("").unwrap();
        assert_eq!(settings, IndustrialSettings::default());
        let settings = parse(
            "image_score = { top_k_mean = { fraction = 0.01 } }\nthreshold = 3.5\nmax_boxes = 4\nsnapshot_dir = \"snaps\"\nsnapshot_every = 0",
        )
        .unwrap();
        assert_eq!(
            settings.image_score,
            Some(ImageScore::TopKMean { fraction: 0.01 })
        );
        assert_eq!(
            (
                settings.threshold,
                settings.max_boxes,
                settings.snapshot_every
            ),
            (Some(3.5), 4, 0)
        );
        settings.validate().unwrap();
        let err = parse("snapshot_dri = \"x\"").unwrap_err().to_string();
        assert!(err.contains("snapshot_dri"), "{err}");
        assert!(parse("image_score = \"median\"").is_err());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        let cases = [
            ("max_boxes = 17", "industrial.max_boxes = 17"),
            ("max_boxes = 0", "industrial.max_boxes = 0"),
            ("capture_width = 0", "industrial.capture_width = 0"),
            ("threshold = nan", "industrial.threshold = NaN"),
            ("close_after = 0", "industrial.close_after = 0"),
            (
                "region = { x = 600, y = 0, width = 64, height = 64 }",
                "industrial.region = 64×64 at (600, 0): must lie inside the 640×480 frame",
            ),
            (
                "region = { x = 0, y = 0, width = 0, height = 64 }",
                "industrial.region = 0×64",
            ),
            (
                "image_score = { top_k_mean = { fraction = 2.0 } }",
                "top-k fraction 2",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
