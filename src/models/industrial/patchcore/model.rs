//! PatchCore on tract: the backbone's feature maps ([`PatchFeatures`]), their nearest
//! neighbours in the memory bank, and from those distances the pixel map and image score as
//! PatchCore computes them ([`PatchCoreDetector`]):
//!
//! - patch score = Euclidean distance of the patch's feature to its nearest bank feature;
//! - pixel map = the patch scores resized bilinearly to the image (`align_corners=False`), then
//!   Gaussian-blurred with σ = 4 (`scipy.ndimage.gaussian_filter`), as the authors' code does;
//! - image score = the largest patch score s* re-weighted as the paper's Eq. 7 does:
//!   w = 1 − softmax(‖m_test − m_b‖ for the b neighbours of m* in the bank)₀ where m* is the
//!   bank feature nearest the worst patch and the first neighbour is m* itself. When m*'s
//!   neighbours lie about as close to the patch as m* does (a dense, common part of the good
//!   parts), w is about 1 − 1/b and the score is damped; when they lie much farther (m* is a
//!   rare good feature, and the patch is near nothing else), w is near 1 and the score stands.

use std::path::Path;

use super::bank::MemoryBank;
use super::embed::{PatchEmbedder, TapShape};
use super::search::{NearestNeighbours, squared_distance};
use super::{DEFAULT_NEIGHBOURS, FAMILY};
use crate::detector::{ElementType, ModelSpec, Plan, Session, TensorSpec};
use crate::models::industrial::IndustrialError;
use crate::models::industrial::anomaly_map::GaussianBlur;
use crate::models::industrial::model::{run_image, stage_error};
use crate::pipeline::StageError;
use crate::prepare::resize::{Crop, resample_plane};

/// The backbone's input name, as `vigil-train industrial` exports it: every factory-line
/// graph's.
pub const INPUT: &str = crate::models::industrial::model::INPUT;

/// σ of the pixel map's blur when a manifest entry does not give `map_sigma`: PatchCore's.
const DEFAULT_MAP_SIGMA: f32 = 4.0;

/// What the runtime reads from a PatchCore manifest entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchCoreSpec {
    pub model: String,
    /// Side S of the square input and of the pixel map.
    pub side: usize,
    /// The backbone outputs the patch features are cut from, in the manifest's order.
    pub taps: Vec<TapShape>,
    pub map_sigma: f32,
    /// Neighbours of m* the image score's weight is computed over (the paper's b).
    pub neighbours: usize,
    /// The fitted image-score threshold (the entry's `threshold`).
    pub image_threshold: f32,
    /// The fitted pixel-map threshold for defect boxes.
    pub pixel_threshold: Option<f32>,
    /// Width and height, in pixels, of the good images the bank was fitted on (the manifest's
    /// `part_size`): the scale the model knows parts at, and the tile size of a tiled region.
    pub part_size: Option<(usize, usize)>,
    /// The backbone file's sha256 and the bank file, as the manifest lists them.
    pub backbone_sha256: String,
    pub bank: std::path::PathBuf,
}

fn setting(spec: &ModelSpec, key: &'static str, detail: String) -> IndustrialError {
    IndustrialError::ModelSetting {
        model: spec.name.clone(),
        key,
        detail,
    }
}

fn positive_integer(spec: &ModelSpec, key: &'static str) -> Result<Option<usize>, IndustrialError> {
    match spec.settings.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(v)) if *v >= 1 => Ok(Some(*v as usize)),
        Some(other) => Err(setting(
            spec,
            key,
            format!("{other} is not a positive integer"),
        )),
    }
}

fn finite(spec: &ModelSpec, key: &'static str) -> Result<Option<f32>, IndustrialError> {
    let value = match spec.settings.get(key) {
        None => return Ok(None),
        Some(toml::Value::Float(v)) => *v as f32,
        Some(toml::Value::Integer(v)) => *v as f32,
        Some(other) => return Err(setting(spec, key, format!("{other} is not a number"))),
    };
    if !value.is_finite() {
        return Err(setting(
            spec,
            key,
            format!("{value} is not a finite number"),
        ));
    }
    Ok(Some(value))
}

/// `settings.part_size = [width, height]`, two positive integers, if present.
fn part_size(spec: &ModelSpec) -> Result<Option<(usize, usize)>, IndustrialError> {
    let Some(value) = spec.settings.get("part_size") else {
        return Ok(None);
    };
    match value.as_array().map(Vec::as_slice) {
        Some([toml::Value::Integer(w), toml::Value::Integer(h)]) if *w >= 1 && *h >= 1 => {
            Ok(Some((*w as usize, *h as usize)))
        }
        _ => Err(setting(
            spec,
            "part_size",
            format!("{value} is not [width, height] in pixels"),
        )),
    }
}

impl PatchCoreSpec {
    /// Reads and checks a manifest entry: family, settings, two files (backbone, bank) and the
    /// backbone's boundary (`image` `[1, 3, S, S]` f32 in; each output `[1, C, H, W]` f32, the
    /// first the finest), so a bank or backbone of another shape is refused at load.
    /// `bank_dir` is the folder the manifest's paths are relative to.
    pub fn from_manifest(spec: &ModelSpec, bank_dir: &Path) -> Result<Self, IndustrialError> {
        if spec.family != FAMILY {
            return Err(setting(
                spec,
                "family",
                format!("{:?} is not {FAMILY:?}", spec.family),
            ));
        }
        let side = positive_integer(spec, "image_size")?
            .ok_or_else(|| setting(spec, "image_size", "missing".into()))?;
        let [backbone, bank] = spec.files.as_slice() else {
            return Err(setting(
                spec,
                "files",
                format!(
                    "{} files listed; a PatchCore model is its backbone's ONNX file, then its memory bank",
                    spec.files.len()
                ),
            ));
        };
        let tensor = |tensor: &str, expected: String, got: String| IndustrialError::Tensor {
            model: spec.name.clone(),
            tensor: tensor.into(),
            expected,
            got,
        };
        let describe = |t: &TensorSpec| format!("{:?} {:?}", t.dtype, t.shape);
        crate::models::industrial::check_image_input(spec, side)?;
        let mut taps = Vec::with_capacity(spec.outputs.len());
        for output in &spec.outputs {
            let [1, channels, height, width] = output.shape[..] else {
                return Err(tensor(
                    output.label(),
                    "F32 [1, channels, height, width]".into(),
                    describe(output),
                ));
            };
            if output.dtype != ElementType::F32 {
                return Err(tensor(output.label(), "F32".into(), describe(output)));
            }
            taps.push(TapShape::new(output.label(), channels, height, width));
        }
        // Checks the taps' shapes against each other.
        PatchEmbedder::new(taps.clone())
            .map_err(|err| setting(spec, "outputs", err.to_string()))?;
        Ok(Self {
            model: spec.name.clone(),
            side,
            taps,
            map_sigma: finite(spec, "map_sigma")?.unwrap_or(DEFAULT_MAP_SIGMA),
            neighbours: positive_integer(spec, "neighbours")?.unwrap_or(DEFAULT_NEIGHBOURS),
            image_threshold: spec.threshold,
            pixel_threshold: finite(spec, "pixel_threshold")?,
            part_size: part_size(spec)?,
            backbone_sha256: backbone.sha256.clone(),
            bank: bank_dir.join(&bank.path),
        })
    }
}

/// The backbone on tract and the patch features of its outputs: what the fit and the runtime
/// both compute from an image.
pub struct PatchFeatures {
    session: Session,
    input_shape: [usize; 4],
    embedder: PatchEmbedder,
    /// One buffer per tap, reused from frame to frame.
    tap_values: Vec<Vec<f32>>,
    features: Vec<f32>,
}

impl PatchFeatures {
    /// Features of the backbone `plan`, whose outputs are `taps`.
    pub fn new(plan: &Plan, side: usize, taps: Vec<TapShape>) -> Result<Self, IndustrialError> {
        let embedder = PatchEmbedder::new(taps).map_err(|err| IndustrialError::ModelSetting {
            model: plan.spec().name.clone(),
            key: "outputs",
            detail: err.to_string(),
        })?;
        Ok(Self {
            session: plan.session()?,
            input_shape: [1, 3, side, side],
            tap_values: embedder.taps().iter().map(|t| vec![0.0; t.len()]).collect(),
            features: vec![0.0; embedder.patches() * embedder.dim()],
            embedder,
        })
    }

    pub fn embedder(&self) -> &PatchEmbedder {
        &self.embedder
    }

    /// The `patches × dim` features of one normalised `[3, S, S]` image.
    pub fn extract(&mut self, image: &[f32]) -> Result<&[f32], StageError> {
        let outputs = run_image(&mut self.session, &self.input_shape, image)?;
        for (ix, values) in self.tap_values.iter_mut().enumerate() {
            self.session
                .read_f32(&outputs, ix, values)
                .map_err(|err| stage_error(err.to_string()))?;
        }
        let views: Vec<&[f32]> = self.tap_values.iter().map(Vec::as_slice).collect();
        self.embedder
            .embed(&views, &mut self.features)
            .map_err(|err| stage_error(err.to_string()))?;
        Ok(&self.features)
    }
}

/// PatchCore's scores of one image: the image score and the `S×S` pixel map.
pub struct PatchCoreDetector {
    spec: PatchCoreSpec,
    features: PatchFeatures,
    search: NearestNeighbours,
    distances: Vec<f32>,
    nearest: Vec<u32>,
    upsampled: Vec<f32>,
    blur: GaussianBlur,
    map: Vec<f32>,
}

impl PatchCoreDetector {
    /// A detector on a loaded backbone plan and its manifest entry's bank, checked against
    /// each other; `threads` run the nearest-neighbour products.
    pub fn new(plan: &Plan, spec: PatchCoreSpec, threads: usize) -> Result<Self, IndustrialError> {
        let bank =
            MemoryBank::read(&spec.bank).map_err(|err| IndustrialError::Bank(Box::new(err)))?;
        bank.check_fits(&spec.backbone_sha256, spec.side, &spec.taps, &spec.bank)
            .map_err(|err| IndustrialError::Bank(Box::new(err)))?;
        Self::with_bank(plan, spec, bank, threads)
    }

    /// A detector on a bank already in memory (the fit's evaluation of a bank it just made).
    pub fn with_bank(
        plan: &Plan,
        spec: PatchCoreSpec,
        bank: MemoryBank,
        threads: usize,
    ) -> Result<Self, IndustrialError> {
        let features = PatchFeatures::new(plan, spec.side, spec.taps.clone())?;
        let dim = features.embedder().dim();
        let search = NearestNeighbours::new(bank.features, dim, threads).map_err(|err| {
            IndustrialError::ModelSetting {
                model: spec.model.clone(),
                key: "bank",
                detail: err.to_string(),
            }
        })?;
        let patches = features.embedder().patches();
        let side = spec.side;
        Ok(Self {
            blur: GaussianBlur::new(spec.map_sigma)?,
            spec,
            features,
            search,
            distances: vec![0.0; patches],
            nearest: vec![0; patches],
            upsampled: vec![0.0; side * side],
            map: vec![0.0; side * side],
        })
    }

    pub fn spec(&self) -> &PatchCoreSpec {
        &self.spec
    }

    /// Bank rows searched per patch.
    pub fn bank_len(&self) -> usize {
        self.search.len()
    }

    /// Scores one normalised `[3, S, S]` image: returns the image score; [`Self::map`] holds
    /// its pixel map until the next call.
    pub fn run(&mut self, image: &[f32]) -> Result<f32, StageError> {
        let features = self.features.extract(image)?;
        self.search
            .search(features, &mut self.distances, &mut self.nearest)
            .map_err(|err| stage_error(err.to_string()))?;
        let score = reweighted_max(
            &self.search,
            features,
            &self.distances,
            &self.nearest,
            self.spec.neighbours,
        );
        let (rows, columns) = self.features.embedder().grid();
        upsample(
            &self.distances,
            rows,
            columns,
            self.spec.side,
            &mut self.upsampled,
        );
        self.blur
            .apply(&self.upsampled, self.spec.side, &mut self.map)
            .map_err(|err| stage_error(err.to_string()))?;
        Ok(score)
    }

    /// The last image's `S×S` pixel map.
    pub fn map(&self) -> &[f32] {
        &self.map
    }

    /// The last image's patch scores, on the patch grid.
    pub fn patch_scores(&self) -> &[f32] {
        &self.distances
    }
}

/// The paper's image score: the largest patch distance, weighted by how isolated its nearest
/// bank feature's neighbourhood is from the patch (Eq. 7).
fn reweighted_max(
    search: &NearestNeighbours,
    features: &[f32],
    distances: &[f32],
    nearest: &[u32],
    neighbours: usize,
) -> f32 {
    let Some((worst, &score)) = distances
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
    else {
        return f32::NAN;
    };
    let dim = search.dim();
    let patch = &features[worst * dim..(worst + 1) * dim];
    let support = search.bank_neighbours(nearest[worst] as usize, neighbours);
    let distances: Vec<f32> = support
        .iter()
        .map(|&j| squared_distance(patch, search.row(j)).sqrt())
        .collect();
    let top = distances.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = distances.iter().map(|d| (d - top).exp()).sum();
    let first = (distances[0] - top).exp() / total;
    (1.0 - first) * score
}

/// Bilinear resize (`align_corners=False`) of a `rows × columns` grid to `side × side`: the
/// resampling frames and training images go through.
fn upsample(grid: &[f32], rows: usize, columns: usize, side: usize, out: &mut [f32]) {
    resample_plane(grid, columns, Crop::whole(columns, rows), side, false, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_near_a_dense_part_of_the_bank_is_damped_and_one_near_a_rare_part_is_not() {
        // Bank: a tight cluster near the origin and one isolated row far away.
        let bank = vec![0.0, 0.0, 0.1, 0.0, 0.0, 0.1, 0.1, 0.1, 10.0, 10.0];
        let search = NearestNeighbours::new(bank, 2, 1).unwrap();
        // A patch at distance 1 from the cluster, and one at distance 1 from the isolated row.
        let near_cluster = [-0.6, -0.8];
        let near_isolated = [10.6, 10.8];
        let score = |patch: &[f32], nearest: u32| {
            let d = squared_distance(patch, search.row(nearest as usize)).sqrt();
            reweighted_max(&search, patch, &[d], &[nearest], 3)
        };
        let (dense, isolated) = (score(&near_cluster, 0), score(&near_isolated, 4));
        // Three neighbours about equally far: softmax ≈ 1/3 each, so the weight is ≈ 2/3.
        assert!((dense - 2.0 / 3.0).abs() < 0.05, "{dense}");
        // The isolated row's other neighbours are ~14 away: its softmax share is ~0, weight ~1.
        assert!((isolated - 1.0).abs() < 1e-4, "{isolated}");
    }

    #[test]
    fn upsampling_keeps_a_constant_grid_and_interpolates_between_cells() {
        let mut out = vec![0.0; 16];
        upsample(&[2.0; 4], 2, 2, 4, &mut out);
        assert!(out.iter().all(|&v| (v - 2.0).abs() < 1e-6));
        upsample(&[0.0, 1.0, 0.0, 1.0], 2, 2, 4, &mut out);
        // Columns: 0, 0.25, 0.75, 1 (half-pixel centres, clamped at the edges).
        assert_eq!(&out[..4], &[0.0, 0.25, 0.75, 1.0]);
    }
}
