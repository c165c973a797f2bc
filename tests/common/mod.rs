//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::Path;

use vigil::alert::{Alert, Name, Phase};

/// Writes mono 16-bit PCM WAV, the simplest file every GStreamer install can parse.
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 2).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
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
    }
}

pub mod mosquitto;
