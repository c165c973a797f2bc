//! The surveillance part of `vigil demo`: a clip staged from held-out real recordings (a street
//! scene with speech, and a staged fight: shouts and pain cries with a burst of erratic
//! motion), written to a Matroska file and played through the surveillance profile's whole
//! chain: one GStreamer pipeline with video and audio, snippets, the three extractors,
//! MAVD-edge on its sliding window, violence alerts with the modalities that fired, and
//! evidence (keyframes and the audio) per alert.

use std::path::{Path, PathBuf};

use super::staging::{
    AUDIO_RATE, ClipRecipe, FRAMES_PER_SECOND, Material, MaterialPaths, SIDE, Split, StagingError,
    stage_clip,
};
use crate::capture::CaptureError;
use crate::capture::gst::{AvFile, write_av_file};
use crate::rng::SplitMix64;

/// The model the demo runs.
pub const MODEL: &str = "mavd-edge";
/// Length of the demo clip, and its staged fight.
pub const SECONDS: f32 = 20.0;
pub const EVENT: (f64, f64) = (6.0, 9.0);
/// Fixes the clip: the same footage, voices and motion on every run.
const SEED: u64 = 2026;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("writing the clip: {0}")]
    Clip(#[from] CaptureError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What [`prepare`] wrote.
#[derive(Debug, Clone)]
pub struct Demo {
    pub profile: PathBuf,
    pub clip: PathBuf,
    /// The staged fight in stream seconds; None for a calm clip.
    pub event: Option<(f64, f64)>,
}

/// How the profile plays the clip.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Whether the clip holds the fight (a calm clip tests that nothing is raised).
    pub violent: bool,
    /// Play at the clip's pace, as a camera would; off: as fast as the chain takes it, with
    /// queues deep enough that nothing is dropped.
    pub real_time: bool,
    /// Where alerts go as JSON lines; `-` is stdout.
    pub alerts: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Stages the clip from the held-out material of `repo`'s recordings and writes it and the
/// profile into `dir`.
pub fn prepare(repo: &Path, dir: &Path, options: &DemoOptions) -> Result<Demo, DemoError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let material = Material::load(&MaterialPaths::debian(repo), Split::Test)?;
    let recipe = ClipRecipe {
        seconds: SECONDS,
        event: Some(EVENT),
        violent: options.violent,
    };
    let clip = stage_clip(&material, &recipe, &mut SplitMix64::new(SEED))?;
    let clip_path = dir.join(if options.violent {
        "clip.mkv"
    } else {
        "calm.mkv"
    });
    write_av_file(
        &clip_path,
        &AvFile {
            width: SIDE as u32,
            height: SIDE as u32,
            frames_per_second: FRAMES_PER_SECOND,
            frames: &clip.frames,
            audio_rate: AUDIO_RATE,
            audio: &clip.audio,
        },
    )?;
    let profile = dir.join(if options.violent {
        "surveillance.toml"
    } else {
        "surveillance-calm.toml"
    });
    let text = format!(
        r#"# Written by `vigil demo`: its surveillance part, on a clip staged from real recordings.
[box]
name = "demo-surveillance"

[alerts]
journal = "journal"
sinks = [{{ kind = "jsonl", name = "alerts", path = {alerts:?} }}]

[[stream]]
name = "cam0"
model = "{MODEL}"
queue_depth = {queue_depth}
# The file stands in for a camera and its microphone: one pipeline, both tracks on one clock.
source = {{ kind = "gstreamer", pipeline = {pipeline:?}, sync = {real_time} }}

[stream.violence]
video_from = "src."
audio_from = "src."

[stream.evidence]
dir = "evidence"
pre_s = 2.0
post_s = 1.0
keyframes_per_s = 2.0
"#,
        alerts = options.alerts.display().to_string(),
        queue_depth = if options.real_time { 16 } else { 1024 },
        pipeline = format!(
            "filesrc location=\"{}\" ! decodebin name=src",
            clip_path.display()
        ),
        real_time = options.real_time,
    );
    std::fs::write(&profile, text).map_err(io(&profile))?;
    Ok(Demo {
        profile,
        clip: clip_path,
        event: clip.event,
    })
}
