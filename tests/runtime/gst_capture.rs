//! GStreamer capture: conversion to what the model wants, timestamps, restart after a failure,
//! and clear errors for pipelines that cannot work.

#![cfg(feature = "gst")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;

use vigil::capture::gst::{GstConfig, GstSettings, GstSource, GstStream};
use vigil::capture::supervisor::{RestartPolicy, SourceEvent, Supervised};
use vigil::capture::{Sample, Source};

fn config(pipeline: &str, stream: GstStream) -> GstConfig {
    GstConfig {
        settings: GstSettings {
            pipeline: pipeline.into(),
            sync: false,
            stall_timeout_ms: 2_000,
        },
        stream,
    }
}

#[test]
fn video_is_converted_to_packed_rgb_despite_padded_rows() {
    // 30 px wide RGB rows are 90 bytes, which GStreamer pads to 92: a reader that ignores the
    // stride would shear the image and mix the colour channels.
    let mut source = GstSource::new(config(
        "videotestsrc num-buffers=3 pattern=solid-color foreground-color=0xff336699",
        GstStream::Video {
            width: 30,
            height: 20,
        },
    ));
    source.start().unwrap();
    let mut frames = 0;
    while let Some(sample) = source.next().unwrap() {
        let Sample::Video(frame) = sample else {
            panic!("expected video")
        };
        assert_eq!(
            (frame.width, frame.height, frame.rgb.len()),
            (30, 20, 30 * 20 * 3)
        );
        for px in frame.rgb.chunks_exact(3) {
            assert_eq!(px, [0x33, 0x66, 0x99]);
        }
        assert_eq!(frame.stamp.seq, frames);
        frames += 1;
    }
    assert_eq!(frames, 3);
}

#[test]
fn audio_is_resampled_to_mono_f32_with_timestamps() {
    let mut source = GstSource::new(config(
        "audiotestsrc num-buffers=10 samplesperbuffer=4410 freq=440 ! audio/x-raw,rate=44100,channels=2",
        GstStream::Audio { rate: 16_000 },
    ));
    source.start().unwrap();
    let before = SystemTime::now();
    let mut total = 0usize;
    let mut last_pts = None;
    while let Some(sample) = source.next().unwrap() {
        let Sample::Audio(block) = sample else {
            panic!("expected audio")
        };
        assert_eq!(block.rate, 16_000);
        assert!(block.samples.iter().all(|s| s.abs() <= 1.0));
        if let Some(last) = last_pts {
            assert!(block.stamp.pts > last, "timestamps increase");
        }
        last_pts = Some(block.stamp.pts);
        assert!(block.stamp.captured_at <= SystemTime::now());
        assert!(block.stamp.captured_at >= before - Duration::from_secs(5));
        total += block.samples.len();
    }
    // 10 × 0.1 s at 44.1 kHz is one second: 16 000 samples after resampling (± filter edges).
    assert!((15_900..=16_100).contains(&total), "{total} samples");
}

#[test]
fn a_broken_source_restarts_and_frames_flow_again() {
    let pipeline_slot: Arc<Mutex<Option<gst::Pipeline>>> = Arc::default();
    let slot = pipeline_slot.clone();
    let source = GstSource::new(config(
        "audiotestsrc is-live=true samplesperbuffer=800 name=mic",
        GstStream::Audio { rate: 16_000 },
    ))
    .with_on_start(Box::new(move |pipeline| {
        *slot.lock().unwrap() = Some(pipeline.clone());
    }));
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = events.clone();
    let policy = RestartPolicy {
        initial_backoff_ms: 50,
        ..RestartPolicy::default()
    };
    let supervised = Supervised::spawn("test", source, policy, move |event| {
        log.lock().unwrap().push(match event {
            SourceEvent::Sample(_) => "sample".into(),
            SourceEvent::Restarting { reason, .. } => format!("restart: {reason}"),
            SourceEvent::Finished { error } => format!("finished: {error:?}"),
        });
        true
    })
    .unwrap();

    let wait_for = |what: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if what(&events.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    assert!(
        wait_for(&|e| e.iter().filter(|s| *s == "sample").count() >= 3),
        "no samples at first"
    );

    // The camera-unplugged case: the source element posts a resource error while running.
    let pipeline = pipeline_slot.lock().unwrap().clone().unwrap();
    let mic = pipeline.by_name("mic").unwrap();
    mic.post_error_message(gst::error_msg!(
        gst::ResourceError::Read,
        ["device vanished"]
    ));

    assert!(
        wait_for(&|e| e.iter().any(|s| s.starts_with("restart"))),
        "no restart: {:?}",
        events.lock().unwrap()
    );
    let restart_at = events
        .lock()
        .unwrap()
        .iter()
        .position(|s| s.starts_with("restart"))
        .unwrap();
    assert!(events.lock().unwrap()[restart_at].contains("device vanished"));
    assert!(
        wait_for(&|e| e[restart_at..].iter().filter(|s| *s == "sample").count() >= 3),
        "no samples after the restart: {:?}",
        events.lock().unwrap()
    );
    supervised.stop();
}

#[test]
fn an_unknown_element_is_named_in_the_error() {
    let err = GstSource::validate(&config(
        "nosuchcamerasrc",
        GstStream::Video {
            width: 8,
            height: 8,
        },
    ))
    .unwrap_err();
    assert!(err.to_string().contains("nosuchcamerasrc"), "{err}");
}

#[test]
fn caps_that_cannot_be_negotiated_are_a_clear_error() {
    // Video into an audio model: audioconvert cannot link to a video source.
    let err = GstSource::validate(&config("videotestsrc", GstStream::Audio { rate: 16_000 }))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("videotestsrc") && text.contains("audioconvert"),
        "{text}"
    );

    // Links, but the formats are fixed incompatibly: fails when it starts, with the reason.
    let mut source = GstSource::new(config(
        "audiotestsrc num-buffers=2 ! audio/x-raw,rate=8000 ! capsfilter caps=audio/x-raw,rate=44100",
        GstStream::Audio { rate: 16_000 },
    ));
    let err = match source.start() {
        Err(err) => err,
        Ok(()) => loop {
            match source.next() {
                Err(err) => break err,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended without the negotiation error"),
            }
        },
    };
    assert!(
        err.to_string().to_lowercase().contains("negotiat") || err.to_string().contains("link"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_audio_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "these are not samples\n".repeat(200)).unwrap();
    let mut source = GstSource::new(config(
        &format!("filesrc location={} ! decodebin", text.display()),
        GstStream::Audio { rate: 16_000 },
    ));
    let err = match source.start() {
        Err(err) => err,
        Ok(()) => source.next().expect_err("a text file produced audio"),
    };
    let message = err.to_string();
    assert!(
        message.contains("typefind") || message.contains("type") || message.contains("decod"),
        "{message}"
    );
}
