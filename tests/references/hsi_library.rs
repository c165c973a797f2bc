//! Synthetic training scenes from measured spectra: the earthlib library (fetched by
//! `scripts/fetch-spectra.sh`, which the test command runs) read with its classes, resampled to
//! a sensor's bands and mixed into scenes whose implanted built materials RX can find.

use std::path::Path;

use vigil::hsi::library::SpectralLibrary;
use vigil::hsi::synthetic::{Scene, SceneConfig};

fn earthlib() -> Option<SpectralLibrary> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/spectra/earthlib/spectra.sli.hdr");
    if !path.exists() {
        eprintln!(
            "{} is absent: run scripts/fetch-spectra.sh (the test command does)",
            path.display()
        );
        return None;
    }
    Some(SpectralLibrary::read_envi(&path).unwrap())
}

#[test]
fn earthlib_reads_with_its_classes_in_nanometres() {
    let Some(library) = earthlib() else { return };
    assert_eq!(library.wavelengths.len(), 180);
    assert!(
        (library.wavelengths[0] - 400.0).abs() < 1.0
            && (library.wavelengths[179] - 2450.0).abs() < 1.0
    );
    // 7 261 spectra, 6 373 pervious and 888 impervious in its class table.
    assert!(
        library.materials.len() > 7_000,
        "{}",
        library.materials.len()
    );
    assert!(library.of_class("impervious").len() > 800);
    assert!(library.of_class("canopy").len() > 1_500);
}

#[test]
fn scenes_mixed_from_real_spectra_hide_findable_targets() {
    let Some(library) = earthlib() else { return };
    let config = SceneConfig {
        rows: 64,
        cols: 64,
        bands: 200,
        targets: 12,
        target_fraction: 0.25,
        wavelength_range: (400.0, 2450.0),
        seed: 3,
        ..Default::default()
    };
    let scene = Scene::generate_from(&config, &library, "pervious", "impervious").unwrap();
    assert_eq!(scene.labels.iter().filter(|&&l| l).count(), 12);
    let scores = vigil::hsi::detect::SceneDetector::Rx
        .score(&scene.cube, 2)
        .unwrap();
    let values: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    let auc = vigil::eval::roc_auc(&values, &scene.labels).unwrap();
    assert!(
        auc > 0.95,
        "RX AUC {auc} on built materials at 25 % fill in soil and vegetation"
    );
    // A class the library lacks, and bands beyond its range, are named.
    let missing = Scene::generate_from(&config, &library, "pervious", "lava")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("lava"), "{missing}");
    let wide = SceneConfig {
        wavelength_range: (350.0, 2500.0),
        ..config
    };
    let beyond = Scene::generate_from(&wide, &library, "pervious", "impervious")
        .unwrap_err()
        .to_string();
    assert!(beyond.contains("350"), "{beyond}");
}

#[test]
fn real_scenes_give_background_patches_without_the_held_out_scene() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hsi");
    if !dir.exists() {
        eprintln!("{} is absent: skipped", dir.display());
        return;
    }
    let mut scenes: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mat"))
        .collect();
    scenes.sort();
    let out = tempfile::tempdir().unwrap();
    let held_out = vec!["abu-urban-1".to_string()];
    let written = vigil::hsi::had100::write_background_patches(
        out.path(),
        "real",
        &scenes,
        &held_out,
        32,
        200,
    )
    .unwrap();
    let used: Vec<&str> = written.iter().map(|(stem, _)| stem.as_str()).collect();
    // Only urban-1, 2, 4 and 5 have 200 bands or more; urban-1 is held out.
    assert_eq!(used, ["abu-urban-2", "abu-urban-4", "abu-urban-5"]);
    let files = std::fs::read_dir(out.path().join("train/real"))
        .unwrap()
        .count();
    assert_eq!(files, written.iter().map(|(_, n)| n).sum::<usize>());
    assert!(files > 0);
    let patch =
        vigil::hsi::read_npy_cube(&out.path().join("train/real/abu-urban-2_000.npy")).unwrap();
    assert_eq!((patch.rows(), patch.cols(), patch.bands()), (32, 32, 200));
    let again = vigil::hsi::had100::write_background_patches(
        out.path(),
        "real",
        &scenes,
        &held_out,
        32,
        200,
    );
    assert!(again.unwrap_err().to_string().contains("already exists"));
}
