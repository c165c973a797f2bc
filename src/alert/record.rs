//! The alert record. Fixed-size (heapless strings and vectors) so that the decide stage builds
//! alerts without touching the allocator, and so a journal record has a bounded size.

use serde::{Deserialize, Serialize};

/// Longest stream, model or label name an alert carries; longer names are refused at
/// configuration time, never truncated silently.
pub const NAME_LEN: usize = 48;
/// Most regions (defect boxes, anomalous pixels) one alert carries.
pub const MAX_REGIONS: usize = 16;

pub type Name = heapless::String<NAME_LEN>;

/// Longest snapshot file name an alert carries: a stream name, two decimal u64s and the
/// `.heatmap.png` suffix fit.
pub const SNAPSHOT_NAME_LEN: usize = 128;

/// The file name (no folder) of a snapshot written next to an alert.
pub type SnapshotName = heapless::String<SNAPSHOT_NAME_LEN>;

/// Where an alert is in its life: opened once, updated while it lasts, ended once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    New,
    Update,
    End,
}

/// An axis-aligned region in the frame's pixel coordinates (or row/col for hyperspectral).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub score: f32,
    /// Map coordinates (easting, northing) of the region's peak, when the sensor's data is
    /// georeferenced (hyperspectral scenes with ENVI `map info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_xy: Option<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique per box and never reused: the journal assigns it, sinks deduplicate on it.
    pub id: u64,
    /// Groups the new/update/end records of one event.
    pub event: u64,
    pub phase: Phase,
    pub stream: Name,
    pub model: Name,
    pub label: Name,
    /// Score of the window that produced this record.
    pub score: f32,
    /// Highest score since the event opened.
    pub peak: f32,
    /// Threshold the event opened on.
    pub threshold: f32,
    /// Stream time of the start of the event and of this record, in nanoseconds.
    pub start_pts_ns: u64,
    pub pts_ns: u64,
    /// Wall-clock capture time of the newest data in this record (Unix nanoseconds).
    pub captured_at_ns: u64,
    /// Wall-clock time the decide stage produced this record (Unix nanoseconds).
    pub decided_at_ns: u64,
    pub regions: heapless::Vec<Region, MAX_REGIONS>,
    /// How `threshold` was derived, for families with more than one rule (e.g. `cfar-chi2`,
    /// `empirical-quantile` for hyperspectral RX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_rule: Option<Name>,
    /// The heatmap snapshot written for this record, as a file name in the stream's snapshot
    /// folder (industrial streams); absent when none was written. A bounded name rather than a
    /// path keeps a journal record's size bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotName>,
    /// The evidence folder of this record's event (keyframes or an audio clip from before the
    /// event's start to after its end), in the stream's evidence folder; absent when the
    /// stream keeps no evidence. See [`crate::evidence`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<SnapshotName>,
    /// Multimodal families (violence): the modalities whose own heads fired during the event
    /// so far, joined by `+` in a fixed order (`video+audio+flow`, `audio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Name>,
}

impl Alert {
    /// Capture-to-decision latency in microseconds.
    pub fn latency_us(&self) -> u64 {
        self.decided_at_ns.saturating_sub(self.captured_at_ns) / 1_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest record an alert can make, for the journal's bound on record sizes.
    #[test]
    fn the_largest_alert_fits_a_journal_record() {
        // A control character is one byte of a name and six of JSON (`\u0001`).
        let long = |n: usize| "\u{1}".repeat(n);
        let full = Name::try_from(long(NAME_LEN).as_str()).unwrap();
        let mut regions = heapless::Vec::new();
        for _ in 0..MAX_REGIONS {
            let _ = regions.push(Region {
                x: u32::MAX,
                y: u32::MAX,
                width: u32::MAX,
                height: u32::MAX,
                score: -f32::MAX,
                map_xy: Some([-f64::MAX, -f64::MAX]),
            });
        }
        let alert = Alert {
            id: u64::MAX,
            event: u64::MAX,
            phase: Phase::Update,
            stream: full.clone(),
            model: full.clone(),
            label: full.clone(),
            score: -f32::MAX,
            peak: -f32::MAX,
            threshold: -f32::MAX,
            start_pts_ns: u64::MAX,
            pts_ns: u64::MAX,
            captured_at_ns: u64::MAX,
            decided_at_ns: u64::MAX,
            regions,
            threshold_rule: Some(full.clone()),
            snapshot: Some(SnapshotName::try_from(long(SNAPSHOT_NAME_LEN).as_str()).unwrap()),
            evidence: Some(SnapshotName::try_from(long(SNAPSHOT_NAME_LEN).as_str()).unwrap()),
            modalities: Some(full),
        };
        let bytes = serde_json::to_vec(&alert).unwrap().len();
        assert!(
            bytes <= crate::sinks::journal::MAX_RECORD_PAYLOAD as usize,
            "{bytes} bytes"
        );
    }
}
