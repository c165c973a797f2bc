//! Builds alert records from tracker transitions, without allocating.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Transition;
use crate::alert::{Alert, Name, Phase, Region};
use crate::capture::Stamp;

/// A name too long for the fixed-size alert; refused when the profile is loaded.
#[derive(Debug, thiserror::Error)]
#[error("{what} {value:?} is longer than {max} bytes", max = crate::alert::NAME_LEN)]
pub struct NameTooLong {
    pub what: &'static str,
    pub value: String,
}

pub fn name(what: &'static str, value: &str) -> Result<Name, NameTooLong> {
    Name::try_from(value).map_err(|_| NameTooLong {
        what,
        value: value.into(),
    })
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Stamps alerts with the stream and model they come from, and numbers events.
#[derive(Debug, Clone)]
pub struct AlertFactory {
    stream: Name,
    model: Name,
    next_event: u64,
}

impl AlertFactory {
    pub fn new(stream: &str, model: &str) -> Result<Self, NameTooLong> {
        // Event numbers start from the clock so that they stay unique across restarts of the
        // process without any state on disk (the journal numbers the records themselves).
        let next_event = unix_ns(SystemTime::now()) / 1_000;
        Ok(Self {
            stream: name("stream name", stream)?,
            model: name("model name", model)?,
            next_event,
        })
    }

    /// The alert for a transition of the tracker of `label`; `event` is that tracker's slot,
    /// updated when an event opens.
    pub fn make(
        &mut self,
        label: &Name,
        event: &mut u64,
        threshold: f32,
        transition: Transition,
        stamp: &Stamp,
        regions: &[Region],
    ) -> Alert {
        let (phase, score, peak, start, at) = match transition {
            Transition::Opened { start, score } => {
                *event = self.next_event;
                self.next_event += 1;
                (Phase::New, score, score, start, stamp.pts)
            }
            Transition::Updated { start, score, peak } => {
                (Phase::Update, score, peak, start, stamp.pts)
            }
            Transition::Ended { start, end, peak } => (Phase::End, f32::NAN, peak, start, end),
        };
        let mut kept = heapless::Vec::new();
        for region in regions.iter().take(crate::alert::MAX_REGIONS) {
            let _ = kept.push(*region);
        }
        Alert {
            id: 0,
            event: *event,
            phase,
            stream: self.stream.clone(),
            model: self.model.clone(),
            label: label.clone(),
            score: if score.is_nan() { 0.0 } else { score },
            peak,
            threshold,
            start_pts_ns: duration_ns(start),
            pts_ns: duration_ns(at),
            captured_at_ns: unix_ns(stamp.captured_at),
            decided_at_ns: unix_ns(SystemTime::now()),
            regions: kept,
            threshold_rule: None,
            snapshot: None,
            evidence: None,
            modalities: None,
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}
