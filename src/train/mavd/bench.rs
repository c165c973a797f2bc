//! The surveillance pipeline's cost per snippet, stage by stage, and its real-time factor:
//! one GStreamer pipeline (camera + microphone stand-ins) → snippets → RGB, audio and flow
//! extractors → the MAVD-edge head on a sliding window. `scripts/bench/mavd.py` runs it and
//! times onnxruntime on the same ONNX files and inputs in the same run.
//!
//! The head's weights are freshly initialised (its cost does not depend on their values), so the
//! benchmark needs no trained model and can time any window length.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use serde::Serialize;

use super::export::export_window;
use super::model::MavdConfig;
use crate::capture::gst::{AvConfig, AvSource, GstSettings};
use crate::capture::{Sample, Source};
use crate::detector::{Manifest, Plan};
use crate::flow::descriptor::WIDTH as FLOW_WIDTH;
use crate::io::npy::write_npy;
use crate::models::violence::extract::{AUDIO_WIDTH, RGB_SIDE, RGB_WIDTH, SnippetExtractor};
use crate::models::violence::kernel::padded_distance_kernel;
use crate::models::violence::snippet::{SnippetAssembler, SnippetConfig};
use crate::models::violence::window::{SnippetFeatures, StreamingScorer, WindowModel, key_bias};
use crate::prepare::imagenet::normalize_chw;
use crate::train::TrainError;

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineBench {
    pub snippets: usize,
    pub window: usize,
    /// Median ms per snippet of each stage.
    pub rgb_ms: f64,
    pub audio_ms: f64,
    pub flow_ms: f64,
    pub head_ms: f64,
    /// Media seconds per wall-clock second over the whole run (capture and decoding included).
    pub real_time_factor: f64,
    /// The files onnxruntime is timed on.
    pub rgb_model: PathBuf,
    pub head_model: PathBuf,
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map_or(f64::NAN, |t| t.as_secs_f64() * 1e3)
}

fn config_error(err: impl std::fmt::Display) -> TrainError {
    TrainError::Config(err.to_string())
}

/// Runs `seconds` of generated camera and microphone through the pipeline, with the head
/// scoring a window of `window` snippets. Writes the ONNX files and one input of each into
/// `out` for the peer.
pub fn run(
    mobilenet_weights: &Path,
    manifest: &Path,
    out: &Path,
    seconds: u32,
    window: usize,
) -> Result<PipelineBench, TrainError> {
    std::fs::create_dir_all(out).map_err(config_error)?;
    let converted = crate::train::mobilenet::convert(
        mobilenet_weights,
        out,
        &vec![0.0; 3 * RGB_SIDE * RGB_SIDE],
    )?;
    let manifest = Manifest::load(manifest).map_err(config_error)?;
    let yamnet = Plan::load(&manifest, "yamnet").map_err(config_error)?;
    let mut extractor =
        SnippetExtractor::new(&converted.features_onnx, &yamnet).map_err(config_error)?;

    let device = Device::flex();
    device.seed(1);
    let config = MavdConfig::with_inputs(RGB_WIDTH, AUDIO_WIDTH, FLOW_WIDTH);
    let head = config.init(&device);
    let proto = export_window(&head, &config, window)?;
    let head_model = out.join("mavd-edge-window.onnx");
    crate::train::onnx::save(&proto, &head_model)?;
    let mut scorer = StreamingScorer::new(WindowModel::from_proto(&proto)?);

    let frames = seconds * 24;
    let blocks = seconds * 16_000 / 1024 + 2;
    let mut source = AvSource::new(AvConfig {
        settings: GstSettings {
            pipeline: format!(
                "videotestsrc num-buffers={frames} pattern=ball motion=wavy ! \
                 video/x-raw,width=320,height=240,framerate=24/1 ! identity name=cam \
                 audiotestsrc num-buffers={blocks} samplesperbuffer=1024 wave=pink-noise ! \
                 audio/x-raw,rate=16000,channels=1 ! identity name=mic"
            ),
            sync: false,
            stall_timeout_ms: 5_000,
        },
        video_from: "cam.".into(),
        audio_from: "mic.".into(),
        width: RGB_SIDE as u32,
        height: RGB_SIDE as u32,
        frames_per_second: 24,
        audio_rate: 16_000,
    });
    let mut assembler = SnippetAssembler::new(SnippetConfig::default(), true);
    let (mut rgb, mut audio, mut flow, mut head_times) = (vec![], vec![], vec![], vec![]);
    let mut saved = false;
    let started = Instant::now();
    source.start().map_err(config_error)?;
    loop {
        let sample = source.next().map_err(config_error)?;
        let ended = sample.is_none();
        let snippets = match sample {
            Some(Sample::Video(frame)) => assembler.push_video(frame).map_err(config_error)?,
            Some(Sample::Audio(block)) => assembler.push_audio(block).map_err(config_error)?,
            Some(Sample::Spectral(_) | Sample::Features(_)) => Vec::new(),
            None => assembler.finish(),
        };
        for snippet in snippets {
            let extracted = extractor.extract(&snippet).map_err(config_error)?;
            rgb.push(extracted.rgb_time);
            audio.push(extracted.audio_time);
            flow.push(extracted.flow_time);
            let clock = Instant::now();
            scorer.push(&extracted.features)?;
            head_times.push(clock.elapsed());
            if !saved {
                let frame = &snippet.frames[0].rgb;
                let full = full_window(&extracted.features, window);
                // What vigil computes on the inputs the peer gets, to compare against.
                let rgb_features = extractor.rgb_features(frame).map_err(TrainError::Config)?;
                let fused = scorer
                    .model()
                    .score(&full.video, &full.audio, &full.flow, window)?
                    .fused;
                save_peer_files(out, frame, &rgb_features, &full, &fused, window)?;
                saved = true;
            }
        }
        if ended {
            break;
        }
    }
    source.stop();
    let elapsed = started.elapsed().as_secs_f64();
    let snippets = rgb.len();
    Ok(PipelineBench {
        snippets,
        window,
        rgb_ms: median_ms(rgb),
        audio_ms: median_ms(audio),
        flow_ms: median_ms(flow),
        head_ms: median_ms(head_times),
        real_time_factor: snippets as f64 * 16.0 / 24.0 / elapsed.max(1e-9),
        rgb_model: converted.features_onnx,
        head_model,
    })
}

/// One snippet's features repeated over a whole window.
fn full_window(features: &SnippetFeatures, window: usize) -> SnippetFeatures {
    let repeat = |values: &[f32]| -> Vec<f32> {
        std::iter::repeat_n(values, window)
            .flatten()
            .copied()
            .collect()
    };
    SnippetFeatures {
        video: repeat(&features.video),
        audio: repeat(&features.audio),
        flow: repeat(&features.flow),
    }
}

/// One frame as the RGB extractor's input and a full window as the head's inputs, as `.npy`
/// files named after the graphs' inputs, with vigil's outputs on them.
fn save_peer_files(
    out: &Path,
    frame: &[u8],
    rgb_features: &[f32],
    full: &SnippetFeatures,
    fused: &[f32],
    window: usize,
) -> Result<(), TrainError> {
    let write = |name: &str, shape: &[usize], values: &[f32]| {
        write_npy(out.join(name), shape, values).map_err(config_error)
    };
    write(
        "image.npy",
        &[1, 3, RGB_SIDE, RGB_SIDE],
        &normalize_chw(frame),
    )?;
    write("rgb_features.npy", &[1, RGB_WIDTH], rgb_features)?;
    write("video.npy", &[1, window, RGB_WIDTH], &full.video)?;
    write("audio.npy", &[1, window, AUDIO_WIDTH], &full.audio)?;
    write("flow.npy", &[1, window, FLOW_WIDTH], &full.flow)?;
    write("key_bias.npy", &[window], &key_bias(window, window))?;
    write(
        "local_kernel.npy",
        &[window, window],
        &padded_distance_kernel(window, window),
    )?;
    write("head_fused.npy", &[1, window], fused)
}
