//! The factory line's two methods behind one detect stage: ISSTAD-edge (P and R from one
//! graph; the decide stage scores them) and PatchCore (a backbone and a memory bank; scored
//! here). The manifest entry's family picks the method.

use std::path::Path;

use super::anomaly_map::ImageScore;
use super::model::{IsstadDetector, IsstadSpec, MapOutputs, PixelMaps};
use super::patchcore::{PatchCoreDetector, PatchCoreSpec};
use super::prepare::{FrameInput, Normalisation};
use super::{IndustrialError, IndustrialSettings};
use crate::detector::Plan;
use crate::pipeline::{Detect, StageError};

/// Which method a manifest entry is, with its checked settings.
#[derive(Debug, Clone, PartialEq)]
pub enum IndustrialSpec {
    Isstad(IsstadSpec),
    PatchCore(PatchCoreSpec),
}

impl IndustrialSpec {
    /// The families of the factory line.
    pub const FAMILIES: [&'static str; 2] = [super::FAMILY, super::patchcore::FAMILY];

    /// Reads a manifest entry of either family; `manifest_dir` resolves PatchCore's bank.
    pub fn from_manifest(
        spec: &crate::detector::ModelSpec,
        manifest_dir: &Path,
    ) -> Result<Self, IndustrialError> {
        if spec.family == super::patchcore::FAMILY {
            Ok(Self::PatchCore(PatchCoreSpec::from_manifest(
                spec,
                manifest_dir,
            )?))
        } else {
            Ok(Self::Isstad(IsstadSpec::from_manifest(spec)?))
        }
    }

    pub fn model(&self) -> &str {
        match self {
            Self::Isstad(spec) => &spec.model,
            Self::PatchCore(spec) => &spec.model,
        }
    }

    /// Side of the model's square input and of its pixel map.
    pub fn side(&self) -> usize {
        match self {
            Self::Isstad(spec) => spec.side,
            Self::PatchCore(spec) => spec.side,
        }
    }

    /// How frames are normalised for the model: ISSTAD's mean/std 0.5, ImageNet's for the
    /// pretrained backbone.
    pub fn normalisation(&self) -> Normalisation {
        match self {
            Self::Isstad(_) => Normalisation::Half,
            Self::PatchCore(_) => Normalisation::ImageNet,
        }
    }

    pub fn pixel_threshold(&self) -> Option<f32> {
        match self {
            Self::Isstad(spec) => spec.pixel_threshold,
            Self::PatchCore(spec) => spec.pixel_threshold,
        }
    }

    /// The ISSTAD map's σ; `None` for methods that hand over a finished map.
    pub fn isstad_map_sigma(&self) -> Option<f32> {
        match self {
            Self::Isstad(spec) => Some(spec.map_sigma),
            Self::PatchCore(_) => None,
        }
    }

    /// The image-score rule the profile asks for, checked against the method: ISSTAD's rules
    /// are the profile's choice (the paper's mean by default); PatchCore has its own score.
    pub fn image_score(
        &self,
        settings: &IndustrialSettings,
    ) -> Result<Option<ImageScore>, IndustrialError> {
        match (self, settings.image_score) {
            (Self::Isstad(_), rule) => Ok(Some(rule.unwrap_or_default())),
            (Self::PatchCore(_), None) => Ok(None),
            (Self::PatchCore(spec), Some(rule)) => Err(IndustrialError::Setting {
                key: "image_score",
                value: format!("{rule:?}"),
                detail: format!(
                    "model {} is a PatchCore model, which scores a frame by its re-weighted \
                     largest patch distance; image_score applies to ISSTAD models only",
                    spec.model
                ),
            }),
        }
    }

    /// The fitted image threshold for the profile's score rule, if the model carries one.
    pub fn threshold_for(&self, rule: Option<ImageScore>) -> Option<f32> {
        match (self, rule) {
            (Self::Isstad(spec), rule) => spec.threshold_for(rule.unwrap_or_default()),
            (Self::PatchCore(spec), _) => Some(spec.image_threshold),
        }
    }
}

/// The detect stage of a factory-line stream.
#[expect(
    clippy::large_enum_variant,
    reason = "one per stream, built once and moved into its stage thread: its size is never copied in a loop"
)]
pub enum IndustrialDetector {
    Isstad(IsstadDetector),
    PatchCore(Box<PatchCoreDetector>),
}

impl IndustrialDetector {
    /// The detector of `plan`'s manifest entry; `manifest_dir` resolves PatchCore's bank.
    pub fn new(plan: &Plan, manifest_dir: &Path) -> Result<Self, IndustrialError> {
        match IndustrialSpec::from_manifest(plan.spec(), manifest_dir)? {
            IndustrialSpec::Isstad(_) => Ok(Self::Isstad(IsstadDetector::new(plan)?)),
            // One thread: parallelism comes from the pipeline's stages and streams, and a
            // second core is what prepare and decide run on.
            IndustrialSpec::PatchCore(spec) => Ok(Self::PatchCore(Box::new(
                PatchCoreDetector::new(plan, spec, 1)?,
            ))),
        }
    }

    pub fn spec(&self) -> IndustrialSpec {
        match self {
            Self::Isstad(detector) => IndustrialSpec::Isstad(detector.spec().clone()),
            Self::PatchCore(detector) => IndustrialSpec::PatchCore(detector.spec().clone()),
        }
    }
}

impl Detect for IndustrialDetector {
    type Input = FrameInput;
    type Output = PixelMaps;

    fn detect(&mut self, input: FrameInput) -> Result<PixelMaps, StageError> {
        let (side, outputs) = match self {
            Self::Isstad(detector) => {
                let side = detector.spec().side;
                let (probabilities, reconstruction_error) = detector.run(&input.image)?;
                (
                    side,
                    MapOutputs::Isstad {
                        probabilities: probabilities.to_vec(),
                        reconstruction_error: reconstruction_error.to_vec(),
                    },
                )
            }
            Self::PatchCore(detector) => {
                let score = detector.run(&input.image)?;
                (
                    detector.spec().side,
                    MapOutputs::Scored {
                        map: detector.map().to_vec(),
                        score,
                    },
                )
            }
        };
        Ok(PixelMaps {
            frame: input.frame,
            region: input.region,
            side,
            outputs,
        })
    }
}
