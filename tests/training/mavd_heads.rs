//! The authors' MAVD heads in vigil: every tensor of the published files used, the burn port
//! against an independent numpy forward pass, burn against tract on the exported window graph,
//! and the streaming window against offline scoring.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use vigil::models::violence::window::{SnippetFeatures, StreamingScorer, WindowError, WindowModel};
use vigil::rng::SplitMix64;
use vigil::train::mavd::export::export_window;
use vigil::train::mavd::model::{Mavd, MavdConfig};
use vigil::train::mavd::probe_features;
use vigil::train::mavd::weights::{WeightsError, load_authors};

const TOLERANCE: f32 = 1e-4;

fn weights_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mavd-weights")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mavd")
}

fn authors() -> (Mavd, MavdConfig, Device) {
    let device = Device::flex();
    let config = MavdConfig::paper();
    let (mavd, _) = load_authors(&weights_dir(), &config, &device).expect("authors' weights");
    (mavd, config, device)
}

fn features(values: &[f32], snippets: usize, width: usize, device: &Device) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [1, snippets, width]),
        device,
    )
}

fn row(tensor: Tensor<2>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("f32 scores")
}

/// `max |a − b|`, failing on a length mismatch or a NaN.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0, f32::max)
}

struct Offline {
    fused: Vec<f32>,
    video: Vec<f32>,
    audio: Vec<f32>,
    flow: Vec<f32>,
}

fn offline(mavd: &Mavd, config: &MavdConfig, input: &Input, device: &Device) -> Offline {
    let n = input.snippets;
    let scores = mavd.forward(
        features(&input.video, n, config.video.input, device),
        features(&input.audio, n, config.audio.input, device),
        features(&input.flow, n, config.flow.input, device),
    );
    Offline {
        fused: row(scores.fused),
        video: row(scores.video),
        audio: row(scores.audio),
        flow: row(scores.flow),
    }
}

struct Input {
    snippets: usize,
    video: Vec<f32>,
    audio: Vec<f32>,
    flow: Vec<f32>,
}

impl Input {
    fn probe(config: &MavdConfig, snippets: usize) -> Self {
        Self {
            snippets,
            video: probe_features(snippets, config.video.input, 0),
            audio: probe_features(snippets, config.audio.input, 1),
            flow: probe_features(snippets, config.flow.input, 2),
        }
    }

    /// Gaussian features, with a burst of larger values in the middle third.
    fn random(config: &MavdConfig, snippets: usize, rng: &mut SplitMix64) -> Self {
        let mut make = |width: usize| {
            (0..snippets * width)
                .map(|i| {
                    let t = i / width;
                    let burst = if 3 * t >= snippets && 3 * t < 2 * snippets {
                        3.0
                    } else {
                        1.0
                    };
                    (rng.normal().abs() * burst) as f32
                })
                .collect::<Vec<f32>>()
        };
        Self {
            snippets,
            video: make(config.video.input),
            audio: make(config.audio.input),
            flow: make(config.flow.input),
        }
    }

    fn snippet(&self, config: &MavdConfig, t: usize) -> SnippetFeatures {
        let cut = |values: &[f32], width: usize| values[t * width..(t + 1) * width].to_vec();
        SnippetFeatures {
            video: cut(&self.video, config.video.input),
            audio: cut(&self.audio, config.audio.input),
            flow: cut(&self.flow, config.flow.input),
        }
    }

    fn prefix(&self, config: &MavdConfig, start: usize, end: usize) -> Input {
        let cut = |values: &[f32], width: usize| values[start * width..end * width].to_vec();
        Input {
            snippets: end - start,
            video: cut(&self.video, config.video.input),
            audio: cut(&self.audio, config.audio.input),
            flow: cut(&self.flow, config.flow.input),
        }
    }
}

#[test]
fn every_tensor_of_the_authors_files_is_used() {
    let device = Device::flex();
    let (_, reports) =
        load_authors(&weights_dir(), &MavdConfig::paper(), &device).expect("authors' weights");
    let summary: Vec<(String, usize, usize, usize)> = reports
        .iter()
        .map(|r| {
            let name = r.file.file_name().unwrap().to_string_lossy().into_owned();
            (name, r.loaded, r.aliases, r.parameters)
        })
        .collect();
    // Parameter counts are papers.md §2.2's; the fusion file's 46 tensors are 28 loaded plus
    // the 18 second names of its 6 TCN convolutions.
    assert_eq!(
        summary,
        vec![
            ("v_model.pth".into(), 30, 0, 874_561),
            ("a_model.pth".into(), 30, 0, 45_665),
            ("f_model.pth".into(), 30, 0, 324_737),
            ("va_model.pth".into(), 6, 0, 3_168),
            ("vf_model.pth".into(), 6, 0, 12_480),
            ("vaf_model.pth".into(), 28, 18, 94_833),
        ]
    );
}

#[test]
fn burn_port_matches_an_independent_numpy_forward_pass() {
    let (mavd, config, device) = authors();
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let numbers = |case: &serde_json::Value, key: &str| -> Vec<f32> {
        case[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    for case in reference["cases"].as_array().unwrap() {
        let n = case["snippets"].as_u64().unwrap() as usize;
        let input = Input::probe(&config, n);
        let burn = offline(&mavd, &config, &input, &device);
        for (name, ours) in [
            ("fused", &burn.fused),
            ("video", &burn.video),
            ("audio", &burn.audio),
            ("flow", &burn.flow),
        ] {
            let diff = max_diff(ours, &numbers(case, name));
            assert!(
                diff < TOLERANCE,
                "{n} snippets, {name} scores differ by {diff:e}"
            );
        }
        // Scores of these inputs sit near 0; the values before the heads are O(1-10).
        let video = mavd
            .video
            .forward(features(&input.video, n, config.video.input, &device));
        let video_features = video.clone().into_data().try_to_vec::<f32>().unwrap();
        let diff = max_diff(&video_features, &numbers(case, "video_features"));
        assert!(
            diff < 1e-3,
            "{n} snippets, video features differ by {diff:e}"
        );
        let audio = mavd
            .audio
            .forward(features(&input.audio, n, config.audio.input, &device));
        let flow = mavd
            .flow
            .forward(features(&input.flow, n, config.flow.input, &device));
        let fused_input = Tensor::cat(
            vec![
                video,
                mavd.audio_projection.forward(audio),
                mavd.flow_projection.forward(flow),
            ],
            2,
        );
        let fusion: Vec<f32> = mavd
            .fusion
            .features(fused_input)
            .into_data()
            .try_to_vec()
            .unwrap();
        let diff = max_diff(&fusion, &numbers(case, "fusion_features"));
        assert!(
            diff < 1e-3,
            "{n} snippets, fusion features differ by {diff:e}"
        );
    }
}

fn assert_window_matches(model: &WindowModel, mavd: &Mavd, config: &MavdConfig, input: &Input) {
    let device = Device::flex();
    let burn = offline(mavd, config, input, &device);
    let tract = model
        .score(&input.video, &input.audio, &input.flow, input.snippets)
        .expect("window scores");
    for (name, a, b) in [
        ("fused", &burn.fused, &tract.fused),
        ("video", &burn.video, &tract.video),
        ("audio", &burn.audio, &tract.audio),
        ("flow", &burn.flow, &tract.flow),
    ] {
        let diff = max_diff(a, b);
        assert!(
            diff < TOLERANCE,
            "{} of {} snippets: {name} burn vs tract {diff:e}",
            input.snippets,
            model.capacity()
        );
    }
}

#[test]
fn tract_runs_the_exported_authors_heads_as_burn_does() {
    let (mavd, config, _) = authors();
    let model = WindowModel::from_proto(&export_window(&mavd, &config, 16).unwrap()).unwrap();
    assert_eq!(model.widths(), [1024, 128, 1024]);
    let mut rng = SplitMix64::new(6);
    // A full window, and shorter ones padded (the padding must not leak into valid scores).
    for snippets in [16, 9, 1] {
        assert_window_matches(&model, &mavd, &config, &Input::probe(&config, snippets));
        assert_window_matches(
            &model,
            &mavd,
            &config,
            &Input::random(&config, snippets, &mut rng),
        );
    }
}

#[test]
fn tract_runs_a_freshly_initialised_edge_sized_model_as_burn_does() {
    // Random weights give scores spread over (0, 1), where a wrong graph cannot hide.
    let device = Device::flex();
    device.seed(11);
    let config = MavdConfig::with_inputs(96, 64, 48);
    let mavd = config.init(&device);
    let model = WindowModel::from_proto(&export_window(&mavd, &config, 8).unwrap()).unwrap();
    let mut rng = SplitMix64::new(12);
    for snippets in [8, 3] {
        let input = Input::random(&config, snippets, &mut rng);
        let burn = offline(&mavd, &config, &input, &device);
        let spread = burn
            .fused
            .iter()
            .fold(0.0f32, |m, v| m.max((v - 0.5).abs()));
        assert!(spread < 0.49, "scores saturate: {:?}", burn.fused);
        assert_window_matches(&model, &mavd, &config, &input);
    }
}

#[test]
fn streaming_with_a_window_as_long_as_the_video_gives_the_offline_scores() {
    // A property over random videos: whatever their length up to the window, the settled
    // scores equal offline scoring of the whole video, and each live score equals offline
    // scoring of the video so far.
    let device = Device::flex();
    device.seed(21);
    let config = MavdConfig::with_inputs(40, 24, 32);
    let mavd = config.init(&device);
    let capacity = 20;
    let proto = export_window(&mavd, &config, capacity).unwrap();
    let mut rng = SplitMix64::new(22);
    for case in 0..12 {
        let snippets = 1 + rng.below(capacity);
        let input = Input::random(&config, snippets, &mut rng);
        let mut scorer = StreamingScorer::new(WindowModel::from_proto(&proto).unwrap());
        let mut live = Vec::new();
        for t in 0..snippets {
            let pushed = scorer.push(&input.snippet(&config, t)).unwrap();
            assert_eq!(
                pushed.settled, None,
                "case {case}: nothing leaves the window"
            );
            assert_eq!(pushed.live.index, t as u64);
            live.push(pushed.live.fused);
            let so_far = offline(&mavd, &config, &input.prefix(&config, 0, t + 1), &device);
            let diff = (so_far.fused[t] - pushed.live.fused).abs();
            assert!(
                diff < TOLERANCE,
                "case {case}: live score {t} off by {diff:e}"
            );
        }
        let settled = scorer.finish();
        let whole = offline(&mavd, &config, &input, &device);
        let indexes: Vec<u64> = settled.iter().map(|s| s.index).collect();
        assert_eq!(indexes, (0..snippets as u64).collect::<Vec<_>>());
        for (name, stream, full) in [
            (
                "fused",
                settled.iter().map(|s| s.fused).collect::<Vec<_>>(),
                &whole.fused,
            ),
            (
                "video",
                settled.iter().map(|s| s.video).collect(),
                &whole.video,
            ),
            (
                "audio",
                settled.iter().map(|s| s.audio).collect(),
                &whole.audio,
            ),
            (
                "flow",
                settled.iter().map(|s| s.flow).collect(),
                &whole.flow,
            ),
        ] {
            let diff = max_diff(&stream, full);
            assert!(
                diff < TOLERANCE,
                "case {case} ({snippets} snippets): {name} off by {diff:e}"
            );
        }
    }
}

#[test]
fn a_short_window_settles_each_snippet_with_the_most_look_ahead_it_has() {
    let device = Device::flex();
    device.seed(31);
    let config = MavdConfig::with_inputs(40, 24, 32);
    let mavd = config.init(&device);
    let capacity = 5;
    let proto = export_window(&mavd, &config, capacity).unwrap();
    let input = Input::random(&config, 13, &mut SplitMix64::new(32));
    let mut scorer = StreamingScorer::new(WindowModel::from_proto(&proto).unwrap());
    let mut settled = Vec::new();
    for t in 0..input.snippets {
        settled.extend(scorer.push(&input.snippet(&config, t)).unwrap().settled);
    }
    settled.extend(scorer.finish());
    assert_eq!(settled.len(), input.snippets);
    for (i, scores) in settled.iter().enumerate() {
        assert_eq!(scores.index, i as u64);
        // Snippet i settles in the window that starts at it, or in the last window.
        let start = i.min(input.snippets - capacity);
        let window = offline(
            &mavd,
            &config,
            &input.prefix(&config, start, start + capacity),
            &device,
        );
        let diff = (window.fused[i - start] - scores.fused).abs();
        assert!(diff < TOLERANCE, "snippet {i} off by {diff:e}");
    }
}

#[test]
fn bad_snippets_are_refused_and_the_window_keeps_what_it_had() {
    let device = Device::flex();
    device.seed(41);
    let config = MavdConfig::with_inputs(40, 24, 32);
    let mavd = config.init(&device);
    let proto = export_window(&mavd, &config, 6).unwrap();
    let input = Input::random(&config, 4, &mut SplitMix64::new(42));
    let mut scorer = StreamingScorer::new(WindowModel::from_proto(&proto).unwrap());
    scorer.push(&input.snippet(&config, 0)).unwrap();
    scorer.push(&input.snippet(&config, 1)).unwrap();

    let mut short_audio = input.snippet(&config, 2);
    short_audio.audio.pop();
    let err = scorer.push(&short_audio).unwrap_err();
    assert!(
        matches!(
            err,
            WindowError::FeatureWidth {
                index: 2,
                modality: "audio",
                got: 23,
                expected: 24
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("audio features have 23 values"),
        "{err}"
    );
    let mut nan_flow = input.snippet(&config, 2);
    nan_flow.flow[5] = f32::NAN;
    let err = scorer.push(&nan_flow).unwrap_err();
    assert!(
        matches!(
            err,
            WindowError::NotFinite {
                index: 2,
                modality: "flow"
            }
        ),
        "{err}"
    );

    // A window scored directly must hold exactly its snippets' values, not fewer.
    let model = scorer.model();
    let err = model
        .score(&input.video[..40], &input.audio[..24], &input.flow[..32], 2)
        .unwrap_err();
    assert!(
        matches!(
            err,
            WindowError::Length {
                modality: "video",
                got: 40,
                expected: 80,
                ..
            }
        ),
        "{err}"
    );

    // The refused snippets left no trace: the stream goes on as if they never came.
    scorer.push(&input.snippet(&config, 2)).unwrap();
    scorer.push(&input.snippet(&config, 3)).unwrap();
    let settled = scorer.finish();
    let whole = offline(&mavd, &config, &input, &device);
    let fused: Vec<f32> = settled.iter().map(|s| s.fused).collect();
    assert!(max_diff(&fused, &whole.fused) < TOLERANCE);
}

/// A copy of the authors' folder with one file replaced.
fn folder_with(file: &str, replacement: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "v_model.pth",
        "a_model.pth",
        "f_model.pth",
        "va_model.pth",
        "vf_model.pth",
        "vaf_model.pth",
    ] {
        let source = if name == file {
            replacement.to_path_buf()
        } else {
            weights_dir().join(name)
        };
        std::os::unix::fs::symlink(source, dir.path().join(name)).unwrap();
    }
    dir
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_tensor() {
    let device = Device::flex();
    let config = MavdConfig::paper();
    let load = |file: &str, fixture: &str| {
        let dir = folder_with(file, &fixtures().join(fixture));
        load_authors(dir.path(), &config, &device)
            .map(|_| ())
            .unwrap_err()
    };

    let err = load("va_model.pth", "va_missing_bias.pth");
    assert!(
        matches!(&err, WeightsError::Missing { key, .. } if key == "regressor.3.bias"),
        "{err}"
    );
    assert!(err.to_string().contains("va_model.pth"), "{err}");

    let err = load("va_model.pth", "va_extra_layer.pth");
    assert!(
        matches!(&err, WeightsError::Unused { keys, .. } if keys == &["regressor.9.weight"]),
        "{err}"
    );

    let err = load("vaf_model.pth", "vaf_alias_differs.pth");
    assert!(
        matches!(&err, WeightsError::AliasDiffers { key, .. }
            if key == "tcn.tcn.network.1.net.4.bias"),
        "{err}"
    );

    // A file of another part in the wrong place.
    let err = load(
        "va_model.pth",
        &weights_dir().join("vf_model.pth").display().to_string(),
    );
    assert!(
        matches!(&err, WeightsError::Shape { key, found, expected, .. }
            if key == "regressor.0.weight" && found == &[64, 64] && expected == &[32, 32]),
        "{err}"
    );

    // The paper's files against a model configured for other features.
    let dir = weights_dir();
    let err = load_authors(&dir, &MavdConfig::with_inputs(1024, 64, 1024), &device)
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string().contains("a_model.pth")
            && err.to_string().contains("embedding.conv_1.0.weight"),
        "{err}"
    );

    let err = load_authors(Path::new("/nonexistent"), &config, &device)
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/v_model.pth"),
        "{err}"
    );
}

#[test]
fn vigil_scores_pre_extracted_feature_files_with_the_authors_heads() {
    let (mavd, config, device) = authors();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("window.onnx");
    vigil::train::onnx::save(&export_window(&mavd, &config, 16).unwrap(), &model).unwrap();
    let input = Input::random(&config, 12, &mut SplitMix64::new(51));
    let write = |name: &str, values: &[f32], snippets: usize, width: usize| {
        let path = dir.path().join(name);
        vigil::io::npy::write_npy(&path, &[snippets, width], values).unwrap();
        path
    };
    let rgb = write("v__0.npy", &input.video, 12, 1024);
    let audio = write("v__vggish.npy", &input.audio, 12, 128);
    let flow = write("flow__0.npy", &input.flow, 12, 1024);
    let run = |flow: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["mavd-score", "--model"])
            .arg(&model)
            .arg("--rgb")
            .arg(&rgb)
            .arg("--audio")
            .arg(&audio)
            .arg("--flow")
            .arg(flow)
            .output()
            .unwrap()
    };
    let output = run(&flow);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let settled: Vec<f32> = text
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    // The window holds the whole video: the settled scores are the offline ones.
    let whole = offline(&mavd, &config, &input, &device);
    assert!(max_diff(&settled, &whole.fused) < TOLERANCE);

    // Flow three snippets short: refused with every length named.
    let short = write("short__0.npy", &input.flow[..9 * 1024], 9, 1024);
    let output = run(&short);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("RGB 12, audio 12, flow 9"), "{err}");
}

/// `vigil run` on a profile whose stream replays one video's feature files through the authors'
/// heads: its alerts are exactly the decisions of the streaming scorer's live scores.
#[test]
fn vigil_run_decides_on_feature_files_as_the_streaming_scorer_scores_them() {
    use vigil::decide::{Hysteresis, Transition};
    use vigil::models::violence::decide::{ViolenceDecide, ViolenceSettings};

    let (mavd, config, _) = authors();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("window.onnx");
    vigil::train::onnx::save(&export_window(&mavd, &config, 16).unwrap(), &model).unwrap();
    let snippets = 30;
    let input = Input::random(&config, snippets, &mut SplitMix64::new(77));
    for (name, values, width) in [
        ("v__0.npy", &input.video, 1024),
        ("v__vggish.npy", &input.audio, 128),
        ("v_flow__0.npy", &input.flow, 1024),
    ] {
        vigil::io::npy::write_npy(dir.path().join(name), &[snippets, width], values).unwrap();
    }

    // What the runtime must decide: live scores of the window, through the same hysteresis,
    // with thresholds that these scores cross.
    let mut scorer = StreamingScorer::new(WindowModel::load(&model).unwrap());
    let live: Vec<_> = (0..snippets)
        .map(|t| {
            let row = |values: &[f32], width: usize| values[t * width..(t + 1) * width].to_vec();
            scorer
                .push(&SnippetFeatures {
                    video: row(&input.video, 1024),
                    audio: row(&input.audio, 128),
                    flow: row(&input.flow, 1024),
                })
                .unwrap()
                .live
        })
        .collect();
    let mut sorted: Vec<f32> = live.iter().map(|s| s.fused).collect();
    sorted.sort_by(f32::total_cmp);
    let (on, off) = (sorted[snippets * 2 / 3], sorted[snippets / 2]);
    let settings = ViolenceSettings {
        fused: Hysteresis::new(on, off),
        modality_on: 0.5,
    };
    let mut decide = ViolenceDecide::new(settings).unwrap();
    let snippet = std::time::Duration::from_nanos(666_666_667);
    let mut expected = Vec::new();
    for (t, scores) in live.iter().enumerate() {
        let start = snippet * t as u32;
        if let Some(step) = decide.observe(scores, start, start + snippet) {
            expected.push(step.transition);
        }
    }
    expected.extend(decide.finish().map(|step| step.transition));
    let opened: Vec<u64> = expected
        .iter()
        .filter_map(|t| match t {
            Transition::Opened { start, .. } => Some(start.as_nanos() as u64),
            _ => None,
        })
        .collect();
    let ended: Vec<u64> = expected
        .iter()
        .filter_map(|t| match t {
            Transition::Ended { end, .. } => Some(end.as_nanos() as u64),
            _ => None,
        })
        .collect();
    assert!(!opened.is_empty(), "the thresholds must open an event");

    let sha = vigil::detector::manifest::sha256_file(&model).unwrap();
    std::fs::write(
        dir.path().join("manifest.toml"),
        format!(
            r#"[[model]]
name = "mavd-authors"
family = "mavd_edge"
description = "the authors' heads, window of 16"
source = "test"
files = [{{ path = "window.onnx", sha256 = "{sha}" }}]
inputs = [{{ name = "video", dtype = "f32", shape = [1, 16, 1024] }}]
outputs = [{{ name = "fused", dtype = "f32", shape = [1, 16] }}]
threshold = 0.5
"#
        ),
    )
    .unwrap();
    let profile = dir.path().join("profile.toml");
    std::fs::write(
        &profile,
        format!(
            r#"[box]
name = "t"
manifest = "manifest.toml"

[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "out", path = "alerts.jsonl" }}]

[[stream]]
name = "xd"
model = "mavd-authors"
queue_depth = 64
source = {{ kind = "features", rgb = "v__0.npy", audio = "v__vggish.npy", flow = "v_flow__0.npy" }}

[stream.violence]
fused = {{ on = {on}, off = {off} }}
"#
        ),
    )
    .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    vigil::runtime::run(&profile, &stop, &stop).unwrap();
    let alerts: Vec<vigil::Alert> = std::fs::read_to_string(dir.path().join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let phase = |phase| {
        alerts
            .iter()
            .filter(move |a: &&vigil::Alert| a.phase == phase)
            .collect::<Vec<_>>()
    };
    let new_starts: Vec<u64> = phase(vigil::Phase::New)
        .iter()
        .map(|a| a.start_pts_ns)
        .collect();
    let end_times: Vec<u64> = phase(vigil::Phase::End).iter().map(|a| a.pts_ns).collect();
    assert_eq!(new_starts, opened, "{alerts:#?}");
    assert_eq!(end_times, ended, "{alerts:#?}");

    // The shipped MAVD-edge cannot read XD-Violence's widths: refused before anything runs.
    let text = std::fs::read_to_string(&profile)
        .unwrap()
        .replace("manifest = \"manifest.toml\"\n", "")
        .replace("\"mavd-authors\"", "\"mavd-edge\"");
    std::fs::write(&profile, text).unwrap();
    let loaded = vigil::Profile::load(&profile).unwrap();
    let err = vigil::runtime::check(&loaded).unwrap_err().to_string();
    assert!(
        err.contains("[rgb, audio, flow] = [1024, 128, 1024] wide")
            && err.contains("[1280, 1024, 152]"),
        "{err}"
    );
}
