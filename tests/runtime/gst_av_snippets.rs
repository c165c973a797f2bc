//! One GStreamer pipeline, video and audio on one clock, cut into XD-Violence snippets: from a
//! file holding both, from two live sources in one pipeline, and refused clearly for a file
//! without audio.

#![cfg(feature = "gst")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vigil::capture::gst::{AvConfig, AvSource, GstSettings};
use vigil::capture::{Sample, Source};
use vigil::models::violence::snippet::{SnippetAssembler, SnippetConfig};

fn config(pipeline: &str, video_from: &str, audio_from: &str, sync: bool) -> AvConfig {
    AvConfig {
        settings: GstSettings {
            pipeline: pipeline.into(),
            sync,
            stall_timeout_ms: 3_000,
        },
        video_from: video_from.into(),
        audio_from: audio_from.into(),
        width: 64,
        height: 48,
        frames_per_second: 24,
        audio_rate: 16_000,
    }
}

/// Writes a Matroska file with `seconds` of a moving test pattern at 30 fps and, optionally,
/// a 440 Hz tone at 44.1 kHz stereo (so that vigil has to convert rate, channels and frame
/// rate).
fn write_clip(path: &Path, seconds: u32, with_audio: bool) {
    let frames = 30 * seconds;
    let mut line = format!(
        "matroskamux name=mux ! filesink location={} \
         videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 ! \
         videoconvert ! jpegenc ! mux.",
        path.display()
    );
    if with_audio {
        // A little longer than the video, so that the last window is whole too.
        let buffers = seconds * 44_100 / 1024 + 2;
        line += &format!(
            " audiotestsrc num-buffers={buffers} samplesperbuffer=1024 freq=440 ! \
             audio/x-raw,rate=44100,channels=2 ! audioconvert ! mux."
        );
    }
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(line.split_whitespace())
        .status()
        .expect("gst-launch-1.0 runs");
    assert!(status.success(), "writing {}", path.display());
}

fn drain(source: &mut AvSource) -> Result<Vec<Sample>, vigil::capture::CaptureError> {
    let mut samples = Vec::new();
    source.start()?;
    while let Some(sample) = source.next()? {
        samples.push(sample);
    }
    source.stop();
    Ok(samples)
}

fn assemble(samples: Vec<Sample>) -> Vec<vigil::models::violence::snippet::Snippet> {
    let mut assembler = SnippetAssembler::new(SnippetConfig::default(), true);
    let mut snippets = Vec::new();
    for sample in samples {
        snippets.extend(match sample {
            Sample::Video(frame) => assembler.push_video(frame).unwrap(),
            Sample::Audio(block) => assembler.push_audio(block).unwrap(),
            Sample::Spectral(_) | Sample::Features(_) => unreachable!(),
        });
    }
    snippets.extend(assembler.finish());
    snippets
}

#[test]
fn a_file_with_both_tracks_gives_24_fps_snippets_with_their_audio() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    write_clip(&clip, 4, true);
    let pipeline = format!("filesrc location={} ! decodebin name=src", clip.display());
    let samples = drain(&mut AvSource::new(config(&pipeline, "src.", "src.", false))).unwrap();

    // Timestamp order across the two streams, each stream strictly increasing.
    let times: Vec<Duration> = samples.iter().map(|s| s.stamp().pts).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    let frames = samples
        .iter()
        .filter(|s| matches!(s, Sample::Video(_)))
        .count();
    let audio: usize = samples
        .iter()
        .map(|s| match s {
            Sample::Audio(block) => block.samples.len(),
            _ => 0,
        })
        .sum();
    // 4 s at 30 fps rated to 24 fps, 4 s of 44.1 kHz stereo resampled to 16 kHz mono.
    assert!((94..=97).contains(&frames), "{frames} frames");
    assert!((audio as i64 - 4 * 16_000).abs() < 1_600, "{audio} samples");

    let snippets = assemble(samples);
    assert_eq!(snippets.len(), frames / 16);
    for snippet in &snippets[2..] {
        // Past the first 0.96 s every window is whole, and the tone is there.
        let window = snippet.audio.as_ref().expect("audio");
        assert_eq!(snippet.audio_missing, 0, "snippet {}", snippet.index);
        let rms = (window.iter().map(|v| v * v).sum::<f32>() / window.len() as f32).sqrt();
        assert!(rms > 0.1, "snippet {} rms {rms}", snippet.index);
        assert_eq!(snippet.frames_repeated, 0);
    }
}

#[test]
fn a_camera_and_a_microphone_in_one_pipeline_share_its_clock() {
    let pipeline = "videotestsrc is-live=true num-buffers=60 pattern=ball ! \
                    video/x-raw,framerate=30/1 ! identity name=cam \
                    audiotestsrc is-live=true num-buffers=200 samplesperbuffer=441 ! \
                    audio/x-raw,rate=44100 ! identity name=mic";
    let samples = drain(&mut AvSource::new(config(pipeline, "cam.", "mic.", true))).unwrap();
    let snippets = assemble(samples);
    // 2 s of camera at 24 fps = 48 frames = 3 snippets, each with audio once 0.96 s exists.
    assert_eq!(snippets.len(), 3);
    assert!(snippets[2].audio.is_some() && snippets[2].audio_missing < 800);
}

#[test]
fn a_file_without_audio_is_refused_naming_the_missing_track() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("silent.mkv");
    write_clip(&clip, 1, false);
    let pipeline = format!("filesrc location={} ! decodebin name=src", clip.display());
    let err = drain(&mut AvSource::new(config(&pipeline, "src.", "src.", false))).unwrap_err();
    assert!(err.to_string().contains("no audio track"), "{err}");
}

#[test]
fn a_branch_naming_no_element_is_refused_at_start() {
    let err = AvSource::new(config("videotestsrc name=cam", "cam.", "mic.", false))
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("mic"), "{err}");
}
