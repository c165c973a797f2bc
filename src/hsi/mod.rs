//! Hyperspectral cubes: readers for the formats sensors and benchmarks use, the conventional
//! detectors FERS pairs with, constant-false-alarm-rate thresholds and push-broom line streams.
//!
//! A [`Cube`] is held band-interleaved-by-pixel (BIP), `f32`, row-major: pixel `(row, col)`'s
//! spectrum is the contiguous slice `data[(row·W + col)·B ..][..B]`. That is the layout every
//! detector here wants (one spectrum = one vector), and what an ENVI BIP file or an H×W×B
//! `.npy`/`.mat` array already is; BSQ and BIL files are transposed once on load.

pub mod background;
pub mod detect;
pub mod envi;
pub mod fers;
pub mod had100;
mod kernels;
pub mod library;
pub mod local;
pub mod mat;
pub mod streaming;
pub mod synthetic;
pub mod threshold;

use std::path::{Path, PathBuf};

/// Where a cube sits on the ground, from ENVI's `map info` (pixel `(1,1)` in ENVI's 1-based
/// convention is `reference_pixel`).
#[derive(Debug, Clone, PartialEq)]
pub struct MapInfo {
    /// Projection name, e.g. `UTM` or `Geographic Lat/Lon`.
    pub projection: String,
    /// The 1-based (x, y) image position that `reference_easting_northing` names.
    pub reference_pixel: (f64, f64),
    /// Map coordinates of `reference_pixel`.
    pub reference_easting_northing: (f64, f64),
    /// Ground size of one pixel along x (columns) and y (rows).
    pub pixel_size: (f64, f64),
    /// Whatever follows (zone, hemisphere, datum, units), kept verbatim.
    pub rest: Vec<String>,
}

impl MapInfo {
    /// Map coordinates (easting, northing) of the centre of the 0-based pixel `(row, col)`.
    /// Northing decreases down the image, as ENVI's north-up convention has it.
    pub fn pixel_to_map(&self, row: usize, col: usize) -> (f64, f64) {
        // ENVI's reference pixel (1, 1) is the upper-left corner of the first pixel, so the
        // centre of 0-based column c is at 1-based position c + 1.5.
        let x = col as f64 + 1.5 - self.reference_pixel.0;
        let y = row as f64 + 1.5 - self.reference_pixel.1;
        (
            self.reference_easting_northing.0 + x * self.pixel_size.0,
            self.reference_easting_northing.1 - y * self.pixel_size.1,
        )
    }
}

/// A hyperspectral image: `rows × cols` pixels of `bands` values each, BIP `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cube {
    rows: usize,
    cols: usize,
    bands: usize,
    data: Vec<f32>,
    /// Band centres in the header's units (usually nm), one per band, when known.
    pub wavelengths: Option<Vec<f64>>,
    /// Geographic placement, when the source says it.
    pub map_info: Option<MapInfo>,
}

impl Cube {
    /// A cube from BIP data; refuses a length that is not `rows·cols·bands` and an empty shape.
    pub fn from_bip(
        rows: usize,
        cols: usize,
        bands: usize,
        data: Vec<f32>,
    ) -> Result<Cube, HsiError> {
        let expected = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(bands))
            .ok_or(HsiError::Shape {
                rows,
                cols,
                bands,
                detail: "has more elements than memory can address".into(),
            })?;
        if rows == 0 || cols == 0 || bands == 0 {
            return Err(HsiError::Shape {
                rows,
                cols,
                bands,
                detail: "is empty".into(),
            });
        }
        if data.len() != expected {
            return Err(HsiError::Shape {
                rows,
                cols,
                bands,
                detail: format!("needs {expected} values, {} were given", data.len()),
            });
        }
        Ok(Cube {
            rows,
            cols,
            bands,
            data,
            wavelengths: None,
            map_info: None,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Number of pixels, `rows·cols`.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// All values, BIP.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The spectrum of pixel `(row, col)`; panics outside the cube, like slice indexing.
    pub fn spectrum(&self, row: usize, col: usize) -> &[f32] {
        let start = (row * self.cols + col) * self.bands;
        &self.data[start..start + self.bands]
    }

    /// One image line (all columns of `row`), BIP; panics outside the cube.
    pub fn line(&self, row: usize) -> &[f32] {
        let width = self.cols * self.bands;
        &self.data[row * width..(row + 1) * width]
    }

    /// The first `bands` bands, as FERS keeps them (its checkpoints exist for 50, 100, 200).
    pub fn first_bands(&self, bands: usize) -> Result<Cube, HsiError> {
        if bands == 0 || bands > self.bands {
            return Err(HsiError::TooFewBands {
                needed: bands,
                found: self.bands,
            });
        }
        let data = self
            .data
            .chunks_exact(self.bands)
            .flat_map(|spectrum| spectrum[..bands].iter().copied())
            .collect();
        Ok(Cube {
            rows: self.rows,
            cols: self.cols,
            bands,
            data,
            wavelengths: self
                .wavelengths
                .as_ref()
                .and_then(|w| w.get(..bands))
                .map(<[f64]>::to_vec),
            map_info: self.map_info.clone(),
        })
    }

    /// Checks that every value is finite and names the first band that is not.
    pub fn check_finite(&self) -> Result<(), HsiError> {
        // A whole chunk is tested without an early exit, which vectorises (a scalar scan took
        // about 1 ms of a 2 M-value cube, as much as a tenth of global RX); only a chunk that
        // fails is searched for its first bad value.
        const CHUNK: usize = 4096;
        let bad = self.data.chunks(CHUNK).enumerate().find_map(|(c, chunk)| {
            if chunk.iter().fold(true, |ok, v| ok & v.is_finite()) {
                return None;
            }
            chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| c * CHUNK + i)
        });
        match bad {
            None => Ok(()),
            Some(i) => {
                let pixel = i / self.bands;
                Err(HsiError::NonFinite {
                    band: i % self.bands,
                    row: pixel / self.cols,
                    col: pixel % self.cols,
                })
            }
        }
    }
}

/// A scene read from a file: the cube and, where the file has one, its ground-truth mask.
#[derive(Debug, Clone)]
pub struct Scene {
    pub cube: Cube,
    /// `rows·cols` labels, row-major, `true` = anomalous pixel.
    pub labels: Option<Vec<bool>>,
}

/// Reads a scene by its extension: `.hdr` or the ENVI data file beside one, `.npy` (H×W×B) or
/// `.mat` (MATLAB v5 with `data` H×W×B and optionally `map` H×W).
pub fn read_scene(path: &Path) -> Result<Scene, HsiError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("mat") => mat::read_scene(path),
        Some("npy") => read_npy_cube(path).map(|cube| Scene { cube, labels: None }),
        _ => envi::read(path).map(|cube| Scene { cube, labels: None }),
    }
}

/// An H×W×B `.npy` cube (the HAD100 layout), any numeric dtype.
pub fn read_npy_cube(path: &Path) -> Result<Cube, HsiError> {
    // f64 holds every dtype a cube is stored in exactly (64-bit integers are refused by name).
    let array = crate::io::npy::read_npy::<f64>(path).map_err(|e| HsiError::Format {
        path: path.to_path_buf(),
        detail: e.kind.to_string(),
    })?;
    match array.shape[..] {
        [rows, cols, bands] => {
            let data = array.data.iter().map(|&v| v as f32).collect();
            Cube::from_bip(rows, cols, bands, data).map_err(|e| e.in_file(path))
        }
        _ => Err(HsiError::Format {
            path: path.to_path_buf(),
            detail: format!("a cube is H×W×B, this array has shape {:?}", array.shape),
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HsiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Format { path: PathBuf, detail: String },
    #[error("a {rows}×{cols}×{bands} cube {detail}")]
    Shape {
        rows: usize,
        cols: usize,
        bands: usize,
        detail: String,
    },
    #[error("{needed} bands are needed, the cube has {found}")]
    TooFewBands { needed: usize, found: usize },
    #[error("band {band} at pixel (row {row}, col {col}) is not finite")]
    NonFinite { band: usize, row: usize, col: usize },
    #[error("{0}")]
    Detector(String),
}

impl HsiError {
    /// Puts the file name on an error that lacks one.
    fn in_file(self, path: &Path) -> HsiError {
        match self {
            HsiError::Io { .. } | HsiError::Format { .. } => self,
            other => HsiError::Format {
                path: path.to_path_buf(),
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bands_keeps_the_front_and_refuses_more_than_there_are() {
        let mut cube = Cube::from_bip(1, 2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        cube.wavelengths = Some(vec![400.0, 500.0, 600.0]);
        let front = cube.first_bands(2).unwrap();
        assert_eq!(front.data(), [1.0, 2.0, 4.0, 5.0]);
        assert_eq!(front.wavelengths.as_deref(), Some(&[400.0, 500.0][..]));
        let message = cube.first_bands(50).unwrap_err().to_string();
        assert!(
            message.contains("50 bands are needed, the cube has 3"),
            "{message}"
        );
        assert!(cube.first_bands(0).is_err());
    }

    #[test]
    fn shapes_that_do_not_hold_their_data_are_refused() {
        assert!(
            Cube::from_bip(2, 2, 2, vec![0.0; 7])
                .unwrap_err()
                .to_string()
                .contains("needs 8 values")
        );
        assert!(
            Cube::from_bip(0, 2, 2, vec![])
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(Cube::from_bip(usize::MAX, 2, 2, vec![]).is_err());
    }

    #[test]
    fn map_coordinates_of_pixel_centres() {
        let map = MapInfo {
            projection: "UTM".into(),
            reference_pixel: (1.0, 1.0),
            reference_easting_northing: (500_000.0, 4_200_000.0),
            pixel_size: (3.0, 3.0),
            rest: Vec::new(),
        };
        // ENVI's (1, 1) is the upper-left corner of the first pixel: its centre is half a
        // pixel east and south of the reference.
        assert_eq!(map.pixel_to_map(0, 0), (500_001.5, 4_199_998.5));
        assert_eq!(map.pixel_to_map(2, 10), (500_031.5, 4_199_992.5));
    }
}
