//! The drone-payload profile end to end: a georeferenced ENVI flight line (and the same data as
//! a raw BIL line stream) → streaming RX → CFAR threshold → one alert per implanted target, at
//! the right pixel and map coordinates, and an anomaly-map PNG.

use std::path::Path;

use vigil::hsi::synthetic::{Scene, SceneConfig};
use vigil::profile::Profile;
use vigil::runtime::Runtime;

fn scene() -> Scene {
    Scene::generate(&SceneConfig {
        rows: 60,
        cols: 50,
        bands: 40,
        targets: 5,
        target_fraction: 0.4,
        seed: 11,
        ..Default::default()
    })
    .unwrap()
}

fn run(dir: &Path, source: &str) -> Vec<serde_json::Value> {
    run_with(dir, source, "rx", r#"{ rule = "cfar-chi2", p_fa = 1e-7 }"#)
}

fn run_with(dir: &Path, source: &str, model: &str, threshold: &str) -> Vec<serde_json::Value> {
    let alerts_file = dir.join("alerts.jsonl");
    let text = format!(
        r#"
[box]
name = "payload"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "file", path = "{}" }}]
[[stream]]
name = "hsi0"
model = "{model}"
source = {source}
[stream.hyperspectral]
threshold = {threshold}
map_dir = "maps"
map_lines = 40
"#,
        alerts_file.display()
    );
    let profile = Profile::parse(&text, &dir.join("payload.toml")).unwrap();
    vigil::runtime::check(&profile).unwrap();
    Runtime::start(&profile).unwrap().wait().unwrap();
    std::fs::read_to_string(&alerts_file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// (row, col) of each `phase` alert's region.
fn positions(alerts: &[serde_json::Value], phase: &str) -> Vec<(u64, u64)> {
    let mut found: Vec<(u64, u64)> = alerts
        .iter()
        .filter(|a| a["phase"] == phase)
        .map(|a| {
            (
                a["regions"][0]["y"].as_u64().unwrap(),
                a["regions"][0]["x"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Every target raises an event; streaming RX scores the first lines against statistics of few
/// pixels, whose heavier tails than the χ² law's allow a false alarm or two.
fn assert_finds_targets(scene: &Scene, found: &[(u64, u64)]) {
    for &(row, col) in &scene.targets {
        assert!(
            found.contains(&(row as u64, col as u64)),
            "target at ({row}, {col}) missed: {found:?}"
        );
    }
    assert!(
        found.len() <= scene.targets.len() + 2,
        "too many false alarms: {found:?}"
    );
}

#[test]
fn a_replayed_flight_line_raises_one_event_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let scene = scene();
    let header = scene.write_envi(dir.path(), "flight").unwrap();
    let alerts = run(
        dir.path(),
        &format!("{{ kind = \"scene\", path = \"{}\" }}", header.display()),
    );
    let found = positions(&alerts, "new");
    assert_finds_targets(&scene, &found);
    assert_eq!(positions(&alerts, "end"), found, "every event ends");
    let map = scene.cube.map_info.as_ref().unwrap();
    for alert in alerts.iter().filter(|a| a["phase"] == "new") {
        assert_eq!(alert["threshold_rule"], "cfar-chi2");
        let region = &alert["regions"][0];
        let (row, col) = (
            region["y"].as_u64().unwrap() as usize,
            region["x"].as_u64().unwrap() as usize,
        );
        let (x, y) = map.pixel_to_map(row, col);
        assert_eq!(region["map_xy"][0].as_f64().unwrap(), x);
        assert_eq!(region["map_xy"][1].as_f64().unwrap(), y);
    }
    // 60 lines in strips of 40: two PNGs, the second 20 lines tall.
    let strip = dir.path().join("maps/anomaly-map-00000040-00000059.png");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&strip).unwrap(),
    ));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (50, 20));
    assert!(
        dir.path()
            .join("maps/anomaly-map-00000000-00000039.png")
            .exists()
    );
}

#[test]
fn a_raw_line_stream_gives_the_same_events_and_a_torn_tail_loses_nothing_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let scene = scene();
    let cube = &scene.cube;
    // What a sensor driver writes: u16 little-endian, band-interleaved by line, then half a line.
    let mut bytes = Vec::new();
    for row in 0..cube.rows() {
        for band in 0..cube.bands() {
            for col in 0..cube.cols() {
                bytes.extend_from_slice(&(cube.spectrum(row, col)[band] as u16).to_le_bytes());
            }
        }
    }
    bytes.extend_from_slice(&vec![0u8; cube.cols() * cube.bands()]);
    let raw = dir.path().join("lines.raw");
    std::fs::write(&raw, bytes).unwrap();
    let alerts = run(
        dir.path(),
        &format!(
            // Relative to the profile's folder, like every path in a profile.
            "{{ kind = \"lines\", input = \"{}\", width = {}, bands = {}, format = \"u16le\", interleave = \"bil\" }}",
            raw.file_name().unwrap().to_str().unwrap(),
            cube.cols(),
            cube.bands()
        ),
    );
    assert_finds_targets(&scene, &positions(&alerts, "new"));
    // A raw stream has no header: no map coordinates.
    assert!(
        alerts
            .iter()
            .all(|a| a["regions"][0].get("map_xy").is_none())
    );
}

#[test]
fn profiles_with_wrong_hyperspectral_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = r#"
[box]
name = "payload"
[alerts]
journal = "journal"
sinks = [{ kind = "jsonl", name = "out", path = "-" }]
[[stream]]
name = "hsi0"
model = "rx"
source = { kind = "scene", path = "flight.hdr" }
"#;
    let path = dir.path().join("p.toml");
    let bad_key = Profile::parse(
        &format!("{base}[stream.hyperspectral]\nthreshhold = 1\n"),
        &path,
    )
    .unwrap_err()
    .to_string();
    assert!(bad_key.contains("threshhold"), "{bad_key}");
    let profile = Profile::parse(
        &format!(
            "{base}[stream.hyperspectral]\nthreshold = {{ rule = \"cfar-chi2\", p_fa = 1.5 }}\n"
        ),
        &path,
    )
    .unwrap();
    let bad_rate = vigil::runtime::check(&profile).err().unwrap().to_string();
    assert!(bad_rate.contains("p_fa"), "{bad_rate}");
    let unknown_model = Profile::parse(
        &base.replace("model = \"rx\"", "model = \"fers-200\""),
        &path,
    )
    .unwrap();
    let message = vigil::runtime::check(&unknown_model)
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("fers-200"), "{message}");
}

/// The same flight through the shipped FERS-edge model: lines gathered into 64-line blocks,
/// the last (partial) block scored when the stream ends, every target found.
#[test]
fn a_flight_line_through_fers_edge_finds_its_targets_in_full_and_partial_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let scene = Scene::generate(&SceneConfig {
        rows: 100,
        cols: 50,
        bands: 200,
        targets: 6,
        target_fraction: 0.4,
        seed: 5,
        ..Default::default()
    })
    .unwrap();
    assert!(
        scene.targets.iter().any(|&(row, _)| row >= 64),
        "a target must lie in the partial block"
    );
    let header = scene.write_envi(dir.path(), "flight").unwrap();
    let alerts = run_with(
        dir.path(),
        &format!("{{ kind = \"scene\", path = \"{}\" }}", header.display()),
        "fers-edge-200",
        r#"{ rule = "empirical-quantile", p_fa = 2e-3 }"#,
    );
    // The bank's 3×3 convolutions spread a target into its neighbours, so its region may be a
    // neighbour of its pixel: a target counts as found within one pixel of a region.
    let boxes: Vec<[u64; 4]> = alerts
        .iter()
        .filter(|a| a["phase"] == "new")
        .map(|a| {
            assert_eq!(a["threshold_rule"], "empirical-quantile");
            let r = &a["regions"][0];
            ["x", "y", "width", "height"].map(|k| r[k].as_u64().unwrap())
        })
        .collect();
    for &(row, col) in &scene.targets {
        let (row, col) = (row as u64, col as u64);
        assert!(
            boxes
                .iter()
                .any(|&[x, y, w, h]| (x..=x + w + 1).contains(&(col + 1))
                    && (y..=y + h + 1).contains(&(row + 1))),
            "target at ({row}, {col}) missed: {boxes:?}"
        );
    }
    assert!(
        boxes.len() <= scene.targets.len() + 2,
        "too many false alarms: {boxes:?}"
    );
}

#[test]
fn fers_edge_streams_refuse_a_chi2_threshold_and_a_non_hyperspectral_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let profile = |model: &str, threshold: &str| {
        Profile::parse(
            &format!(
                r#"
[box]
name = "payload"
[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "out", path = "-" }}]
[[stream]]
name = "hsi0"
model = "{model}"
source = {{ kind = "scene", path = "flight.hdr" }}
[stream.hyperspectral]
threshold = {threshold}
"#
            ),
            &path,
        )
        .unwrap()
    };
    let chi2 = profile("fers-edge-200", r#"{ rule = "cfar-chi2", p_fa = 1e-4 }"#);
    let message = vigil::runtime::check(&chi2).err().unwrap().to_string();
    assert!(
        message.contains("χ²") && message.contains("empirical-quantile"),
        "{message}"
    );
    let audio = profile("yamnet", r#"{ rule = "empirical-quantile", p_fa = 1e-4 }"#);
    let message = vigil::runtime::check(&audio).err().unwrap().to_string();
    assert!(
        message.contains("yamnet") && message.contains("audio_events"),
        "{message}"
    );
}
