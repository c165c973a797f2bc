//! Synthetic hyperspectral scenes for the demo, benchmarks without the shared data, and tests:
//! a background linearly mixed from a few smooth material spectra with spatially smooth
//! abundances, sensor noise, and sub-pixel targets of a distinct material implanted at known
//! pixels (the labels).
//!
//! Values are radiance-like integers (reflectance × 10 000), as AVIRIS delivers them, so a
//! written ENVI file is int16 like the ABU scenes.

use std::path::{Path, PathBuf};

use super::library::SpectralLibrary;
use super::{Cube, HsiError, MapInfo};
use crate::rng::SplitMix64;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneConfig {
    pub rows: usize,
    pub cols: usize,
    pub bands: usize,
    /// Background materials mixed per pixel.
    pub materials: usize,
    /// Implanted targets, each one pixel.
    pub targets: usize,
    /// Fraction of a target pixel covered by the target material (sub-pixel below 1).
    pub target_fraction: f64,
    /// Sensor noise, in reflectance units.
    pub noise: f64,
    pub seed: u64,
    /// First and last band centres, nm.
    pub wavelength_range: (f64, f64),
}

impl Default for SceneConfig {
    fn default() -> SceneConfig {
        SceneConfig {
            rows: 100,
            cols: 100,
            bands: 120,
            materials: 4,
            targets: 8,
            target_fraction: 0.3,
            noise: 0.002,
            seed: 7,
            wavelength_range: (400.0, 2500.0),
        }
    }
}

/// A generated scene and where its targets are.
#[derive(Debug, Clone)]
pub struct Scene {
    pub cube: Cube,
    /// Row-major, `true` at target pixels.
    pub labels: Vec<bool>,
    /// (row, col) of each target.
    pub targets: Vec<(usize, usize)>,
}

/// A smooth reflectance spectrum: a sloped baseline with a few broad bumps and dips.
fn material_spectrum(rng: &mut SplitMix64, wavelengths: &[f64]) -> Vec<f64> {
    let base = rng.range(0.08, 0.35);
    let slope = rng.range(-0.1, 0.15);
    let features: Vec<(f64, f64, f64)> = (0..4)
        .map(|_| {
            (
                rng.range(450.0, 2400.0),
                rng.range(40.0, 250.0),
                rng.range(-0.12, 0.15),
            )
        })
        .collect();
    wavelengths
        .iter()
        .map(|&w| {
            let x = (w - 400.0) / 2100.0;
            let bumps: f64 = features
                .iter()
                .map(|(centre, width, depth)| depth * (-((w - centre) / width).powi(2)).exp())
                .sum();
            (base + slope * x + bumps).clamp(0.01, 0.9)
        })
        .collect()
}

fn check(config: &SceneConfig) -> Result<(), HsiError> {
    let SceneConfig {
        rows, cols, bands, ..
    } = *config;
    if rows < 4 || cols < 4 || bands < 2 || config.materials < 1 {
        return Err(HsiError::Detector(format!(
            "a synthetic scene needs at least 4×4 pixels, 2 bands and 1 material, got {rows}×{cols}×{bands} with {}",
            config.materials
        )));
    }
    if config.targets > rows * cols / 9 {
        return Err(HsiError::Detector(format!(
            "{} targets do not fit sparsely in {rows}×{cols} pixels",
            config.targets
        )));
    }
    Ok(())
}

fn band_centres(config: &SceneConfig) -> Vec<f64> {
    let (w0, w1) = config.wavelength_range;
    (0..config.bands)
        .map(|b| w0 + (w1 - w0) * b as f64 / (config.bands - 1) as f64)
        .collect()
}

/// Mixes `materials` with smooth abundance fields, implants `targets[i % len]` at sparse
/// pixels, adds noise and scales to radiance-like integers.
fn compose(
    config: &SceneConfig,
    wavelengths: Vec<f64>,
    materials: &[Vec<f64>],
    targets: &[Vec<f64>],
    rng: &mut SplitMix64,
) -> Result<Scene, HsiError> {
    let SceneConfig {
        rows, cols, bands, ..
    } = *config;
    // Smooth abundance fields: each material's weight is a sum of two random plane waves,
    // so fields, roads and roofs come out as patches rather than salt and pepper.
    let waves: Vec<[f64; 6]> = materials
        .iter()
        .map(|_| {
            [
                rng.range(0.02, 0.12),
                rng.range(0.02, 0.12),
                rng.range(0.0, 6.3),
                rng.range(0.02, 0.12),
                rng.range(0.0, 6.3),
                rng.range(0.5, 1.5),
            ]
        })
        .collect();
    let mut positions: Vec<(usize, usize)> = Vec::with_capacity(config.targets);
    let mut target_at = vec![None; rows * cols];
    while positions.len() < config.targets {
        let (r, c) = (2 + rng.below(rows - 4), 2 + rng.below(cols - 4));
        // Keep targets apart, so each is its own alert.
        if positions
            .iter()
            .all(|&(tr, tc)| tr.abs_diff(r) > 2 || tc.abs_diff(c) > 2)
        {
            target_at[r * cols + c] = Some(positions.len() % targets.len().max(1));
            positions.push((r, c));
        }
    }
    let mut data = Vec::with_capacity(rows * cols * bands);
    for r in 0..rows {
        for c in 0..cols {
            let weights: Vec<f64> = waves
                .iter()
                .map(|w| {
                    let v = (w[0] * r as f64 + w[1] * c as f64 + w[2]).sin()
                        + (w[3] * (r + c) as f64 + w[4]).cos();
                    (w[5] * v).exp()
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let target = target_at[r * cols + c].map(|t| &targets[t]);
            let fraction = if target.is_some() {
                config.target_fraction
            } else {
                0.0
            };
            for b in 0..bands {
                let background: f64 = weights
                    .iter()
                    .zip(materials)
                    .map(|(w, m)| w / total * m[b])
                    .sum();
                let implanted = target.map_or(0.0, |t| t[b]);
                let value = (1.0 - fraction) * background
                    + fraction * implanted
                    + config.noise * rng.normal();
                data.push((value * 10_000.0).round() as f32);
            }
        }
    }
    let mut cube = Cube::from_bip(rows, cols, bands, data)?;
    cube.wavelengths = Some(wavelengths);
    cube.map_info = Some(MapInfo {
        projection: "UTM".into(),
        reference_pixel: (1.0, 1.0),
        reference_easting_northing: (500_000.0, 4_200_000.0),
        pixel_size: (3.0, 3.0),
        rest: vec![
            "13".into(),
            "North".into(),
            "WGS-84".into(),
            "units=Meters".into(),
        ],
    });
    let labels = target_at.iter().map(Option::is_some).collect();
    Ok(Scene {
        cube,
        labels,
        targets: positions,
    })
}

impl Scene {
    /// A scene mixed from made-up smooth spectra: needs no data, for the demo and benchmarks.
    pub fn generate(config: &SceneConfig) -> Result<Scene, HsiError> {
        check(config)?;
        let mut rng = SplitMix64::new(config.seed);
        let wavelengths = band_centres(config);
        let materials: Vec<Vec<f64>> = (0..config.materials)
            .map(|_| material_spectrum(&mut rng, &wavelengths))
            .collect();
        let target = material_spectrum(&mut rng, &wavelengths);
        compose(config, wavelengths, &materials, &[target], &mut rng)
    }

    /// A scene mixed from measured spectra: `config.materials` background materials drawn from
    /// the library's `background_class` (say `pervious`: soil, vegetation) and targets drawn
    /// from `target_class` (say `impervious`: roofs, roads, paint, metal), one material each.
    pub fn generate_from(
        config: &SceneConfig,
        library: &SpectralLibrary,
        background_class: &str,
        target_class: &str,
    ) -> Result<Scene, HsiError> {
        check(config)?;
        let mut rng = SplitMix64::new(config.seed);
        let wavelengths = band_centres(config);
        let library = library.resample(&wavelengths)?;
        let pick =
            |class: &str, count: usize, rng: &mut SplitMix64| -> Result<Vec<Vec<f64>>, HsiError> {
                let pool = library.of_class(class);
                if pool.is_empty() {
                    return Err(HsiError::Detector(format!(
                        "the spectral library has no material of class {class:?}"
                    )));
                }
                Ok((0..count)
                    .map(|_| {
                        pool[rng.below(pool.len())]
                            .reflectance
                            .iter()
                            .map(|&r| f64::from(r))
                            .collect()
                    })
                    .collect())
            };
        let materials = pick(background_class, config.materials, &mut rng)?;
        let targets = pick(target_class, config.targets.max(1), &mut rng)?;
        compose(config, wavelengths, &materials, &targets, &mut rng)
    }

    /// Writes the cube as ENVI int16 BIL (`<dir>/<name>.bil` + `.hdr`), with wavelengths and
    /// map info, the way an AVIRIS-like payload stores a flight line. Returns the header path.
    pub fn write_envi(&self, dir: &Path, name: &str) -> Result<PathBuf, HsiError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HsiError::Io { path, source }
        };
        let cube = &self.cube;
        let (rows, cols, bands) = (cube.rows(), cube.cols(), cube.bands());
        let mut bytes = Vec::with_capacity(rows * cols * bands * 2);
        for r in 0..rows {
            for b in 0..bands {
                for c in 0..cols {
                    let v = cube.spectrum(r, c)[b].clamp(f32::from(i16::MIN), f32::from(i16::MAX))
                        as i16;
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let data_path = dir.join(format!("{name}.bil"));
        std::fs::write(&data_path, bytes).map_err(io(&data_path))?;
        let mut header = format!(
            "ENVI\ndescription = {{vigil synthetic scene, {} sub-pixel targets}}\nsamples = {cols}\nlines = {rows}\nbands = {bands}\nheader offset = 0\nfile type = ENVI Standard\ndata type = 2\ninterleave = bil\nbyte order = 0\n",
            self.targets.len()
        );
        if let Some(map) = &cube.map_info {
            header.push_str(&format!(
                "map info = {{{}, {:.1}, {:.1}, {:.3}, {:.3}, {:.3}, {:.3}, {}}}\n",
                map.projection,
                map.reference_pixel.0,
                map.reference_pixel.1,
                map.reference_easting_northing.0,
                map.reference_easting_northing.1,
                map.pixel_size.0,
                map.pixel_size.1,
                map.rest.join(", ")
            ));
        }
        if let Some(wavelengths) = &cube.wavelengths {
            let list: Vec<String> = wavelengths.iter().map(|w| format!("{w:.2}")).collect();
            header.push_str(&format!(
                "wavelength units = Nanometers\nwavelength = {{{}}}\n",
                list.join(", ")
            ));
        }
        let header_path = dir.join(format!("{name}.hdr"));
        std::fs::write(&header_path, header).map_err(io(&header_path))?;
        Ok(header_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_finds_the_implanted_targets() {
        let scene = Scene::generate(&SceneConfig {
            rows: 40,
            cols: 40,
            bands: 30,
            targets: 5,
            ..Default::default()
        })
        .unwrap();
        let scores = crate::hsi::background::global_rx(&scene.cube, faer::Par::Seq).unwrap();
        let values: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
        let auc = crate::eval::roc_auc(&values, &scene.labels).unwrap();
        assert!(auc > 0.99, "RX AUC on the synthetic scene is {auc}");
        assert_eq!(scene.labels.iter().filter(|&&l| l).count(), 5);
    }

    #[test]
    fn the_same_seed_gives_the_same_scene() {
        let config = SceneConfig {
            rows: 8,
            cols: 8,
            bands: 5,
            targets: 2,
            ..Default::default()
        };
        assert_eq!(
            Scene::generate(&config).unwrap().cube,
            Scene::generate(&config).unwrap().cube
        );
        assert!(Scene::generate(&SceneConfig { rows: 2, ..config }).is_err());
    }
}
