//! FERS-edge at inference: the scene normalised as FERS normalises it, its spectral and spatial
//! feature maps from the int8 (or fp32) ONNX model run with tract tile by tile, and the fused
//! detector FERS feeds them to (`../shared/reference/papers.md` §1.1).
//!
//! The model reads fixed `T×T` tiles of the first `C` bands, channels last (`[1, T, T, C]`, the
//! cube's own BIP order) and returns two `[1, T, T, C]` maps, `spectral` and `spatial`. A scene
//! is mirrored out to whole tiles, run tile by tile and cropped back. The student pools each
//! tile globally, so its context is the tile: 64×64, the HAD100 scene size it is trained on.

use tract_onnx::prelude::Tensor;

use super::local::min_max;
use super::{Cube, HsiError};
use crate::detector::{Manifest, Plan, Session};

/// Names of the model's outputs.
pub const SPECTRAL_OUTPUT: &str = "spectral";
pub const SPATIAL_OUTPUT: &str = "spatial";

/// FERS's input scaling: a global min–max over the whole cube to [−1, 1], then ×0.1.
/// A constant cube has no range to scale and is refused.
pub fn normalise(cube: &Cube) -> Result<Cube, HsiError> {
    let unit = super::local::normalised(cube)?;
    let data = unit.into_iter().map(|v| (2.0 * v - 1.0) * 0.1).collect();
    let mut out = Cube::from_bip(cube.rows(), cube.cols(), cube.bands(), data)?;
    out.wavelengths = cube.wavelengths.clone();
    out.map_info = cube.map_info.clone();
    Ok(out)
}

/// How the feature maps and the data are combined before the detector (FERS's `get_admap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// One detector on `data + spectral + spatial` (FERS at 100 and 200 bands).
    Sum,
    /// Two detectors, on `data + spatial` and `data + spectral`, each min–max scaled, and their
    /// product (FERS's "ham" mode at 50 bands).
    Hadamard,
}

impl Fusion {
    /// The paper's choice for a band count.
    pub fn for_bands(bands: usize) -> Fusion {
        if bands <= 50 {
            Fusion::Hadamard
        } else {
            Fusion::Sum
        }
    }
}

/// The two feature maps of one scene, each the scene's shape.
#[derive(Debug, Clone)]
pub struct Features {
    pub spectral: Cube,
    pub spatial: Cube,
}

/// Scores `data` fused with `features` by `fusion`, with `detector` (global RX, local RX, …)
/// scoring each fused cube.
pub fn fused_scores(
    data: &Cube,
    features: &Features,
    fusion: Fusion,
    detector: impl Fn(&Cube) -> Result<Vec<f32>, HsiError>,
) -> Result<Vec<f32>, HsiError> {
    let plus = |maps: &[&Cube]| with_maps(data, maps);
    match fusion {
        Fusion::Sum => detector(&plus(&[&features.spectral, &features.spatial])?),
        Fusion::Hadamard => {
            let spatial = min_max(&detector(&plus(&[&features.spatial])?)?);
            let spectral = min_max(&detector(&plus(&[&features.spectral])?)?);
            Ok(spatial.iter().zip(&spectral).map(|(a, b)| a * b).collect())
        }
    }
}

/// `data + Σ maps`, each map the scene's shape.
pub fn with_maps(data: &Cube, maps: &[&Cube]) -> Result<Cube, HsiError> {
    let mut sum = data.data().to_vec();
    for map in maps {
        if (map.rows(), map.cols(), map.bands()) != (data.rows(), data.cols(), data.bands()) {
            return Err(HsiError::Detector(format!(
                "a {}×{}×{} feature map does not fit the {}×{}×{} scene",
                map.rows(),
                map.cols(),
                map.bands(),
                data.rows(),
                data.cols(),
                data.bands()
            )));
        }
        for (s, v) in sum.iter_mut().zip(map.data()) {
            *s += v;
        }
    }
    Cube::from_bip(data.rows(), data.cols(), data.bands(), sum)
}

/// Index `i` of a padded axis mapped into `0..n` by mirroring about the edge pixels (numpy's
/// `reflect`), repeated for pads wider than the axis.
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    if m < n as isize {
        m as usize
    } else {
        (period - m) as usize
    }
}

/// A loaded FERS-edge model.
#[derive(Debug, Clone)]
pub struct FersEdge {
    plan: Plan,
    tile: usize,
    bands: usize,
    outputs: [usize; 2],
}

impl FersEdge {
    /// Loads model `name` from `manifest` (see [`Self::new`]).
    pub fn load(manifest: &Manifest, name: &str) -> Result<FersEdge, HsiError> {
        let plan = Plan::load(manifest, name).map_err(|e| HsiError::Detector(e.to_string()))?;
        FersEdge::new(plan)
    }

    /// A loaded plan as FERS-edge: its input must be `[1, T, T, C]` and its outputs `spectral`
    /// and `spatial` of the same shape.
    pub fn new(plan: Plan) -> Result<FersEdge, HsiError> {
        let spec = plan.spec();
        let name = &spec.name;
        let model_error = |detail: String| HsiError::Detector(format!("model {name}: {detail}"));
        let [input] = spec.inputs.as_slice() else {
            return Err(model_error(format!(
                "has {} inputs, FERS-edge takes one cube",
                spec.inputs.len()
            )));
        };
        let &[1, tile, tile_w, bands] = input.shape.as_slice() else {
            return Err(model_error(format!(
                "input shape {:?} is not [1, T, T, C]",
                input.shape
            )));
        };
        if tile != tile_w {
            return Err(model_error(format!(
                "input tile {tile}×{tile_w} is not square"
            )));
        }
        let mut outputs = [0; 2];
        for (slot, label) in outputs.iter_mut().zip([SPECTRAL_OUTPUT, SPATIAL_OUTPUT]) {
            let (index, tensor) = spec
                .output(label)
                .ok_or_else(|| model_error(format!("has no `{label}` output")))?;
            if tensor.shape != input.shape {
                return Err(model_error(format!(
                    "output {label} is {:?}, not the input's {:?}",
                    tensor.shape, input.shape
                )));
            }
            *slot = index;
        }
        Ok(FersEdge {
            plan,
            tile,
            bands,
            outputs,
        })
    }

    /// The number of leading bands the model reads.
    pub fn bands(&self) -> usize {
        self.bands
    }

    pub fn tile(&self) -> usize {
        self.tile
    }

    /// The model's feature maps for a [`normalise`]d scene of at least [`Self::bands`] bands
    /// (only the first ones are read).
    pub fn features(&self, scene: &Cube) -> Result<Features, HsiError> {
        let (rows, cols, t, c) = (scene.rows(), scene.cols(), self.tile, self.bands);
        if scene.bands() < c {
            return Err(HsiError::TooFewBands {
                needed: c,
                found: scene.bands(),
            });
        }
        let mut session = self
            .plan
            .session()
            .map_err(|e| HsiError::Detector(e.to_string()))?;
        let mut spectral = vec![0.0f32; rows * cols * c];
        let mut spatial = vec![0.0f32; rows * cols * c];
        let mut tile = vec![0.0f32; t * t * c];
        let mut out = [vec![0.0f32; t * t * c], vec![0.0f32; t * t * c]];
        for top in (0..rows).step_by(t) {
            for left in (0..cols).step_by(t) {
                for r in 0..t {
                    let row = mirror((top + r) as isize, rows);
                    for k in 0..t {
                        let col = mirror((left + k) as isize, cols);
                        tile[(r * t + k) * c..][..c]
                            .copy_from_slice(&scene.spectrum(row, col)[..c]);
                    }
                }
                self.run(&mut session, &tile, &mut out)?;
                for r in 0..t.min(rows - top) {
                    for k in 0..t.min(cols - left) {
                        let at = ((top + r) * cols + left + k) * c;
                        let from = (r * t + k) * c;
                        spectral[at..at + c].copy_from_slice(&out[0][from..from + c]);
                        spatial[at..at + c].copy_from_slice(&out[1][from..from + c]);
                    }
                }
            }
        }
        Ok(Features {
            spectral: Cube::from_bip(rows, cols, c, spectral)?,
            spatial: Cube::from_bip(rows, cols, c, spatial)?,
        })
    }

    fn run(
        &self,
        session: &mut Session,
        tile: &[f32],
        out: &mut [Vec<f32>; 2],
    ) -> Result<(), HsiError> {
        let failed = |e: crate::detector::DetectorError| HsiError::Detector(e.to_string());
        let (t, c) = (self.tile, self.bands);
        let input = Tensor::from_shape(&[1, t, t, c], tile)
            .map_err(|e| HsiError::Detector(format!("{e:#}")))?;
        let values = session.run(vec![input]).map_err(failed)?;
        for (slot, &index) in out.iter_mut().zip(&self.outputs) {
            session.read_f32(&values, index, slot).map_err(failed)?;
        }
        Ok(())
    }
}

/// The band counts FERS-edge models ship for, as the paper's checkpoints.
pub const SHIPPED_BANDS: [usize; 3] = [200, 100, 50];

/// The shipped model for a scene of `available` bands: `fers-edge-<wanted>-fp32` when a band
/// count is asked for, else the widest one the scene can feed. The fp32 graph, because tract
/// runs it faster than the int8 one (the int8 product's rescale and casts are separate passes:
/// `models/fers-edge.md`); the int8 graphs stay in the manifest for profiles that name them.
pub fn model_for(available: usize, wanted: Option<usize>) -> Result<String, HsiError> {
    let bands =
        match wanted {
            Some(bands) => bands,
            None => SHIPPED_BANDS.into_iter().find(|&b| b <= available).ok_or(
                HsiError::TooFewBands {
                    needed: SHIPPED_BANDS[SHIPPED_BANDS.len() - 1],
                    found: available,
                },
            )?,
        };
    Ok(format!("fers-edge-{bands}-fp32"))
}

impl FersEdge {
    /// FERS-edge + global RX on a raw scene: the first [`Self::bands`] bands, normalised,
    /// fused as the paper fuses at that band count.
    pub fn score(&self, cube: &Cube, threads: usize) -> Result<Vec<f32>, HsiError> {
        let data = normalise(&cube.first_bands(self.bands)?)?;
        let features = self.features(&data)?;
        fused_scores(&data, &features, Fusion::for_bands(self.bands), |c| {
            super::detect::SceneDetector::Rx.score(c, threads)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_maps_the_range_to_a_tenth_either_side_of_zero() {
        let cube = Cube::from_bip(1, 2, 2, vec![10.0, 20.0, 30.0, 50.0]).unwrap();
        let scaled = normalise(&cube).unwrap();
        let expected = [-0.1, -0.05, 0.0, 0.1];
        for (a, b) in scaled.data().iter().zip(expected) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
        let flat = Cube::from_bip(1, 2, 1, vec![3.0, 3.0]).unwrap();
        let message = normalise(&flat).unwrap_err().to_string();
        assert!(message.contains("constant"), "{message}");
        let bad = Cube::from_bip(1, 2, 1, vec![3.0, f32::NAN]).unwrap();
        assert!(normalise(&bad).is_err());
    }

    #[test]
    fn mirror_reflects_about_the_edge_pixels_for_any_pad() {
        let n = 4;
        let got: Vec<usize> = (-3..10).map(|i| mirror(i, n)).collect();
        // numpy.pad(range(4), (3, 6), "reflect")
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        assert_eq!(mirror(5, 1), 0);
    }

    #[test]
    fn fusion_sums_or_multiplies_scaled_detector_maps() {
        let data = Cube::from_bip(1, 3, 1, vec![0.0, 1.0, 2.0]).unwrap();
        let features = Features {
            spectral: Cube::from_bip(1, 3, 1, vec![1.0, 0.0, 0.0]).unwrap(),
            spatial: Cube::from_bip(1, 3, 1, vec![0.0, 0.0, 4.0]).unwrap(),
        };
        // The identity "detector" exposes what each fusion hands it.
        let identity = |cube: &Cube| Ok(cube.data().to_vec());
        let sum = fused_scores(&data, &features, Fusion::Sum, identity).unwrap();
        assert_eq!(sum, [1.0, 1.0, 6.0]);
        let product = fused_scores(&data, &features, Fusion::Hadamard, identity).unwrap();
        // data+spatial = [0,1,6] → [0,1/6,1]; data+spectral = [1,1,2] → [0,0,1].
        assert_eq!(product, [0.0, 0.0, 1.0]);
        let wrong = Features {
            spectral: Cube::from_bip(1, 2, 1, vec![0.0, 0.0]).unwrap(),
            spatial: features.spatial.clone(),
        };
        let message = fused_scores(&data, &wrong, Fusion::Sum, identity)
            .unwrap_err()
            .to_string();
        assert!(message.contains("does not fit"), "{message}");
        assert_eq!(Fusion::for_bands(50), Fusion::Hadamard);
        assert_eq!(Fusion::for_bands(100), Fusion::Sum);
    }

    #[test]
    fn the_widest_model_the_scene_can_feed_is_chosen() {
        assert_eq!(model_for(224, None).unwrap(), "fers-edge-200-fp32");
        assert_eq!(model_for(188, None).unwrap(), "fers-edge-100-fp32");
        assert_eq!(model_for(60, None).unwrap(), "fers-edge-50-fp32");
        assert_eq!(model_for(188, Some(50)).unwrap(), "fers-edge-50-fp32");
        let message = model_for(30, None).unwrap_err().to_string();
        assert!(
            message.contains("50 bands are needed, the cube has 30"),
            "{message}"
        );
    }
}
