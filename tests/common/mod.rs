//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::Path;

use vigil::alert::{Alert, Name, Phase};

/// Writes mono 16-bit PCM WAV, the simplest file every GStreamer install can parse.
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    vigil::io::wav::write_mono_pcm16(path, rate, samples).unwrap();
}

/// Reads the alerts a JSON-lines sink wrote.
pub fn read_alerts(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A minimal alert of event `event`, for tests of the plumbing rather than of a model.
pub fn alert(event: u64) -> Alert {
    Alert {
        id: 0,
        event,
        phase: Phase::New,
        stream: Name::try_from("cam").unwrap(),
        model: Name::try_from("m").unwrap(),
        label: Name::try_from("gunshot").unwrap(),
        score: 0.9,
        peak: 0.9,
        threshold: 0.4,
        start_pts_ns: event,
        pts_ns: event,
        captured_at_ns: 0,
        decided_at_ns: 0,
        regions: heapless::Vec::new(),
        threshold_rule: None,
        snapshot: None,
        evidence: None,
        modalities: None,
    }
}

#[cfg(feature = "mqtt")]
pub mod mosquitto;
