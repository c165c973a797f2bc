use std::time::{Duration, SystemTime};

use super::*;
use crate::alert::Name;
use crate::capture::{AudioBlock, Stamp, VideoFrame};

fn settings(dir: &Path) -> EvidenceSettings {
    EvidenceSettings {
        dir: dir.into(),
        pre_s: 1.0,
        post_s: 0.5,
        keyframes_per_s: 2.0,
        max_event_s: 30.0,
        max_bytes: 1 << 20,
    }
}

fn stamp(ms: u64) -> Stamp {
    Stamp {
        pts: Duration::from_millis(ms),
        captured_at: SystemTime::now(),
        seq: ms,
    }
}

fn frame(ms: u64) -> Sample {
    Sample::Video(VideoFrame {
        stamp: stamp(ms),
        width: 4,
        height: 2,
        rgb: vec![(ms / 100) as u8; 24],
    })
}

fn block(ms: u64, rate: u32, len: usize) -> Sample {
    Sample::Audio(AudioBlock {
        stamp: stamp(ms),
        rate,
        samples: vec![0.25; len],
    })
}

fn alert(phase: Phase, event: u64, start_ms: u64, at_ms: u64) -> Alert {
    Alert {
        id: 0,
        event,
        phase,
        stream: Name::try_from("cam").unwrap(),
        model: Name::try_from("m").unwrap(),
        label: Name::try_from("defect").unwrap(),
        score: 0.9,
        peak: 0.9,
        threshold: 0.5,
        start_pts_ns: start_ms * 1_000_000,
        pts_ns: at_ms * 1_000_000,
        captured_at_ns: 0,
        decided_at_ns: 0,
        regions: heapless::Vec::new(),
        threshold_rule: None,
        snapshot: None,
        evidence: None,
        modalities: None,
    }
}

fn described(dir: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name).join("event.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Frames every 100 ms; an event from 3.0 s to 4.0 s, announced a little late as decide
/// would: keyframes at 2 per second from 1 s before the start to 0.5 s after the end.
#[test]
fn keyframes_span_the_event_with_its_margins() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, mut samples, alerts) =
        Recorder::start("cam", &settings(dir.path()), dir.path().into()).unwrap();
    let mut new = alert(Phase::New, 7, 3_000, 3_200);
    let mut end = alert(Phase::End, 7, 3_000, 4_000);
    for ms in (0..=6_000).step_by(100) {
        samples.offer(&frame(ms));
        // Give the recorder the samples before the alert, as capture runs ahead of decide.
        std::thread::sleep(Duration::from_millis(2));
        if ms == 3_300 {
            alerts.stamp_and_offer(&mut new);
        }
        if ms == 4_100 {
            alerts.stamp_and_offer(&mut end);
        }
    }
    drop((samples, alerts));
    recorder.join();

    assert_eq!(new.evidence.as_deref(), Some("cam-7"));
    assert_eq!(end.evidence, new.evidence);
    let event = described(dir.path(), "cam-7");
    let files: Vec<&str> = event["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "frame-0000002000.png",
            "frame-0000002500.png",
            "frame-0000003000.png",
            "frame-0000003500.png",
            "frame-0000004000.png",
            "frame-0000004500.png",
        ]
    );
    assert_eq!(event["event_end_pts_ns"], 4_000_000_000u64);
    let png = crate::io::png::read_png(&dir.path().join("cam-7/frame-0000003000.png")).unwrap();
    assert_eq!((png.width, png.height), (4, 2));
    // Nothing half-written is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["cam-7"]);
}

/// Audio keeps every sample: the clip runs from `pre_s` before the start to `post_s` after the
/// end, to the block; an event still open when the stream ends is written with what there is.
#[test]
fn audio_clips_hold_every_sample_and_open_events_are_written_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, mut samples, alerts) =
        Recorder::start("mic", &settings(dir.path()), dir.path().into()).unwrap();
    let rate = 1_000;
    let (mut first, mut first_end, mut open) = (
        alert(Phase::New, 1, 2_000, 2_000),
        alert(Phase::End, 1, 2_000, 3_000),
        alert(Phase::New, 2, 5_000, 5_000),
    );
    for ms in (0..6_000).step_by(100) {
        samples.offer(&block(ms, rate, 100));
        std::thread::sleep(Duration::from_millis(2));
        match ms {
            2_100 => alerts.stamp_and_offer(&mut first),
            3_000 => alerts.stamp_and_offer(&mut first_end),
            5_100 => alerts.stamp_and_offer(&mut open),
            _ => {}
        }
    }
    drop((samples, alerts));
    recorder.join();

    let clip = std::fs::read(dir.path().join("cam-1/clip.wav")).unwrap();
    let seconds = (clip.len() - 44) as f64 / 2.0 / f64::from(rate);
    // 1.0 s to 3.5 s: 2.5 s of audio, to the 0.1 s block.
    assert!((seconds - 2.5).abs() <= 0.11, "{seconds} s");
    let event = described(dir.path(), "cam-1");
    assert_eq!(event["first_pts_ns"], 1_000_000_000u64);
    let open_event = described(dir.path(), "cam-2");
    assert!(open_event["event_end_pts_ns"].is_null());
    assert_eq!(open_event["files"][0], "clip.wav");
}

#[test]
fn the_oldest_evidence_goes_first_when_the_folder_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, mut samples, alerts) =
        Recorder::start("mic", &settings(dir.path()), dir.path().into()).unwrap();
    // Each event keeps 2 s of 16-bit audio at 100 kHz: 400 kB; the folder holds 1 MiB.
    let rate = 100_000;
    for event in 0..5u64 {
        let start = event * 10_000 + 5_000;
        for ms in (event * 10_000..(event + 1) * 10_000).step_by(100) {
            samples.offer(&block(ms, rate, 10_000));
            std::thread::sleep(Duration::from_millis(1));
            if ms == start {
                alerts.stamp_and_offer(&mut alert(Phase::New, event, start, ms));
            }
            if ms == start + 500 {
                alerts.stamp_and_offer(&mut alert(Phase::End, event, start, ms));
            }
        }
        // Distinct modification times, oldest first.
        std::thread::sleep(Duration::from_millis(20));
    }
    drop((samples, alerts));
    recorder.join();
    let mut kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["cam-3", "cam-4"]);
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let problem = |change: fn(&mut EvidenceSettings)| {
        let mut s = settings(dir.path());
        change(&mut s);
        s.problem().unwrap_or_default()
    };
    assert!(problem(|s| s.pre_s = -1.0).contains("evidence.pre_s = -1"));
    assert!(problem(|s| s.post_s = f32::NAN).contains("evidence.post_s"));
    assert!(problem(|s| s.keyframes_per_s = 0.0).contains("keyframes_per_s"));
    assert!(problem(|s| s.max_bytes = 10).contains("under 1 MiB"));
    assert!(settings(dir.path()).problem().is_none());
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let err = Recorder::start("mic", &settings(&file), file.join("evidence"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot create") && err.contains("a-file"),
        "{err}"
    );
}
