//! Hyperspectral detectors against independent references: numpy implementations of the same
//! definitions (`scripts/reference/hsi_detectors.py` wrote the fixtures), scipy's χ² quantiles,
//! and the published global-RX pixel AUCs of the eight ABU scenes in `../shared/data/hsi`.

use std::path::{Path, PathBuf};

use vigil::hsi::Cube;
use vigil::hsi::detect::SceneDetector;
use vigil::hsi::local::DualWindow;
use vigil::io::npy::read_npy;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hsi_detectors")
        .join(name)
}

fn shared_scene(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/hsi")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "{} is absent: skipped (CI has ../shared beside the checkout)",
            path.display()
        );
        None
    }
}

fn cube(name: &str) -> Cube {
    vigil::hsi::read_npy_cube(&fixture(name)).unwrap()
}

fn reference(name: &str) -> Vec<f64> {
    read_npy::<f64>(fixture(name)).unwrap().data
}

/// Every score within `relative` of the reference's largest score.
fn assert_matches(what: &str, got: &[f32], want: &[f64], relative: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (f64::from(*g) - w).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= relative * scale,
        "{what}: largest difference {worst:e} against scale {scale:e}"
    );
}

#[test]
fn global_rx_matches_numpy_pinv() {
    let scores = SceneDetector::Rx.score(&cube("small.npy"), 1).unwrap();
    assert_matches("GRX small", &scores, &reference("small_grx.npy"), 1e-5);
    // Three bands are exact combinations of others: the covariance is singular and only the
    // pseudo-inverse gives numpy's answer.
    let scores = SceneDetector::Rx.score(&cube("singular.npy"), 2).unwrap();
    assert_matches(
        "GRX singular",
        &scores,
        &reference("singular_grx.npy"),
        1e-4,
    );
}

#[test]
fn local_detectors_match_numpy() {
    let window = DualWindow { inner: 3, outer: 9 };
    let small = cube("small.npy");
    let lrx = SceneDetector::Lrx { window }.score(&small, 2).unwrap();
    assert_matches("LRX 3/9", &lrx, &reference("small_lrx_3_9.npy"), 1e-4);
    let crd = SceneDetector::Crd {
        window,
        lambda: 1e-2,
    }
    .score(&small, 2)
    .unwrap();
    assert_matches("CRD 3/9", &crd, &reference("small_crd_3_9.npy"), 1e-4);
    let slrx = SceneDetector::Slrx { block_num: 4 }
        .score(&small, 1)
        .unwrap();
    assert_matches("SLRX 4", &slrx, &reference("small_slrx_4.npy"), 1e-4);
}

#[test]
fn chi2_quantiles_match_scipy() {
    let text = std::fs::read_to_string(fixture("chi2.json")).unwrap();
    let table: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(table.len() >= 50);
    for row in table {
        let (df, p, want) = (
            row["df"].as_f64().unwrap(),
            row["p"].as_f64().unwrap(),
            row["quantile"].as_f64().unwrap(),
        );
        let got = vigil::hsi::threshold::chi2_upper_quantile(p, df);
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "χ²({df}) upper {p}: {got} against scipy {want}"
        );
    }
}

/// Published global-RX pixel AUCs (`../shared/data/README.md`).
const ABU_RX_AUC: [(&str, f64); 8] = [
    ("abu-beach-1.mat", 0.9807),
    ("abu-beach-2.mat", 0.9106),
    ("abu-beach-3.mat", 0.9998),
    ("abu-urban-1.mat", 0.9907),
    ("abu-urban-2.mat", 0.9946),
    ("abu-urban-3.mat", 0.9513),
    ("abu-urban-4.mat", 0.9887),
    ("abu-urban-5.mat", 0.9692),
];

#[test]
fn global_rx_reproduces_the_abu_aucs() {
    for (name, published) in ABU_RX_AUC {
        let Some(path) = shared_scene(name) else {
            return;
        };
        let scene = vigil::hsi::read_scene(&path).unwrap();
        let labels = scene.labels.expect("ABU scenes carry a map");
        let scores = SceneDetector::Rx.score(&scene.cube, 2).unwrap();
        let values: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
        let auc = vigil::eval::roc_auc(&values, &labels).unwrap();
        assert!(
            (auc - published).abs() < 1e-3,
            "{name}: AUC {auc:.5}, published {published}"
        );
    }
}

#[test]
fn streaming_rx_on_a_real_scene_ends_equal_to_batch() {
    let Some(path) = shared_scene("abu-urban-1.mat") else {
        return;
    };
    let cube = vigil::hsi::read_scene(&path).unwrap().cube;
    let batch = SceneDetector::Rx.score(&cube, 2).unwrap();
    let mut rx = vigil::hsi::streaming::StreamingRx::new(
        cube.cols(),
        cube.bands(),
        vigil::hsi::streaming::StreamingSettings::default(),
        faer::Par::rayon(2),
    )
    .unwrap();
    let mut scored_lines = 0;
    for row in 0..cube.rows() {
        scored_lines += rx.push_line(cube.line(row)).unwrap().len();
    }
    scored_lines += rx.finish().unwrap().len();
    assert_eq!(scored_lines, cube.rows());
    let streamed = rx.background().unwrap().score(cube.data()).unwrap();
    let want: Vec<f64> = batch.iter().map(|&v| f64::from(v)).collect();
    assert_matches("streaming against batch, urban-1", &streamed, &want, 1e-4);
}
