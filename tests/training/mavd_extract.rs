//! MAVD-edge's extractors on snippets cut from a real GStreamer pipeline: each stream's
//! features have their width, respond to what they should (motion, sound), match burn where a
//! network computes them, and report their cost.

#![cfg(feature = "gst")]

use std::path::Path;
use std::process::Command;

use burn::prelude::*;

use vigil::capture::gst::{AvConfig, AvSource, GstSettings};
use vigil::capture::{Sample, Source};
use vigil::detector::{Manifest, Plan};
use vigil::flow::descriptor::{DIRECTIONS, GRID, WIDTH as FLOW_WIDTH};
use vigil::models::violence::extract::{AUDIO_WIDTH, RGB_SIDE, RGB_WIDTH, SnippetExtractor};
use vigil::models::violence::snippet::{Snippet, SnippetAssembler, SnippetConfig};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Snippets of a 3 s clip: a ball pattern (moving or still) with a tone or silence.
fn snippets(dir: &Path, name: &str, moving: bool, tone: bool) -> Vec<Snippet> {
    let clip = dir.join(format!("{name}.mkv"));
    // (`smpte` is not still: its bottom band changes every frame.)
    let motion = if moving {
        "pattern=ball motion=wavy"
    } else {
        "pattern=checkers-8"
    };
    let wave = if tone {
        "wave=sine freq=880"
    } else {
        "wave=silence"
    };
    let line = format!(
        "matroskamux name=mux ! filesink location={} \
         videotestsrc num-buffers=72 {motion} ! video/x-raw,width=320,height=240,framerate=24/1 ! \
         videoconvert ! jpegenc ! mux. \
         audiotestsrc num-buffers=50 samplesperbuffer=1024 {wave} ! audio/x-raw,rate=16000,channels=1 ! \
         audioconvert ! mux.",
        clip.display()
    );
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(line.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success());
    let mut source = AvSource::new(AvConfig {
        settings: GstSettings {
            pipeline: format!("filesrc location={} ! decodebin name=src", clip.display()),
            sync: false,
            stall_timeout_ms: 3_000,
        },
        video_from: "src.".into(),
        audio_from: "src.".into(),
        width: RGB_SIDE as u32,
        height: RGB_SIDE as u32,
        frames_per_second: 24,
        audio_rate: 16_000,
    });
    source.start().unwrap();
    let mut assembler = SnippetAssembler::new(SnippetConfig::default(), true);
    let mut out = Vec::new();
    while let Some(sample) = source.next().unwrap() {
        out.extend(match sample {
            Sample::Video(frame) => assembler.push_video(frame).unwrap(),
            Sample::Audio(block) => assembler.push_audio(block).unwrap(),
            Sample::Spectral(_) | Sample::Features(_) => unreachable!(),
        });
    }
    out.extend(assembler.finish());
    out
}

fn vif(flow: &[f32]) -> f32 {
    flow[GRID * GRID * DIRECTIONS..][..GRID * GRID].iter().sum()
}

fn hof(flow: &[f32]) -> f32 {
    flow[..GRID * GRID * DIRECTIONS].iter().sum()
}

#[test]
fn snippet_features_respond_to_motion_and_sound_and_match_burn() {
    let dir = tempfile::tempdir().unwrap();
    let converted = vigil::train::mobilenet::convert(
        &repo("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth"),
        dir.path(),
        &vec![0.0; 3 * 224 * 224],
    )
    .expect("MobileNetV2 conversion (scripts/fetch-mobilenet.sh)");
    let manifest = Manifest::load(&repo("models/manifest.toml")).unwrap();
    let yamnet = Plan::load(&manifest, "yamnet").unwrap();
    let mut extractor = SnippetExtractor::new(&converted.features_onnx, &yamnet).unwrap();

    let moving = snippets(dir.path(), "moving", true, true);
    let still = snippets(dir.path(), "still", false, false);
    assert_eq!((moving.len(), still.len()), (4, 4));
    let mut timings = Vec::new();
    let extract =
        |extractor: &mut SnippetExtractor, snippet: &Snippet| extractor.extract(snippet).unwrap();
    for (a, b) in moving.iter().zip(&still).skip(2) {
        let moving = extract(&mut extractor, a);
        let still = extract(&mut extractor, b);
        for features in [&moving.features, &still.features] {
            assert_eq!(features.video.len(), RGB_WIDTH);
            assert_eq!(features.audio.len(), AUDIO_WIDTH);
            assert_eq!(features.flow.len(), FLOW_WIDTH);
            assert!(
                features
                    .video
                    .iter()
                    .chain(&features.audio)
                    .chain(&features.flow)
                    .all(|v| v.is_finite())
            );
        }
        // The moving ball has flow; the still pattern has none.
        assert!(hof(&moving.features.flow) > 10.0 * hof(&still.features.flow).max(1e-3));
        assert!(vif(&moving.features.flow) >= vif(&still.features.flow));
        // An 880 Hz tone and silence are far apart in YAMNet's embedding space.
        let distance: f32 = moving
            .features
            .audio
            .iter()
            .zip(&still.features.audio)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(distance > 1.0, "embedding distance {distance}");
        assert!(moving.audio_present && still.audio_present);
        timings.push((moving.rgb_time, moving.audio_time, moving.flow_time));
    }

    // The RGB features are burn's MobileNetV2 features averaged over every 4th frame.
    let snippet = &moving[2];
    let net = vigil::train::mobilenet::MobileNetV2::from_torchvision(
        &vigil::io::pytorch::read_state_dict(&repo(
            "models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth",
        ))
        .unwrap(),
        &Device::flex(),
    )
    .unwrap();
    let mut expected = vec![0.0f32; RGB_WIDTH];
    for frame in snippet.frames.iter().step_by(4) {
        let mut input = vec![0.0f32; 3 * 224 * 224];
        for (pixel, rgb) in frame.rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let (mean, std) = ([0.485, 0.456, 0.406][c], [0.229, 0.224, 0.225][c]);
                input[c * 224 * 224 + pixel] = (f32::from(rgb[c]) / 255.0 - mean) / std;
            }
        }
        let tensor =
            Tensor::<4>::from_data(TensorData::new(input, [1, 3, 224, 224]), &Device::flex());
        let features: Vec<f32> = net
            .pooled_features(tensor)
            .into_data()
            .try_to_vec()
            .unwrap();
        for (sum, value) in expected.iter_mut().zip(features) {
            *sum += value / 4.0;
        }
    }
    let ours = extractor.extract(snippet).unwrap().features.video;
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&expected)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "RGB features differ by {diff} (scale {scale})"
    );

    for (rgb, audio, flow) in &timings {
        eprintln!("per snippet: RGB {rgb:?} (4 frames), audio {audio:?}, flow {flow:?} (15 pairs)");
    }
}

#[test]
fn a_missing_extractor_model_is_refused_naming_it() {
    let manifest = Manifest::load(&repo("models/manifest.toml")).unwrap();
    let yamnet = Plan::load(&manifest, "yamnet").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.onnx");
    let err = SnippetExtractor::new(&missing, &yamnet).unwrap_err();
    assert!(err.to_string().contains("none.onnx"), "{err}");
}
