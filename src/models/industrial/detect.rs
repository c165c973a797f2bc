//! The factory line's two methods behind one detect stage: ISSTAD-edge (P and R from one
//! graph; the decide stage scores them) and PatchCore (a backbone and a memory bank; scored
//! here). The manifest entry's family picks the method.

use std::path::Path;

use super::anomaly_map::ImageScore;
use super::model::{IsstadDetector, IsstadSpec, MapOutputs, PixelMaps};
use super::patchcore::{PatchCoreDetector, PatchCoreSpec};
use super::prepare::{FrameInput, IndustrialPrepare, Normalisation};
use super::{IndustrialError, IndustrialSettings};
use crate::detector::Plan;
use crate::pipeline::{Detect, StageError};
use crate::prepare::resize::Crop;

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

    /// The tile size, in frame pixels, the profile's `tiles` asks for: the parts the PatchCore
    /// model was fitted on; `None` when tiles are off.
    pub fn tile_size(
        &self,
        settings: &IndustrialSettings,
    ) -> Result<Option<(usize, usize)>, IndustrialError> {
        if !settings.tiles {
            return Ok(None);
        }
        let refuse = |detail: String| IndustrialError::Setting {
            key: "tiles",
            value: "true".into(),
            detail,
        };
        match self {
            Self::Isstad(spec) => Err(refuse(format!(
                "model {} is an ISSTAD-edge model, which scores whole frames; tiles apply to PatchCore models",
                spec.model
            ))),
            Self::PatchCore(spec) => spec.part_size.map(Some).ok_or_else(|| {
                refuse(format!(
                    "model {} records no part_size (the size of the images it was fitted on): fit and install it again with vigil-train industrial",
                    spec.model
                ))
            }),
        }
    }

    /// The prepare stage a stream of this model needs under `settings`: the model's input
    /// side and normalisation, the profile's region, and its tiles when asked for.
    pub fn prepare(
        &self,
        settings: &IndustrialSettings,
    ) -> Result<IndustrialPrepare, IndustrialError> {
        IndustrialPrepare::tiled(
            self.side(),
            self.normalisation(),
            settings.region.map(|region| region.to_crop()),
            self.tile_size(settings)?,
        )
        .map_err(|err| IndustrialError::Setting {
            key: "region",
            value: format!("{:?}", settings.region),
            detail: err.to_string(),
        })
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
                if input.tiles.len() != 1 {
                    return Err(StageError {
                        stage: "detect defects",
                        detail: format!(
                            "{} tiles for an ISSTAD-edge model, which takes one image per frame",
                            input.tiles.len()
                        ),
                    });
                }
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
                let side = detector.spec().side;
                let block = 3 * side * side;
                if input.tiles.len() == 1 {
                    let score = detector.run(&input.image)?;
                    (
                        side,
                        MapOutputs::Scored {
                            map: detector.map().to_vec(),
                            score,
                        },
                    )
                } else {
                    let out_side = mosaic_side(&input.tiles, side);
                    let mut map = vec![f32::NEG_INFINITY; out_side * out_side];
                    let mut score = f32::NEG_INFINITY;
                    for (tile, image) in input.tiles.iter().zip(input.image.chunks_exact(block)) {
                        score = score.max(detector.run(image)?);
                        paste_tile(
                            input.region,
                            *tile,
                            detector.map(),
                            side,
                            &mut map,
                            out_side,
                        );
                    }
                    (out_side, MapOutputs::Scored { map, score })
                }
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

/// Most pixels a side of a tiled region's map may have.
const MAX_MOSAIC_SIDE: usize = 2048;

/// Side of the square map over a tiled region: each tile keeps about its own map's resolution
/// along the region's longer run of tiles.
fn mosaic_side(tiles: &[Crop], side: usize) -> usize {
    let distinct = |key: fn(&Crop) -> usize| {
        let mut values: Vec<usize> = tiles.iter().map(key).collect();
        values.sort_unstable();
        values.dedup();
        values.len()
    };
    let across = distinct(|t| t.x).max(distinct(|t| t.y)).max(1);
    (side * across).min(MAX_MOSAIC_SIDE)
}

/// Writes a tile's `side`×`side` map into the square `out_side` map over `region`, sampling it
/// bilinearly at each covered pixel's centre; where tiles overlap the larger value stays.
fn paste_tile(
    region: Crop,
    tile: Crop,
    tile_map: &[f32],
    side: usize,
    out: &mut [f32],
    out_side: usize,
) {
    let scale_x = region.width as f64 / out_side as f64;
    let scale_y = region.height as f64 / out_side as f64;
    let sample = |position: f64, start: usize, length: usize| {
        // Frame position to the tile map's pixel coordinate (half-pixel centres), clamped.
        let local = (position - start as f64) * side as f64 / length as f64 - 0.5;
        let local = local.clamp(0.0, (side - 1) as f64);
        let low = local.floor() as usize;
        (low, (low + 1).min(side - 1), (local - low as f64) as f32)
    };
    for v in 0..out_side {
        let y = region.y as f64 + (v as f64 + 0.5) * scale_y;
        if y < tile.y as f64 || y >= (tile.y + tile.height) as f64 {
            continue;
        }
        let (top, bottom, fy) = sample(y, tile.y, tile.height);
        for u in 0..out_side {
            let x = region.x as f64 + (u as f64 + 0.5) * scale_x;
            if x < tile.x as f64 || x >= (tile.x + tile.width) as f64 {
                continue;
            }
            let (left, right, fx) = sample(x, tile.x, tile.width);
            let at = |row: usize, column: usize| tile_map[row * side + column];
            let upper = at(top, left) + (at(top, right) - at(top, left)) * fx;
            let lower = at(bottom, left) + (at(bottom, right) - at(bottom, left)) * fx;
            let value = upper + (lower - upper) * fy;
            let slot = &mut out[v * out_side + u];
            *slot = slot.max(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_need_a_patchcore_model_that_records_its_part_size() {
        let tiled = IndustrialSettings {
            tiles: true,
            ..IndustrialSettings::default()
        };
        let isstad = IndustrialSpec::Isstad(IsstadSpec {
            model: "isstad-x".into(),
            side: 32,
            map_sigma: 4.0,
            image_threshold: 1.0,
            pixel_threshold: Some(1.0),
            rule_thresholds: Vec::new(),
        });
        let err = isstad.tile_size(&tiled).unwrap_err().to_string();
        assert!(
            err.contains("industrial.tiles") && err.contains("ISSTAD-edge"),
            "{err}"
        );
        assert_eq!(
            isstad.tile_size(&IndustrialSettings::default()).unwrap(),
            None
        );
        let patchcore = |part_size| {
            IndustrialSpec::PatchCore(PatchCoreSpec {
                model: "patchcore-x".into(),
                side: 224,
                taps: Vec::new(),
                map_sigma: 4.0,
                neighbours: 9,
                image_threshold: 1.0,
                pixel_threshold: Some(1.0),
                part_size,
                backbone_sha256: String::new(),
                bank: std::path::PathBuf::new(),
            })
        };
        assert_eq!(
            patchcore(Some((300, 200))).tile_size(&tiled).unwrap(),
            Some((300, 200))
        );
        let err = patchcore(None).tile_size(&tiled).unwrap_err().to_string();
        assert!(err.contains("no part_size"), "{err}");
    }

    #[test]
    fn tiles_paste_into_one_map_over_the_region() {
        // Two 2×2-pixel tiles side by side over a 4×2 region, each with a constant 2×2 map; the
        // region's map is 4×4 (two tiles across), the left half from the first tile, the right
        // from the second.
        let region = Crop::whole(4, 2);
        let tiles = [
            Crop {
                x: 0,
                y: 0,
                width: 2,
                height: 2,
            },
            Crop {
                x: 2,
                y: 0,
                width: 2,
                height: 2,
            },
        ];
        let out_side = mosaic_side(&tiles, 2);
        assert_eq!(out_side, 4);
        let mut out = vec![f32::NEG_INFINITY; 16];
        paste_tile(region, tiles[0], &[1.0; 4], 2, &mut out, out_side);
        paste_tile(region, tiles[1], &[5.0; 4], 2, &mut out, out_side);
        for row in out.chunks_exact(4) {
            assert_eq!(row, &[1.0, 1.0, 5.0, 5.0]);
        }
        // Overlapping tiles keep the larger value.
        let mut out = vec![f32::NEG_INFINITY; 16];
        paste_tile(region, Crop::whole(3, 2), &[2.0; 4], 2, &mut out, out_side);
        paste_tile(region, tiles[1], &[1.0; 4], 2, &mut out, out_side);
        assert_eq!(&out[..4], &[2.0, 2.0, 2.0, 1.0]);
    }
}
