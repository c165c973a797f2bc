//! FERS-edge training data from a HAD100-layout folder (`vigil-train fers make-data` writes
//! one): background-only cubes under `train/<source>/`, and labelled scenes under
//! `test/<source>/` with `ground_truth/<source>/`, which here are *validation* scenes, made
//! from library spectra, never the scenes the model card reports.
//!
//! Each cube is cut to its first C bands and scaled as at inference ([`normalise`]); cubes of
//! one size form a batchable group, so 64×64 synthetic and 32×32 real patches train together.

use std::path::{Path, PathBuf};

use crate::hsi::fers::normalise;
use crate::hsi::had100::{read_test_scene, test_scenes, train_cubes};
use crate::hsi::{Cube, HsiError, read_npy_cube};

/// Training cubes of one `side × side` size, normalised, channels last.
#[derive(Debug, Clone)]
pub struct TileGroup {
    pub side: usize,
    pub bands: usize,
    /// `len × side × side × bands` values.
    pub values: Vec<f32>,
    /// The file each cube came from.
    pub sources: Vec<PathBuf>,
}

impl TileGroup {
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn tile(&self, index: usize) -> &[f32] {
        let n = self.side * self.side * self.bands;
        &self.values[index * n..(index + 1) * n]
    }
}

/// A labelled validation scene, normalised.
#[derive(Debug, Clone)]
pub struct ValidationScene {
    pub name: String,
    pub cube: Cube,
    pub labels: Vec<bool>,
}

/// Why the data could not be used; names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum FersDataError {
    #[error(transparent)]
    Hsi(#[from] HsiError),
    #[error("{path}: {detail}")]
    Unusable { path: PathBuf, detail: String },
}

/// The background cubes of every source in `sources`, grouped by size. Sides must be
/// multiples of 8 (the bank's three stride-2 levels and the bottleneck halve it four times
/// after the 4-pixel padding).
pub fn read_training(
    root: &Path,
    sources: &[String],
    bands: usize,
) -> Result<Vec<TileGroup>, FersDataError> {
    let mut groups: Vec<TileGroup> = Vec::new();
    for source in sources {
        for path in train_cubes(root, source)? {
            let cube = read_npy_cube(&path)?;
            let unusable = |detail: String| FersDataError::Unusable {
                path: path.clone(),
                detail,
            };
            if cube.rows() != cube.cols() || cube.rows() % 8 != 0 {
                return Err(unusable(format!(
                    "a {}×{} cube: training tiles must be square with a side that is a multiple of 8",
                    cube.rows(),
                    cube.cols()
                )));
            }
            let cube = normalise(
                &cube
                    .first_bands(bands)
                    .map_err(|e| unusable(e.to_string()))?,
            )
            .map_err(|e| unusable(e.to_string()))?;
            let side = cube.rows();
            let index = match groups.iter().position(|g| g.side == side) {
                Some(index) => index,
                None => {
                    groups.push(TileGroup {
                        side,
                        bands,
                        values: Vec::new(),
                        sources: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[index].values.extend_from_slice(cube.data());
            groups[index].sources.push(path);
        }
    }
    if groups.is_empty() {
        return Err(FersDataError::Unusable {
            path: root.join("train"),
            detail: format!("no training cubes in {}", sources.join(", ")),
        });
    }
    groups.sort_by_key(|g| g.side);
    Ok(groups)
}

/// The labelled scenes of `source`, cut to `bands` and normalised.
pub fn read_validation(
    root: &Path,
    source: &str,
    bands: usize,
) -> Result<Vec<ValidationScene>, FersDataError> {
    test_scenes(root, source)?
        .into_iter()
        .map(|scene| {
            let (cube, labels) = read_test_scene(&scene)?;
            let cube = normalise(&cube.first_bands(bands)?)?;
            let name = scene
                .cube
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(ValidationScene { name, cube, labels })
        })
        .collect()
}
