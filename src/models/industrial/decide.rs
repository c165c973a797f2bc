//! P and R to alerts: the anomaly map and image score ([`AnomalyMapper`]), one defect event per
//! stream opened and ended with hysteresis on the image score, defect boxes in frame pixels
//! ([`BoxFinder`]) as the alert's regions, and heatmap snapshots ([`HeatmapOverlay`]) named
//! after the alert that carries them.
//!
//! Snapshots cost a PNG encode and a disk write in the decide thread, so they are written when
//! an event opens and, on updates, at most once per `snapshot_every` frames: disk I/O stays
//! bounded however long a defect sits in view.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::anomaly_map::{AnomalyMapError, AnomalyMapper, ImageScore};
use super::boxes::{BoxConfig, BoxFinder, DefectBox};
use super::detect::IndustrialSpec;
use super::model::{MapOutputs, PixelMaps};
use super::overlay::{FrameRgb, HeatmapOverlay, MapView, ScoreRange};
use super::{IndustrialError, IndustrialSettings};
use crate::alert::{Alert, MAX_REGIONS, Name, Region, SnapshotName};
use crate::capture::Stamp;
use crate::decide::{AlertFactory, Hysteresis, Tracker, Transition, name};
use crate::pipeline::Decide;

/// `off_threshold` as a share of `threshold` when the profile does not set it.
const DEFAULT_OFF_RATIO: f32 = 0.8;

pub struct IndustrialDecide {
    /// The image score of the last frame.
    last_score: f32,
    factory: AlertFactory,
    stream: Name,
    label: Name,
    tracker: Tracker,
    event: u64,
    threshold: f32,
    pixel_threshold: f32,
    /// ISSTAD's map and score rule; `None` for methods that hand over a finished map.
    mapper: Option<AnomalyMapper>,
    boxes: BoxFinder,
    overlay: HeatmapOverlay,
    range: ScoreRange,
    /// The frame's pixel map; computed only when it is read (the mean score does not need it).
    map: Vec<f32>,
    /// This frame's defect boxes.
    found: heapless::Vec<DefectBox, MAX_REGIONS>,
    /// The boxes of the open event's strongest frame, which its end alert repeats.
    peak_regions: heapless::Vec<Region, MAX_REGIONS>,
    peak_score: f32,
    snapshot_dir: Option<PathBuf>,
    snapshot_every: u64,
    /// Sequence number of the frame the last snapshot of the open event was drawn on.
    last_snapshot_seq: Option<u64>,
    last: Option<Stamp>,
}

impl IndustrialDecide {
    /// `snapshot_dir` is the settings' folder resolved against the profile; it is created
    /// here, so a folder that cannot exist is refused before the stream starts.
    pub fn new(
        stream: &str,
        model: &IndustrialSpec,
        settings: &IndustrialSettings,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<Self, IndustrialError> {
        settings.validate()?;
        let rule = model.image_score(settings)?;
        // A threshold belongs to its score rule: the mean's would be meaningless for the max.
        let threshold = match settings.threshold {
            Some(threshold) => threshold,
            None => model
                .threshold_for(rule)
                .ok_or_else(|| IndustrialError::ModelSetting {
                    model: model.model().to_string(),
                    key: "image_thresholds",
                    detail: format!(
                        "no threshold fitted for image_score {rule:?}; set industrial.threshold"
                    ),
                })?,
        };
        let mut hysteresis = Hysteresis::new(
            threshold,
            settings
                .off_threshold
                .unwrap_or(threshold * DEFAULT_OFF_RATIO),
        );
        hysteresis.open_after = settings.open_after;
        hysteresis.close_after = settings.close_after;
        hysteresis.update_interval_ms = settings.update_interval_ms;
        hysteresis
            .validate()
            .map_err(|detail| IndustrialError::Setting {
                key: "threshold",
                value: format!("{threshold} (off {})", hysteresis.off),
                detail,
            })?;
        let pixel_threshold = settings
            .pixel_threshold
            .or(model.pixel_threshold())
            .ok_or_else(|| IndustrialError::ModelSetting {
                model: model.model().to_string(),
                key: "pixel_threshold",
                detail: "missing; set industrial.pixel_threshold in the profile".into(),
            })?;
        let range =
            ScoreRange::up_to_twice(pixel_threshold).map_err(|_| IndustrialError::Setting {
                key: "pixel_threshold",
                value: pixel_threshold.to_string(),
                detail: "must be above 0: snapshots colour pixel scores from 0 to twice it".into(),
            })?;
        if let Some(dir) = &snapshot_dir {
            // The stream name starts every snapshot's file name; a separator would put it
            // elsewhere.
            if stream.contains(['/', '\\', '\0']) {
                return Err(IndustrialError::Setting {
                    key: "snapshot_dir",
                    value: dir.display().to_string(),
                    detail: format!(
                        "stream name {stream:?} cannot start a file name (it holds a path separator)"
                    ),
                });
            }
            std::fs::create_dir_all(dir).map_err(|err| IndustrialError::SnapshotDir {
                reason: err.to_string(),
                path: dir.clone(),
            })?;
        }
        let side = model.side();
        let mapper = match (model.isstad_map_sigma(), rule) {
            (Some(sigma), Some(rule)) => Some(AnomalyMapper::new(sigma, rule)?),
            _ => None,
        };
        Ok(Self {
            last_score: f32::NAN,
            factory: AlertFactory::new(stream, model.model())?,
            stream: name("stream name", stream)?,
            label: name("alert label", &settings.label)?,
            tracker: Tracker::new(hysteresis),
            event: 0,
            threshold,
            pixel_threshold,
            mapper,
            boxes: BoxFinder::new(BoxConfig {
                min_area_map_pixels: settings.min_box_area,
                max_boxes: settings.max_boxes,
            }),
            overlay: HeatmapOverlay::new(),
            range,
            map: vec![0.0; side * side],
            found: heapless::Vec::new(),
            peak_regions: heapless::Vec::new(),
            peak_score: f32::NEG_INFINITY,
            snapshot_dir,
            snapshot_every: settings.snapshot_every,
            last_snapshot_seq: None,
            last: None,
        })
    }

    /// The image threshold events open at.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The pixel-map threshold defect boxes are cut at.
    pub fn pixel_threshold(&self) -> f32 {
        self.pixel_threshold
    }

    /// Whether the image score can be had without the pixel map (ISSTAD's mean reads P and R).
    fn score_skips_map(&self) -> bool {
        self.mapper
            .as_ref()
            .is_some_and(|mapper| mapper.image_score_rule() == ImageScore::Mean)
    }

    /// The frame's pixel map, into `self.map`.
    fn compute_map(&mut self, maps: &PixelMaps) -> Result<(), IndustrialError> {
        self.map.resize(maps.side * maps.side, 0.0);
        match (&maps.outputs, &mut self.mapper) {
            (
                MapOutputs::Isstad {
                    probabilities,
                    reconstruction_error,
                },
                Some(mapper),
            ) => mapper.map(
                probabilities,
                reconstruction_error,
                maps.side,
                &mut self.map,
            )?,
            (MapOutputs::Scored { map, .. }, _) => {
                if map.len() != self.map.len() {
                    return Err(AnomalyMapError::BufferLength {
                        buffer: "pixel map",
                        side: maps.side,
                        expected: self.map.len(),
                        got: map.len(),
                    }
                    .into());
                }
                self.map.copy_from_slice(map);
            }
            (MapOutputs::Isstad { .. }, None) => return Err(mismatched_outputs()),
        }
        Ok(())
    }

    /// The frame's image score; computes the pixel map first when `with_map` is set or the
    /// score needs it (all but ISSTAD's mean).
    fn score(&mut self, maps: &PixelMaps, with_map: bool) -> Result<f32, IndustrialError> {
        self.map.resize(maps.side * maps.side, 0.0);
        if with_map || !self.score_skips_map() {
            self.compute_map(maps)?;
        }
        match (&maps.outputs, &mut self.mapper) {
            (
                MapOutputs::Isstad {
                    probabilities,
                    reconstruction_error,
                },
                Some(mapper),
            ) => Ok(mapper.image_score(
                probabilities,
                reconstruction_error,
                &self.map,
                maps.side,
            )?),
            (MapOutputs::Scored { score, .. }, _) if score.is_finite() => Ok(*score),
            (MapOutputs::Scored { score, .. }, _) => {
                Err(IndustrialError::NonFiniteScore { score: *score })
            }
            (MapOutputs::Isstad { .. }, None) => Err(mismatched_outputs()),
        }
    }

    /// This frame's defect boxes, from the pixel map `score` computed.
    fn find_boxes(&mut self, maps: &PixelMaps) -> Result<(), IndustrialError> {
        // Boxes are found in the region the model saw, then placed in the frame.
        let region = maps.region;
        let found = self
            .boxes
            .find(
                &self.map,
                maps.side,
                self.pixel_threshold,
                region.width,
                region.height,
            )
            .map_err(|err| IndustrialError::Setting {
                key: "pixel_threshold",
                value: self.pixel_threshold.to_string(),
                detail: err.to_string(),
            })?;
        self.found.clear();
        for defect in found.boxes.iter().take(MAX_REGIONS) {
            let mut placed = *defect;
            placed.x = placed.x.saturating_add(region.x as u32);
            placed.y = placed.y.saturating_add(region.y as u32);
            let _ = self.found.push(placed);
        }
        Ok(())
    }

    fn regions(&self) -> heapless::Vec<Region, MAX_REGIONS> {
        self.found.iter().map(DefectBox::to_region).collect()
    }

    /// Writes the frame's snapshot (the frame and its heatmap over the model's region, side by
    /// side) as `<stream>-<event>-<frame seq>.heatmap.png`; returns the file name, or `None`
    /// (logged) when it could not be written: the alert matters more than its picture.
    fn snapshot(&mut self, maps: &PixelMaps) -> Option<SnapshotName> {
        let dir = self.snapshot_dir.as_ref()?;
        let mut stem: SnapshotName = heapless::String::new();
        // Fits: 48 bytes of stream name, two u64s and the separators are under 128 bytes.
        write!(
            stem,
            "{}-{}-{}",
            self.stream, self.event, maps.frame.stamp.seq
        )
        .ok()?;
        let frame = FrameRgb {
            rgb: &maps.frame.rgb,
            width: maps.frame.width as usize,
            height: maps.frame.height as usize,
        };
        let map = MapView {
            scores: &self.map,
            side: maps.side,
            region: maps.region,
        };
        match self
            .overlay
            .write_png(frame, map, self.range, &self.found, dir, &stem)
        {
            Ok(path) => {
                self.last_snapshot_seq = Some(maps.frame.stamp.seq);
                log::info!(
                    "stream {}: heatmap snapshot {}",
                    self.stream,
                    path.display()
                );
                let file = path.file_name()?.to_str()?;
                SnapshotName::try_from(file).ok()
            }
            Err(err) => {
                log::warn!("stream {}: {err}", self.stream);
                None
            }
        }
    }

    fn emit_alert(
        &mut self,
        transition: Transition,
        stamp: &Stamp,
        maps: Option<&PixelMaps>,
        emit: &mut dyn FnMut(Alert),
    ) {
        let regions = match transition {
            Transition::Ended { .. } => self.peak_regions.clone(),
            _ => self.regions(),
        };
        let mut alert = self.factory.make(
            &self.label,
            &mut self.event,
            self.threshold,
            transition,
            stamp,
            &regions,
        );
        if let Some(maps) = maps {
            let due = match transition {
                Transition::Opened { .. } => true,
                Transition::Updated { .. } => {
                    self.snapshot_every > 0
                        && self.last_snapshot_seq.is_none_or(|seq| {
                            maps.frame.stamp.seq.saturating_sub(seq) >= self.snapshot_every
                        })
                }
                Transition::Ended { .. } => false,
            };
            if due {
                alert.snapshot = self.snapshot(maps);
            }
        }
        emit(alert);
    }
}

impl Decide for IndustrialDecide {
    type Input = PixelMaps;

    fn scores(&self) -> Vec<(Name, f32)> {
        vec![(self.label.clone(), self.last_score)]
    }

    fn decide(&mut self, stamp: Stamp, maps: PixelMaps, emit: &mut dyn FnMut(Alert)) {
        self.last = Some(stamp);
        // Boxes are only read while an event is open or opening, so the map is only computed
        // then (or when the score rule reads it anyway).
        let active = self.tracker.is_active();
        let score = match self.score(&maps, active) {
            Ok(score) => score,
            Err(err) => {
                // A frame with non-finite outputs cannot hold an event open nor open one.
                log::warn!("stream {}: frame {}: {err}", self.stream, stamp.seq);
                f32::NAN
            }
        };
        self.last_score = score;
        let transition = self.tracker.observe(score, stamp.pts, stamp.pts);
        if !self.tracker.is_active() {
            self.found.clear();
            if let Some(transition) = transition {
                self.emit_alert(transition, &stamp, None, emit);
            }
            self.peak_regions.clear();
            self.peak_score = f32::NEG_INFINITY;
            self.last_snapshot_seq = None;
            return;
        }
        // An event opened on this frame: its boxes need the map the score may have skipped.
        let map_missing = !active && self.score_skips_map();
        if map_missing && let Err(err) = self.compute_map(&maps) {
            log::warn!("stream {}: frame {}: {err}", self.stream, stamp.seq);
        }
        if let Err(err) = self.find_boxes(&maps) {
            log::warn!("stream {}: frame {}: {err}", self.stream, stamp.seq);
            self.found.clear();
        }
        if score > self.peak_score {
            self.peak_score = score;
            self.peak_regions = self.regions();
        }
        if let Some(transition) = transition {
            self.emit_alert(transition, &stamp, Some(&maps), emit);
        }
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Alert)) {
        let Some(last) = self.last else { return };
        if let Some(transition) = self.tracker.finish() {
            self.emit_alert(transition, &last, None, emit);
        }
    }
}

/// ISSTAD's P and R reached a decide stage built for a finished map: the stages were built for
/// different models, which `runtime` never does.
fn mismatched_outputs() -> IndustrialError {
    IndustrialError::Setting {
        key: "model",
        value: "ISSTAD outputs".into(),
        detail: "reached a decide stage built for a PatchCore model".into(),
    }
}
