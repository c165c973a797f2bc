//! The HAD100 dataset layout (AETNet, TGRS 2023), which FERS's loaders read, so that a user with
//! HAD100 trains and evaluates on it as the paper does, and vigil's own synthetic sets can be
//! written the same way:
//!
//! ```text
//! <root>/train/<sensor>/<stem>.npy          background-only cubes, H×W×B
//! <root>/test/<sensor>/<stem>.npy           test scenes
//! <root>/ground_truth/<sensor>/<stem>.png   their anomaly maps
//! ```
//!
//! Ground-truth PNGs are matched to scenes by stem, never by directory order; in a colour PNG
//! channel 1 (green) marks anomalies as the FERS loader reads it, in a grey one the only channel
//! does; 255 is anomalous.

use std::path::{Path, PathBuf};

use super::library::SpectralLibrary;
use super::synthetic::{Scene, SceneConfig};
use super::{Cube, HsiError};

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> HsiError + '_ {
    move |source| HsiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_error(path: &Path, detail: impl Into<String>) -> HsiError {
    HsiError::Format {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// `.npy` files of a folder, sorted by name.
fn cubes_in(dir: &Path) -> Result<Vec<PathBuf>, HsiError> {
    files_in(dir, "npy", "cube")
}

/// The labelled MATLAB scenes (`data` and `map`) of a folder, such as `../shared/data/hsi`,
/// sorted by name.
pub fn labelled_scenes_in(dir: &Path) -> Result<Vec<PathBuf>, HsiError> {
    files_in(dir, "mat", "scene")
}

/// The `.<extension>` files of a folder, sorted by name; none is an error naming the folder.
fn files_in(dir: &Path, extension: &str, what: &str) -> Result<Vec<PathBuf>, HsiError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format_error(dir, format!("holds no .{extension} {what}")));
    }
    Ok(files)
}

/// The background-only training cubes of `sensor`.
pub fn train_cubes(root: &Path, sensor: &str) -> Result<Vec<PathBuf>, HsiError> {
    cubes_in(&root.join("train").join(sensor))
}

/// A test scene and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct TestScene {
    pub cube: PathBuf,
    pub ground_truth: PathBuf,
}

/// The test scenes of `sensor`, each paired with `ground_truth/<sensor>/<stem>.png`; a scene
/// without its map, or a map without its scene, is an error naming the file.
pub fn test_scenes(root: &Path, sensor: &str) -> Result<Vec<TestScene>, HsiError> {
    let truth_dir = root.join("ground_truth").join(sensor);
    let scenes: Vec<TestScene> = cubes_in(&root.join("test").join(sensor))?
        .into_iter()
        .map(|cube| {
            let stem = cube.file_stem().unwrap_or_default().to_os_string();
            let ground_truth = truth_dir.join(stem).with_extension("png");
            TestScene { cube, ground_truth }
        })
        .collect();
    if let Some(missing) = scenes.iter().find(|s| !s.ground_truth.exists()) {
        return Err(format_error(
            &missing.cube,
            format!(
                "has no ground truth: {} is missing",
                missing.ground_truth.display()
            ),
        ));
    }
    if let Ok(entries) = std::fs::read_dir(&truth_dir) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "png")
                && !scenes.iter().any(|s| s.ground_truth == path)
            {
                return Err(format_error(
                    &path,
                    "is a ground truth without a test scene",
                ));
            }
        }
    }
    Ok(scenes)
}

/// Reads an anomaly map: `rows × cols` labels, row-major.
pub fn read_ground_truth(path: &Path) -> Result<(usize, usize, Vec<bool>), HsiError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format_error(path, e.to_string()))?;
    let mut pixels = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or_else(|| format_error(path, "image too large"))?
    ];
    let frame = reader
        .next_frame(&mut pixels)
        .map_err(|e| format_error(path, e.to_string()))?;
    let channels = frame.color_type.samples();
    let channel = if channels >= 3 { 1 } else { 0 };
    let (cols, rows) = (frame.width as usize, frame.height as usize);
    let labels = pixels[..frame.buffer_size()]
        .chunks_exact(channels)
        .map(|pixel| pixel[channel] == 255)
        .collect();
    Ok((rows, cols, labels))
}

/// A test scene's cube and labels, checked to have the same size.
pub fn read_test_scene(scene: &TestScene) -> Result<(Cube, Vec<bool>), HsiError> {
    let cube = super::read_npy_cube(&scene.cube)?;
    let (rows, cols, labels) = read_ground_truth(&scene.ground_truth)?;
    if (rows, cols) != (cube.rows(), cube.cols()) {
        return Err(format_error(
            &scene.ground_truth,
            format!(
                "is {rows}×{cols}, its scene {} is {}×{}",
                scene.cube.display(),
                cube.rows(),
                cube.cols()
            ),
        ));
    }
    Ok((cube, labels))
}

fn write_cube(path: &Path, cube: &Cube) -> Result<(), HsiError> {
    crate::io::npy::write_npy(path, &[cube.rows(), cube.cols(), cube.bands()], cube.data())
        .map_err(|e| format_error(path, e.kind.to_string()))
}

fn write_ground_truth(
    path: &Path,
    rows: usize,
    cols: usize,
    labels: &[bool],
) -> Result<(), HsiError> {
    let rgb: Vec<u8> = labels
        .iter()
        .flat_map(|&l| if l { [255u8; 3] } else { [0u8; 3] })
        .collect();
    crate::io::png::write_rgb(path, cols, rows, &rgb).map_err(|detail| format_error(path, detail))
}

/// What [`make_synthetic`] writes.
#[derive(Debug, Clone)]
pub struct SyntheticSet {
    /// Scene shape, fill, noise; `seed` is the set's seed, each scene derives its own.
    pub scene: SceneConfig,
    pub train_scenes: usize,
    pub test_scenes: usize,
    /// Library class of background materials (earthlib: `pervious`).
    pub background_class: String,
    /// Library class of implanted targets (earthlib: `impervious`).
    pub target_class: String,
    /// Folder name under train/, test/ and ground_truth/.
    pub sensor: String,
}

/// Writes a HAD100-layout set mixed from `library`: training cubes with no targets at all (FERS
/// trains on background only), test scenes with implanted sub-pixel targets and their maps.
/// Refuses to write into a folder that already holds the sensor's data.
pub fn make_synthetic(
    root: &Path,
    library: &SpectralLibrary,
    set: &SyntheticSet,
) -> Result<(), HsiError> {
    let dirs = ["train", "test", "ground_truth"].map(|split| root.join(split).join(&set.sensor));
    if let Some(existing) = dirs.iter().find(|d| d.exists()) {
        return Err(format_error(
            existing,
            "already exists; choose a new folder",
        ));
    }
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let [train, test, truth] = &dirs;
    for i in 0..set.train_scenes {
        let config = SceneConfig {
            targets: 0,
            seed: crate::rng::SplitMix64::derive(set.scene.seed, i as u64).next_u64(),
            ..set.scene.clone()
        };
        let scene =
            Scene::generate_from(&config, library, &set.background_class, &set.target_class)?;
        write_cube(&train.join(format!("train_{i:04}.npy")), &scene.cube)?;
    }
    for i in 0..set.test_scenes {
        let config = SceneConfig {
            seed: crate::rng::SplitMix64::derive(set.scene.seed, (1 << 32) + i as u64).next_u64(),
            ..set.scene.clone()
        };
        let scene =
            Scene::generate_from(&config, library, &set.background_class, &set.target_class)?;
        let stem = format!("test_{i:04}");
        write_cube(&test.join(format!("{stem}.npy")), &scene.cube)?;
        write_ground_truth(
            &truth.join(format!("{stem}.png")),
            scene.cube.rows(),
            scene.cube.cols(),
            &scene.labels,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsi::library::Material;

    fn library() -> SpectralLibrary {
        let wavelengths: Vec<f64> = (0..50).map(|i| 400.0 + 40.0 * i as f64).collect();
        let material = |name: &str, class: &str, f: &dyn Fn(f64) -> f64| Material {
            name: name.into(),
            classes: vec![class.into()],
            reflectance: wavelengths.iter().map(|&w| f(w) as f32).collect(),
        };
        SpectralLibrary {
            materials: vec![
                material("grass", "pervious", &|w| {
                    0.05 + 0.4 / (1.0 + (-(w - 720.0) / 20.0).exp())
                }),
                material("soil", "pervious", &|w| 0.1 + 0.2 * (w - 400.0) / 2000.0),
                material("paint", "impervious", &|w| {
                    0.3 + 0.2 * ((w - 400.0) / 300.0).sin()
                }),
            ],
            wavelengths,
        }
    }

    fn set() -> SyntheticSet {
        SyntheticSet {
            scene: SceneConfig {
                rows: 16,
                cols: 16,
                bands: 20,
                materials: 2,
                targets: 3,
                wavelength_range: (400.0, 2300.0),
                ..Default::default()
            },
            train_scenes: 3,
            test_scenes: 2,
            background_class: "pervious".into(),
            target_class: "impervious".into(),
            sensor: "synthetic".into(),
        }
    }

    #[test]
    fn a_written_set_reads_back_paired_by_name() {
        let dir = tempfile::tempdir().unwrap();
        make_synthetic(dir.path(), &library(), &set()).unwrap();
        assert_eq!(train_cubes(dir.path(), "synthetic").unwrap().len(), 3);
        let scenes = test_scenes(dir.path(), "synthetic").unwrap();
        assert_eq!(scenes.len(), 2);
        for scene in &scenes {
            let (cube, labels) = read_test_scene(scene).unwrap();
            assert_eq!((cube.rows(), cube.cols(), cube.bands()), (16, 16, 20));
            assert_eq!(labels.iter().filter(|&&l| l).count(), 3);
        }
        // Writing a second set over the first is refused.
        let message = make_synthetic(dir.path(), &library(), &set())
            .unwrap_err()
            .to_string();
        assert!(message.contains("already exists"), "{message}");
    }

    #[test]
    fn unpaired_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        make_synthetic(dir.path(), &library(), &set()).unwrap();
        let truth = dir.path().join("ground_truth/synthetic/test_0001.png");
        std::fs::rename(&truth, dir.path().join("ground_truth/synthetic/other.png")).unwrap();
        let message = test_scenes(dir.path(), "synthetic")
            .unwrap_err()
            .to_string();
        assert!(message.contains("test_0001.png is missing"), "{message}");
        std::fs::copy(dir.path().join("ground_truth/synthetic/other.png"), &truth).unwrap();
        let message = test_scenes(dir.path(), "synthetic")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("other.png") && message.contains("without a test scene"),
            "{message}"
        );
        std::fs::remove_file(dir.path().join("ground_truth/synthetic/other.png")).unwrap();
        std::fs::write(&truth, b"\x89PNG truncated").unwrap();
        let message = read_test_scene(&test_scenes(dir.path(), "synthetic").unwrap()[1])
            .unwrap_err()
            .to_string();
        assert!(message.contains("test_0001.png"), "{message}");
        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(empty.path().join("train/x")).unwrap();
        let message = train_cubes(empty.path(), "x").unwrap_err().to_string();
        assert!(message.contains("no .npy"), "{message}");
    }
}

/// Background-only training patches cut from a labelled scene: `size × size` windows every
/// `stride` pixels, keeping the first `bands` bands, that contain no anomalous pixel and none
/// within `margin` pixels of one (sub-pixel targets bleed into their neighbours). This is how
/// the ABU scenes become FERS training data without their anomalies.
pub fn background_patches(
    cube: &Cube,
    labels: &[bool],
    size: usize,
    stride: usize,
    bands: usize,
    margin: usize,
) -> Result<Vec<Cube>, HsiError> {
    if labels.len() != cube.pixels() {
        return Err(HsiError::Detector(format!(
            "{} labels for a {}×{} cube",
            labels.len(),
            cube.rows(),
            cube.cols()
        )));
    }
    if size == 0 || stride == 0 || size > cube.rows() || size > cube.cols() {
        return Err(HsiError::Detector(format!(
            "{size}×{size} patches every {stride} pixels do not fit a {}×{} cube",
            cube.rows(),
            cube.cols()
        )));
    }
    let cube = cube.first_bands(bands)?;
    let (rows, cols) = (cube.rows(), cube.cols());
    // Anomalies widened by the margin.
    let mut excluded = vec![false; rows * cols];
    for i in (0..labels.len()).filter(|&i| labels[i]) {
        let (r, c) = (i / cols, i % cols);
        for rr in r.saturating_sub(margin)..=(r + margin).min(rows - 1) {
            for cc in c.saturating_sub(margin)..=(c + margin).min(cols - 1) {
                excluded[rr * cols + cc] = true;
            }
        }
    }
    let mut patches = Vec::new();
    for top in (0..=rows - size).step_by(stride) {
        for left in (0..=cols - size).step_by(stride) {
            let clean = (top..top + size).all(|r| {
                !excluded[r * cols + left..r * cols + left + size]
                    .iter()
                    .any(|&e| e)
            });
            if !clean {
                continue;
            }
            let mut data = Vec::with_capacity(size * size * bands);
            for r in top..top + size {
                data.extend_from_slice(&cube.line(r)[left * bands..(left + size) * bands]);
            }
            patches.push(Cube::from_bip(size, size, bands, data)?);
        }
    }
    Ok(patches)
}

/// Writes [`background_patches`] of each labelled scene into `<root>/train/<sensor>/`, named
/// `<scene stem>_<n>.npy`, leaving out the scenes whose stem is in `held_out` (evaluate on
/// those: leave-one-scene-out) and scenes with fewer than `bands` bands. Returns
/// (scene stem, patches written) for each scene used.
pub fn write_background_patches(
    root: &Path,
    sensor: &str,
    scenes: &[PathBuf],
    held_out: &[String],
    size: usize,
    bands: usize,
) -> Result<Vec<(String, usize)>, HsiError> {
    let dir = root.join("train").join(sensor);
    if dir.exists() {
        return Err(format_error(&dir, "already exists; choose a new folder"));
    }
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let mut written = Vec::new();
    for path in scenes {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if held_out.contains(&stem) {
            continue;
        }
        let scene = super::read_scene(path)?;
        let Some(labels) = scene.labels else {
            return Err(format_error(
                path,
                "has no anomaly map, so its background cannot be told apart",
            ));
        };
        if scene.cube.bands() < bands {
            log::info!(
                "{}: {} bands, fewer than {bands}: left out",
                path.display(),
                scene.cube.bands()
            );
            continue;
        }
        let patches = background_patches(&scene.cube, &labels, size, size / 2, bands, 2)?;
        for (n, patch) in patches.iter().enumerate() {
            write_cube(&dir.join(format!("{stem}_{n:03}.npy")), patch)?;
        }
        written.push((stem, patches.len()));
    }
    Ok(written)
}

#[cfg(test)]
mod patch_tests {
    use super::*;

    #[test]
    fn patches_avoid_anomalies_and_their_margin() {
        let cube = Cube::from_bip(8, 8, 3, (0..192).map(|v| v as f32).collect()).unwrap();
        let mut labels = vec![false; 64];
        labels[2 * 8 + 2] = true;
        // 4×4 patches every 2 pixels: 9 positions; with a margin of 1 around (2, 2) only the
        // patches not touching rows/cols 1..=3 together survive.
        let patches = background_patches(&cube, &labels, 4, 2, 2, 1).unwrap();
        assert_eq!(patches.len(), 5);
        assert!(patches.iter().all(|p| p.bands() == 2 && p.rows() == 4));
        let clean = background_patches(&cube, &[false; 64], 4, 2, 3, 1).unwrap();
        assert_eq!(clean.len(), 9);
        assert_eq!(clean[0].spectrum(0, 0), [0.0, 1.0, 2.0]);
        assert_eq!(clean[8].spectrum(3, 3), cube.spectrum(7, 7));
        assert!(background_patches(&cube, &labels, 9, 2, 2, 1).is_err());
        assert!(background_patches(&cube, &labels[..10], 4, 2, 2, 1).is_err());
        assert!(
            background_patches(&cube, &labels, 4, 2, 5, 1)
                .unwrap_err()
                .to_string()
                .contains("5 bands")
        );
    }
}
