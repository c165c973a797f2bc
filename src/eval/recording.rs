//! A labelled recording scored directly: the WAV file is pushed through the profile stream's
//! own stages (the [`InlineDetector`] the GStreamer element runs, so the same front end,
//! model and hysteresis as on the box) as fast as the CPU allows, and the alerts it raises
//! are matched to the marked events by [`super::events`]' rule.
//!
//! A data set of many recordings (`NN.wav` beside `NN.events.csv`) is scored one recording
//! at a time and the reports merged: events and false alarms add up, false alarms are per
//! hour of all the background.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::events::{EventReport, LabelResult, RaisedAlert};
use crate::alert::{Alert, Name, Phase};
use crate::capture::{AudioBlock, Sample, Stamp};
use crate::io::wav::Recording;
use crate::runtime::{InlineDetector, InlineResult, Media};

/// Audio is pushed in blocks of this length, about what a capture buffer holds.
const BLOCK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{}: {problem}", path.display())]
    Input { path: PathBuf, problem: String },
    #[error("{}: at {at:.3} s: {detail}", path.display())]
    Stage {
        path: PathBuf,
        at: f64,
        detail: String,
    },
}

/// What one pass over a recording produced.
#[derive(Debug, Default)]
pub struct RecordingRun {
    /// Every alert record (new, update, end), in order.
    pub alerts: Vec<Alert>,
    /// Per model input: the stream time its decision carries (seconds) and each label's score.
    pub scores: Vec<(f64, Vec<(Name, f32)>)>,
    pub duration_s: f64,
    /// Wall-clock seconds the pass took.
    pub seconds: f64,
}

impl RecordingRun {
    /// Takes in what one pushed sample produced.
    pub(super) fn add(&mut self, result: InlineResult) {
        self.scores.extend(
            result
                .scores
                .into_iter()
                .map(|(stamp, scores)| (stamp.pts.as_secs_f64(), scores)),
        );
        self.alerts.extend(result.alerts);
    }

    /// The alerts that opened an event, as the event scorer takes them.
    pub fn raised(&self) -> Vec<RaisedAlert> {
        self.alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.phase == Phase::New)
            .map(|(i, a)| RaisedAlert {
                line: i + 1,
                label: a.label.as_str().to_string(),
                at: a.pts_ns as f64 / 1e9,
            })
            .collect()
    }
}

/// Refuses a recording `detector` cannot take: not audio, another sample rate, or empty.
pub fn check_input(
    detector: &InlineDetector,
    recording: &Recording,
    path: &Path,
) -> Result<(), RecordingError> {
    let input = |problem: String| RecordingError::Input {
        path: path.to_path_buf(),
        problem,
    };
    match detector.media() {
        Media::Audio { rate } => check_rate(detector, recording, path, rate),
        Media::Video { .. } => Err(input(format!(
            "stream {} runs {}, a video model; a recording is scored by an audio stream",
            detector.stream(),
            detector.model()
        ))),
        Media::AudioVisual { .. } => Err(input(format!(
            "stream {} runs {}, which takes video with the sound: give --footage",
            detector.stream(),
            detector.model()
        ))),
    }
}

/// Refuses a recording at another sample rate than the `rate` `detector` takes, or empty.
pub(super) fn check_rate(
    detector: &InlineDetector,
    recording: &Recording,
    path: &Path,
    rate: u32,
) -> Result<(), RecordingError> {
    let input = |problem: String| RecordingError::Input {
        path: path.to_path_buf(),
        problem,
    };
    if recording.rate != rate {
        return Err(input(format!(
            "recorded at {} Hz, model {} takes {rate} Hz (resample with \
             `ffmpeg -i IN -ar {rate} -ac 1 OUT.wav`)",
            recording.rate,
            detector.model()
        )));
    }
    if recording.samples.is_empty() {
        return Err(input("holds no samples".into()));
    }
    Ok(())
}

/// Runs `recording` (read from `path`) through `detector`, which must take audio at the
/// recording's rate. A fresh detector per recording: its front end and open events start
/// empty, as on a box that was just started.
pub fn run_recording(
    detector: &mut InlineDetector,
    recording: &Recording,
    path: &Path,
) -> Result<RecordingRun, RecordingError> {
    check_input(detector, recording, path)?;
    let rate = recording.rate;
    let block = (BLOCK.as_secs_f64() * f64::from(rate)).round().max(1.0) as usize;
    let started = Instant::now();
    let mut run = RecordingRun {
        duration_s: recording.duration_s(),
        ..RecordingRun::default()
    };
    for (seq, chunk) in recording.samples.chunks(block).enumerate() {
        let first = seq * block;
        let pts = Duration::from_secs_f64(first as f64 / f64::from(rate));
        let sample = Sample::Audio(AudioBlock {
            stamp: Stamp {
                pts,
                captured_at: SystemTime::now(),
                seq: seq as u64,
            },
            rate,
            samples: chunk.to_vec(),
        });
        let result = detector
            .push(&sample)
            .map_err(|err| RecordingError::Stage {
                path: path.to_path_buf(),
                at: pts.as_secs_f64(),
                detail: err.to_string(),
            })?;
        run.add(result);
    }
    run.alerts.extend(detector.finish());
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// The recordings of a data set folder: every `NAME.wav` that has a `NAME.events.csv`
/// beside it, in name order. A WAV without its event list is an error (it would otherwise be
/// left out silently).
pub fn labelled_recordings(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, RecordingError> {
    let input = |problem: String| RecordingError::Input {
        path: dir.to_path_buf(),
        problem,
    };
    let entries = std::fs::read_dir(dir).map_err(|err| input(format!("cannot list: {err}")))?;
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|err| input(format!("cannot list: {err}")))?
            .path();
        if path.extension().is_some_and(|e| e == "wav") {
            let events = path.with_extension("events.csv");
            if !events.is_file() {
                return Err(RecordingError::Input {
                    path,
                    problem: format!("no event list beside it ({} is missing)", events.display()),
                });
            }
            pairs.push((path, events));
        }
    }
    if pairs.is_empty() {
        return Err(input("no NAME.wav with a NAME.events.csv beside it".into()));
    }
    pairs.sort();
    Ok(pairs)
}

/// Reports of several recordings as one: durations, background, events, detections,
/// latencies, repeats, confusions and false alarms add up per label. `None` for no report.
pub fn merge_reports(reports: &[EventReport]) -> Option<EventReport> {
    let first = reports.first()?;
    let mut labels: std::collections::BTreeMap<String, LabelResult> = Default::default();
    for report in reports {
        for l in &report.labels {
            let merged = labels
                .entry(l.label.clone())
                .or_insert_with(|| LabelResult {
                    label: l.label.clone(),
                    events: 0,
                    detected: 0,
                    latencies: Vec::new(),
                    repeats: 0,
                    confusions: 0,
                    false_alarms: 0,
                });
            merged.events += l.events;
            merged.detected += l.detected;
            merged.latencies.extend(&l.latencies);
            merged.repeats += l.repeats;
            merged.confusions += l.confusions;
            merged.false_alarms += l.false_alarms;
        }
    }
    Some(EventReport {
        rule: first.rule,
        duration_s: reports.iter().map(|r| r.duration_s).sum(),
        background_s: reports.iter().map(|r| r.background_s).sum(),
        labels: labels.into_values().collect(),
        detected_lines: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::events::{MarkedEvent, MatchRule, score_events};
    use super::*;

    #[test]
    fn merged_reports_add_up_and_rate_false_alarms_over_all_background() {
        let event = |start: f64, label: &str| MarkedEvent {
            line: 2,
            start,
            end: start + 1.0,
            label: label.into(),
        };
        let alert = |at: f64, label: &str| RaisedAlert {
            line: 1,
            label: label.into(),
            at,
        };
        let rule = MatchRule::default();
        let a = score_events(
            &[event(10.0, "gunshot")],
            &[alert(10.2, "gunshot"), alert(100.0, "gunshot")],
            1800.0,
            rule,
        )
        .unwrap();
        let b = score_events(
            &[event(20.0, "gunshot"), event(40.0, "screaming")],
            &[alert(21.5, "gunshot")],
            1800.0,
            rule,
        )
        .unwrap();
        let merged = merge_reports(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(merged.duration_s, 3600.0);
        assert!((merged.background_s - (a.background_s + b.background_s)).abs() < 1e-9);
        let gunshot = merged.labels.iter().find(|l| l.label == "gunshot").unwrap();
        assert_eq!((gunshot.events, gunshot.detected), (2, 2));
        assert_eq!(gunshot.latencies.len(), 2);
        assert_eq!(gunshot.false_alarms, 1);
        let screaming = merged
            .labels
            .iter()
            .find(|l| l.label == "screaming")
            .unwrap();
        assert_eq!((screaming.events, screaming.detected), (1, 0));
        assert!(merge_reports(&[]).is_none());
    }

    #[test]
    fn a_wav_without_its_event_list_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            labelled_recordings(dir.path())
                .unwrap_err()
                .to_string()
                .contains("no NAME.wav")
        );
        std::fs::write(dir.path().join("01.wav"), b"").unwrap();
        std::fs::write(dir.path().join("01.events.csv"), b"").unwrap();
        std::fs::write(dir.path().join("02.wav"), b"").unwrap();
        let error = labelled_recordings(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("02.wav") && error.contains("02.events.csv"),
            "{error}"
        );
    }
}
