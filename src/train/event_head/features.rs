//! A labelled data set's recordings through YAMNet, patch by patch: the 521 AudioSet scores,
//! the 1024-d embedding and which marked event, if any, each 0.96 s patch holds.
//!
//! The patches come from the runtime's own front end and model ([`AudioEventsPrepare`],
//! [`YamnetDetector`]), so a head trained on them sees exactly what it will see on the box.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::EventHeadError;
use crate::capture::{AudioBlock, Sample, Stamp};
use crate::detector::{Manifest, Plan};
use crate::eval::events::{MarkedEvent, read_marked_events};
use crate::eval::recording::labelled_recordings;
use crate::io::wav::read_pcm;
use crate::models::audio_events::{AudioEventsPrepare, YamnetDetector};
use crate::pipeline::Prepare;
use crate::prepare::mel::LogMelConfig;

/// A patch counts for an event when they share at least this much time, or half the event
/// when the event is shorter: a 0.2 s gunshot inside a 0.96 s patch is that patch's sound.
const MIN_OVERLAP_S: f64 = 0.25;

/// One YAMNet patch of a recording.
#[derive(Debug, Clone)]
pub struct Patch {
    pub start: f64,
    pub end: f64,
    pub scores: Vec<f32>,
    pub embedding: Vec<f32>,
    /// The label of the event the patch holds (see [`MIN_OVERLAP_S`]), if any.
    pub label: Option<usize>,
    /// The patch touches an event without holding enough of it: left out of training, as
    /// neither a clean positive nor a clean negative.
    pub partial: bool,
}

/// One recording's patches and its marked events.
#[derive(Debug, Clone)]
pub struct RecordingPatches {
    pub wav: PathBuf,
    pub duration_s: f64,
    pub events: Vec<MarkedEvent>,
    pub patches: Vec<Patch>,
}

/// Runs every `NAME.wav` + `NAME.events.csv` of `dir` through the manifest's `yamnet` model.
/// `labels` are the labels the events may carry (their order numbers [`Patch::label`]).
pub fn extract(
    manifest: &Manifest,
    yamnet: &str,
    dir: &Path,
    labels: &[String],
    config: &LogMelConfig,
) -> Result<Vec<RecordingPatches>, EventHeadError> {
    let plan = Plan::load(manifest, yamnet)?;
    let spec = manifest.model(yamnet)?;
    let mut out = Vec::new();
    for (wav, events_path) in labelled_recordings(dir)? {
        let audio = read_pcm(&wav)?;
        let config = config.clone();
        if audio.rate != config.sample_rate_hz {
            return Err(EventHeadError::Data {
                path: wav,
                problem: format!(
                    "recorded at {} Hz, YAMNet takes {} Hz",
                    audio.rate, config.sample_rate_hz
                ),
            });
        }
        let events = read_marked_events(&events_path, labels, audio.duration_s())?;
        let mut prepare = AudioEventsPrepare::new(spec, config)?;
        let mut detector = YamnetDetector::new(&plan)?;
        let mut mel = Vec::new();
        let block = 1600;
        for (seq, chunk) in audio.samples.chunks(block).enumerate() {
            let sample = Sample::Audio(AudioBlock {
                stamp: Stamp {
                    pts: Duration::from_secs_f64((seq * block) as f64 / 16_000.0),
                    captured_at: SystemTime::now(),
                    seq: seq as u64,
                },
                rate: audio.rate,
                samples: chunk.to_vec(),
            });
            prepare.prepare(&sample, &mut |_, patch| mel.push(patch))?;
        }
        let mut patches = Vec::with_capacity(mel.len());
        for patch in &mel {
            let scores = detector.run(patch)?;
            let (start, end) = (patch.start.as_secs_f64(), patch.end.as_secs_f64());
            let (label, partial) = patch_label(start, end, &events, labels);
            patches.push(Patch {
                start,
                end,
                scores: scores.scores,
                embedding: scores.embedding,
                label,
                partial,
            });
        }
        log::info!("{}: {} patches", wav.display(), patches.len());
        out.push(RecordingPatches {
            wav,
            duration_s: audio.duration_s(),
            events,
            patches,
        });
    }
    Ok(out)
}

/// The label a patch `[start, end]` holds, and whether it only grazes an event.
pub fn patch_label(
    start: f64,
    end: f64,
    events: &[MarkedEvent],
    labels: &[String],
) -> (Option<usize>, bool) {
    let mut best: Option<(f64, usize)> = None;
    let mut touches = false;
    for event in events {
        let overlap = end.min(event.end) - start.max(event.start);
        if overlap <= 0.0 {
            continue;
        }
        touches = true;
        let needed = MIN_OVERLAP_S.min(0.5 * (event.end - event.start));
        let Some(index) = labels.iter().position(|l| *l == event.label) else {
            continue;
        };
        if overlap >= needed && best.is_none_or(|(o, _)| overlap > o) {
            best = Some((overlap, index));
        }
    }
    match best {
        Some((_, index)) => (Some(index), false),
        None => (None, touches),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_hold_an_event_by_overlap_and_graze_otherwise() {
        let labels = vec!["gunshot".to_string(), "screaming".to_string()];
        let events = [
            MarkedEvent {
                line: 2,
                start: 10.0,
                end: 10.2,
                label: "gunshot".into(),
            },
            MarkedEvent {
                line: 3,
                start: 20.0,
                end: 22.0,
                label: "screaming".into(),
            },
        ];
        // The whole short shot inside the patch.
        assert_eq!(patch_label(9.5, 10.46, &events, &labels), (Some(0), false));
        // 0.05 s of the 0.2 s shot: grazes it.
        assert_eq!(patch_label(9.09, 10.05, &events, &labels), (None, true));
        // 0.3 s of a 2 s scream: holds it.
        assert_eq!(patch_label(21.7, 22.66, &events, &labels), (Some(1), false));
        assert_eq!(patch_label(30.0, 30.96, &events, &labels), (None, false));
    }
}
