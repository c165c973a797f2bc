//! The toy data set: grey texture patches (oriented stripes and noise), a fraction of them
//! with a defect (a bright or dark blob, or a scratch). It stands in for a factory-line camera
//! in tests; the real families read MVTec, HAD100 and XD-Violence layouts.
//!
//! On disk, one folder per split: `<dir>/<split>/images.npy` (f32 `[N, 1, P, P]`) and
//! `<dir>/<split>/labels.npy` (u8 `[N]`, 1 = anomalous), readable with numpy.

use std::path::{Path, PathBuf};

use crate::io::npy::{NpyError, read_npy, write_npy};
use crate::train::rng::SplitMix64;

/// The splits a toy data folder holds.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// What is wrong with a data folder; every case names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data folder {0} does not exist (make one with `vigil-train toy make-data DIR`)")]
    MissingFolder(PathBuf),
    #[error("{path} is missing")]
    MissingFile { path: PathBuf },
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("{path}: {problem}")]
    Malformed { path: PathBuf, problem: String },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One split in memory.
#[derive(Debug, Clone)]
pub struct ToySplit {
    /// Side of the square patches.
    pub patch: usize,
    /// Row-major `[N, 1, patch, patch]`.
    pub images: Vec<f32>,
    pub labels: Vec<bool>,
}

impl ToySplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of sample `index`.
    pub fn image(&self, index: usize) -> &[f32] {
        let size = self.patch * self.patch;
        &self.images[index * size..(index + 1) * size]
    }

    /// Generates `count` samples with about `anomaly_fraction` of them defective.
    pub fn generate(count: usize, patch: usize, anomaly_fraction: f64, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut images = Vec::with_capacity(count * patch * patch);
        let mut labels = Vec::with_capacity(count);
        for _ in 0..count {
            let anomalous = rng.uniform() < anomaly_fraction;
            images.extend(texture(&mut rng, patch, anomalous));
            labels.push(anomalous);
        }
        Self {
            patch,
            images,
            labels,
        }
    }

    pub fn write(&self, folder: &Path) -> Result<(), DataError> {
        std::fs::create_dir_all(folder).map_err(|source| DataError::Create {
            path: folder.to_path_buf(),
            source,
        })?;
        write_npy(
            folder.join("images.npy"),
            &[self.len(), 1, self.patch, self.patch],
            &self.images,
        )?;
        let labels: Vec<u8> = self.labels.iter().map(|&l| l as u8).collect();
        write_npy(folder.join("labels.npy"), &[self.len()], &labels)?;
        Ok(())
    }

    /// Reads and validates one split folder.
    pub fn read(folder: &Path) -> Result<Self, DataError> {
        let images_path = folder.join("images.npy");
        let labels_path = folder.join("labels.npy");
        for path in [&images_path, &labels_path] {
            if !path.is_file() {
                return Err(DataError::MissingFile { path: path.clone() });
            }
        }
        let images = read_npy::<f32>(&images_path)?;
        let malformed = |path: &Path, problem: String| DataError::Malformed {
            path: path.to_path_buf(),
            problem,
        };
        let &[count, 1, height, width] = images.shape.as_slice() else {
            return Err(malformed(
                &images_path,
                format!("shape {:?}, expected [N, 1, P, P]", images.shape),
            ));
        };
        if height != width || height == 0 {
            return Err(malformed(
                &images_path,
                format!("patches are {height}x{width}, expected square"),
            ));
        }
        if let Some(index) = images.data.iter().position(|v| !v.is_finite()) {
            return Err(malformed(
                &images_path,
                format!("value {index} is not finite"),
            ));
        }
        let labels = read_npy::<u8>(&labels_path)?;
        if labels.shape != [count] {
            return Err(malformed(
                &labels_path,
                format!(
                    "shape {:?}, expected [{count}] to match images.npy",
                    labels.shape
                ),
            ));
        }
        if let Some(index) = labels.data.iter().position(|&l| l > 1) {
            return Err(malformed(
                &labels_path,
                format!("label {index} is {}, expected 0 or 1", labels.data[index]),
            ));
        }
        Ok(Self {
            patch: height,
            images: images.data,
            labels: labels.data.iter().map(|&l| l == 1).collect(),
        })
    }
}

/// Writes a complete toy data folder.
pub fn make_data_folder(
    dir: &Path,
    counts: [usize; 3],
    patch: usize,
    seed: u64,
) -> Result<(), DataError> {
    for (split_index, (split, count)) in SPLITS.iter().zip(counts).enumerate() {
        let split_seed = SplitMix64::derive(seed, split_index as u64).next_u64();
        ToySplit::generate(count, patch, 0.3, split_seed).write(&dir.join(split))?;
    }
    Ok(())
}

/// Reads one split of a toy data folder, checking the folder first.
pub fn read_split(dir: &Path, split: &str) -> Result<ToySplit, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingFolder(dir.to_path_buf()));
    }
    ToySplit::read(&dir.join(split))
}

/// One patch: stripes at a random angle, frequency and phase, plus sensor noise; a defect on
/// top when `anomalous`.
fn texture(rng: &mut SplitMix64, patch: usize, anomalous: bool) -> Vec<f32> {
    let angle = rng.range(0.0, std::f64::consts::PI);
    let frequency = rng.range(0.12, 0.2);
    let phase = rng.range(0.0, std::f64::consts::TAU);
    let (sin, cos) = angle.sin_cos();
    let mut pixels: Vec<f64> = (0..patch * patch)
        .map(|i| {
            let (y, x) = ((i / patch) as f64, (i % patch) as f64);
            let wave = (std::f64::consts::TAU * frequency * (x * cos + y * sin) + phase).sin();
            0.5 * wave + 0.1 * rng.normal()
        })
        .collect();
    if anomalous {
        let margin = 3.0;
        let cy = rng.range(margin, patch as f64 - margin);
        let cx = rng.range(margin, patch as f64 - margin);
        if rng.uniform() < 0.5 {
            // A blob: a bright or dark Gaussian spot.
            let amplitude = rng.range(0.8, 1.5) * if rng.uniform() < 0.5 { 1.0 } else { -1.0 };
            let sigma = rng.range(1.0, 2.0);
            for (i, value) in pixels.iter_mut().enumerate() {
                let (y, x) = ((i / patch) as f64, (i % patch) as f64);
                let r2 = (y - cy).powi(2) + (x - cx).powi(2);
                *value += amplitude * (-r2 / (2.0 * sigma * sigma)).exp();
            }
        } else {
            // A scratch: a short bright line at a random angle.
            let theta = rng.range(0.0, std::f64::consts::PI);
            let length = rng.range(5.0, 8.0);
            let steps = (length * 2.0) as usize;
            for step in 0..=steps {
                let t = step as f64 / steps as f64 - 0.5;
                let y = (cy + t * length * theta.sin()).round();
                let x = (cx + t * length * theta.cos()).round();
                if (0.0..patch as f64).contains(&y) && (0.0..patch as f64).contains(&x) {
                    pixels[y as usize * patch + x as usize] = 1.2;
                }
            }
        }
    }
    pixels.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_npy_and_is_reproducible() -> Result<(), DataError> {
        let dir = tempfile::tempdir().map_err(|source| DataError::Create {
            path: "tempdir".into(),
            source,
        })?;
        make_data_folder(dir.path(), [40, 10, 10], 16, 5)?;
        let train = read_split(dir.path(), "train")?;
        assert_eq!((train.len(), train.patch), (40, 16));
        let again = ToySplit::generate(40, 16, 0.3, SplitMix64::derive(5, 0).next_u64());
        assert_eq!(train.images, again.images);
        assert!(train.labels.iter().any(|&l| l) && train.labels.iter().any(|&l| !l));
        Ok(())
    }

    #[test]
    fn bad_folders_name_the_file() -> Result<(), DataError> {
        let dir = tempfile::tempdir().map_err(|source| DataError::Create {
            path: "tempdir".into(),
            source,
        })?;
        let missing = read_split(&dir.path().join("nope"), "train").err();
        assert!(matches!(missing, Some(DataError::MissingFolder(_))));
        let split = dir.path().join("train");
        ToySplit::generate(8, 16, 0.5, 1).write(&split)?;
        // Labels that do not match the images.
        write_npy(split.join("labels.npy"), &[7], &[0u8; 7])?;
        let err = read_split(dir.path(), "train").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("labels.npy") && e.contains("[8]")));
        write_npy(split.join("labels.npy"), &[8], &[0u8, 1, 2, 0, 0, 0, 0, 0])?;
        let err = read_split(dir.path(), "train").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("label 2 is 2")));
        // Images of the wrong rank.
        write_npy(split.join("images.npy"), &[8, 16, 16], &[0f32; 8 * 256])?;
        let err = read_split(dir.path(), "train").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("images.npy") && e.contains("[N, 1, P, P]")));
        std::fs::remove_file(split.join("images.npy")).ok();
        let err = read_split(dir.path(), "train").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("images.npy is missing")));
        Ok(())
    }
}
