//! FERS-edge end to end on a small configuration: train both stages on background cubes mixed
//! from earthlib's spectra plus patches of one real scene, export (checked against burn),
//! quantize, load through the runtime's manifest path, and evaluate, with the scene that
//! trained the model refused a score. Then the bad inputs.

use std::path::{Path, PathBuf};

use vigil::hsi::fers::{FersEdge, normalise};
use vigil::hsi::had100::{SyntheticSet, make_synthetic, write_background_patches};
use vigil::hsi::library::SpectralLibrary;
use vigil::hsi::synthetic::SceneConfig;
use vigil::hsi::{Cube, read_scene};
use vigil::train::backend::BackendKind;
use vigil::train::fers::model::FersEdgeConfig;
use vigil::train::fers::pipeline::{evaluate, export, model_name};
use vigil::train::fers::train::{FersTrainConfig, train};
use vigil::train::run::RunDir;

const BANDS: usize = 24;

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn inputs_present() -> bool {
    let needed = [
        repo("models/cache/spectra/earthlib/spectra.sli.hdr"),
        repo("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"),
        repo("../shared/data/hsi/abu-urban-1.mat"),
    ];
    if let Some(missing) = needed.iter().find(|p| !p.exists()) {
        eprintln!(
            "{} is absent: the test command fetches it (scripts/fetch-models.sh)",
            missing.display()
        );
        return false;
    }
    true
}

fn small_set(root: &Path) {
    let library =
        SpectralLibrary::read_envi(&repo("models/cache/spectra/earthlib/spectra.sli.hdr")).unwrap();
    let set = SyntheticSet {
        scene: SceneConfig {
            rows: 64,
            cols: 64,
            bands: BANDS,
            targets: 6,
            target_fraction: 0.1,
            wavelength_range: (400.0, 2450.0),
            seed: 3,
            ..SceneConfig::default()
        },
        train_scenes: 4,
        test_scenes: 2,
        background_class: "pervious".into(),
        target_class: "impervious".into(),
        sensor: "synthetic".into(),
    };
    make_synthetic(root, &library, &set).unwrap();
    let written = write_background_patches(
        root,
        "real",
        &[repo("../shared/data/hsi/abu-urban-1.mat")],
        &[],
        32,
        BANDS,
    )
    .unwrap();
    assert!(written[0].1 > 0, "{written:?}");
}

fn config() -> FersTrainConfig {
    FersTrainConfig::new(FersEdgeConfig::new(BANDS))
        .with_ferd_epochs(1)
        .with_student_epochs(1)
        .with_batch_size(4)
}

#[test]
fn trains_exports_quantizes_and_evaluates_without_scoring_seen_scenes() {
    if !inputs_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    small_set(&data);
    let run_path = work.path().join("run");
    let sources = ["synthetic".to_string(), "real".to_string()];
    let summary = train(
        &data,
        &sources,
        "synthetic",
        &repo("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"),
        &run_path,
        BackendKind::Flex,
        config(),
    )
    .unwrap();
    assert_eq!(
        (summary.ferd_best_epoch, summary.student_best_epoch),
        (1, 1)
    );
    for auc in [summary.ferd_validation_auc, summary.student_validation_auc] {
        assert!(auc > 0.5 && auc <= 1.0, "{summary:?}");
    }
    let run = RunDir::open(&run_path).unwrap();
    let record = export(&run).unwrap();
    assert!(record.parity_relative < 1e-4, "{record:?}");
    // Per-channel int8 weights and per-tensor activations: a few per cent at most.
    assert!(record.int8_relative < 0.1, "{record:?}");
    // conv_h, the projection's two, the false-RGB pair, LightSPP's three pooled blocks and its
    // second layer, and the SE pair.
    assert_eq!(record.quantized_layers, 11, "{record:?}");

    // The runtime loads both graphs from the run's manifest and maps a scene whose sides are
    // not multiples of the tile.
    let manifest = vigil::detector::Manifest::load(&run.file("manifest.toml")).unwrap();
    let model = FersEdge::load(&manifest, &model_name(BANDS, true)).unwrap();
    assert_eq!((model.bands(), model.tile()), (BANDS, 64));
    let urban = read_scene(&repo("../shared/data/hsi/abu-urban-2.mat"))
        .unwrap()
        .cube;
    let crop = Cube::from_bip(
        70,
        90,
        urban.bands(),
        (0..70)
            .flat_map(|r| urban.data()[r * 100 * urban.bands()..][..90 * urban.bands()].to_vec())
            .collect(),
    )
    .unwrap();
    let features = model
        .features(&normalise(&crop.first_bands(BANDS).unwrap()).unwrap())
        .unwrap();
    for map in [&features.spectral, &features.spatial] {
        assert_eq!((map.rows(), map.cols(), map.bands()), (70, 90, BANDS));
        assert!(map.data().iter().all(|v| v.is_finite() && *v >= 0.0));
    }
    let scores = model.score(&crop, 1).unwrap();
    assert_eq!(scores.len(), 70 * 90);

    // Evaluation: urban-1 trained the model (its patches are in train/real), urban-2 did not.
    let scenes = work.path().join("scenes");
    std::fs::create_dir(&scenes).unwrap();
    for name in ["abu-urban-1", "abu-urban-2"] {
        std::os::unix::fs::symlink(
            repo(&format!("../shared/data/hsi/{name}.mat")),
            scenes.join(format!("{name}.mat")),
        )
        .unwrap();
    }
    let results = evaluate(&run, &scenes).unwrap();
    assert_eq!(results.len(), 2);
    let (seen, held_out) = (&results[0], &results[1]);
    assert_eq!(seen.scene, "abu-urban-1");
    assert!(seen.grx.is_none() && seen.int8_rx.is_none(), "{seen:?}");
    assert!(
        seen.note
            .as_deref()
            .unwrap_or("")
            .contains("trained the model")
    );
    let aucs = [
        held_out.grx,
        held_out.fp32_rx,
        held_out.int8_rx,
        held_out.fp32_lrx,
        held_out.int8_lrx,
    ];
    assert!(
        aucs.iter().all(|a| a.is_some_and(|a| a > 0.5 && a <= 1.0)),
        "{held_out:?}"
    );
    let (fp32, int8) = (held_out.fp32_rx.unwrap(), held_out.int8_rx.unwrap());
    assert!((fp32 - int8).abs() < 0.05, "{held_out:?}");
    let table = std::fs::read_to_string(run.file("eval.md")).unwrap();
    assert!(table.contains("| abu-urban-2 |") && table.contains("trained the model"));

    // Bad inputs: too few bands for the model, a folder without scenes.
    let narrow = Cube::from_bip(8, 8, BANDS - 1, vec![0.5; 64 * (BANDS - 1)]).unwrap();
    let message = model.score(&narrow, 1).unwrap_err().to_string();
    assert!(
        message.contains(&format!("{BANDS} bands are needed")),
        "{message}"
    );
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let message = evaluate(&run, &empty).unwrap_err().to_string();
    assert!(message.contains("holds no .mat scene"), "{message}");
}

#[test]
fn training_refuses_bad_data_before_creating_the_run() {
    if !inputs_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mobilenet = repo("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth");
    let run_path = work.path().join("run");
    let attempt = |data: &Path| {
        train(
            data,
            &["synthetic".to_string()],
            "synthetic",
            &mobilenet,
            &run_path,
            BackendKind::Flex,
            config(),
        )
        .unwrap_err()
        .to_string()
    };
    // No training folder at all.
    let message = attempt(&work.path().join("nothing"));
    assert!(message.contains("nothing"), "{message}");
    // A cube whose side the bank's strides cannot halve four times.
    let data = work.path().join("odd");
    let train_dir = data.join("train/synthetic");
    std::fs::create_dir_all(&train_dir).unwrap();
    vigil::io::npy::write_npy(
        train_dir.join("odd.npy"),
        &[20, 20, BANDS],
        &vec![0.5f32; 400 * BANDS],
    )
    .unwrap();
    let message = attempt(&data);
    assert!(
        message.contains("odd.npy") && message.contains("multiple of 8"),
        "{message}"
    );
    // Fewer bands than the model reads.
    let data = work.path().join("narrow");
    let train_dir = data.join("train/synthetic");
    std::fs::create_dir_all(&train_dir).unwrap();
    let values: Vec<f32> = (0..64 * 64 * 8).map(|i| (i % 97) as f32).collect();
    vigil::io::npy::write_npy(train_dir.join("narrow.npy"), &[64, 64, 8], &values).unwrap();
    let message = attempt(&data);
    assert!(
        message.contains("narrow.npy") && message.contains("bands are needed"),
        "{message}"
    );
    assert!(
        !run_path.exists(),
        "a refused run left {}",
        run_path.display()
    );
}
