//! Per-label alert settings chosen on the validation part: which score raises the label (the
//! learned head's output or a group of YAMNet's own AudioSet classes), the threshold that
//! opens an event and how many patches in a row must pass it.
//!
//! Each candidate is played through the runtime's own [`Tracker`] patch by patch, its alerts
//! matched to the marked events by the one event rule ([`score_events`]), and the candidate
//! that detects the most events while raising no more than its share of the false-alarm
//! budget per hour of background wins; among equals, the highest threshold (the most margin).

use std::time::Duration;

use serde::Serialize;

use super::features::RecordingPatches;
use crate::decide::{Hysteresis, Tracker, Transition};
use crate::eval::events::{EventReport, MatchRule, RaisedAlert, score_events};
use crate::eval::recording::merge_reports;

/// Where a label's score comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ScoreSource {
    /// The learned head's output for this label (index among the head's outputs).
    Head(usize),
    /// The best of these AudioSet classes (indices into YAMNet's 521 scores, and names).
    AudioSet(Vec<(usize, String)>),
}

/// One label's settings and what they gave on the part they were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct LabelSettings {
    pub label: String,
    pub source: ScoreSource,
    pub on: f32,
    pub off: f32,
    pub open_after: u32,
    pub events: usize,
    pub detected: usize,
    pub false_alarms: usize,
    pub background_s: f64,
    pub median_latency_s: Option<f64>,
}

impl LabelSettings {
    pub fn false_alarms_per_hour(&self) -> f64 {
        self.false_alarms as f64 * 3600.0 / self.background_s.max(1e-9)
    }

    pub fn hysteresis(&self) -> Hysteresis {
        let mut h = Hysteresis::new(self.on, self.off);
        h.open_after = self.open_after;
        h
    }
}

/// A label's score on every patch of every recording, given the head's scores per patch.
pub fn label_scores(
    recordings: &[RecordingPatches],
    head_scores: &[Vec<Vec<f32>>],
    source: &ScoreSource,
) -> Vec<Vec<f32>> {
    recordings
        .iter()
        .enumerate()
        .map(|(r, rec)| {
            rec.patches
                .iter()
                .enumerate()
                .map(|(p, patch)| match source {
                    ScoreSource::Head(index) => head_scores[r][p][*index],
                    ScoreSource::AudioSet(classes) => classes
                        .iter()
                        .filter_map(|(c, _)| patch.scores.get(*c).copied())
                        .fold(f32::NAN, f32::max),
                })
                .collect()
        })
        .collect()
}

/// Plays one label's scores through the runtime's tracker: the alerts that open events.
pub fn alerts_of(
    label: &str,
    recording: &RecordingPatches,
    scores: &[f32],
    hysteresis: Hysteresis,
) -> Vec<RaisedAlert> {
    let mut tracker = Tracker::new(hysteresis);
    let mut alerts = Vec::new();
    for (patch, &score) in recording.patches.iter().zip(scores) {
        let (start, end) = (
            Duration::from_secs_f64(patch.start),
            Duration::from_secs_f64(patch.end),
        );
        if let Some(Transition::Opened { .. }) = tracker.observe(score, start, end) {
            // The runtime stamps an alert with its patch's end (`AudioEventsDecide`).
            alerts.push(RaisedAlert {
                line: alerts.len() + 1,
                label: label.to_string(),
                at: patch.end,
            });
        }
    }
    alerts
}

/// One label's report over all recordings under `hysteresis`.
pub fn measure(
    label: &str,
    recordings: &[RecordingPatches],
    scores: &[Vec<f32>],
    hysteresis: Hysteresis,
    rule: MatchRule,
) -> Option<EventReport> {
    let reports: Vec<EventReport> = recordings
        .iter()
        .zip(scores)
        .filter_map(|(rec, s)| {
            let alerts = alerts_of(label, rec, s, hysteresis);
            score_events(&rec.events, &alerts, rec.duration_s, rule).ok()
        })
        .collect();
    merge_reports(&reports)
}

fn settings_from(
    label: &str,
    source: &ScoreSource,
    hysteresis: &Hysteresis,
    report: &EventReport,
) -> LabelSettings {
    let result = report.labels.iter().find(|l| l.label == label);
    LabelSettings {
        label: label.to_string(),
        source: source.clone(),
        on: hysteresis.on,
        off: hysteresis.off,
        open_after: hysteresis.open_after,
        events: result.map_or(0, |l| l.events),
        detected: result.map_or(0, |l| l.detected),
        false_alarms: result.map_or(0, |l| l.false_alarms),
        background_s: report.background_s,
        median_latency_s: result.and_then(|l| l.median_latency()),
    }
}

/// The best settings for `label` among `sources` × thresholds 0.05–0.95 × `open_after` 1–2,
/// under `budget_per_hour` false alarms per hour of background. `None` when no candidate
/// stays within the budget.
pub fn choose(
    label: &str,
    sources: &[(ScoreSource, Vec<Vec<f32>>)],
    recordings: &[RecordingPatches],
    budget_per_hour: f64,
    rule: MatchRule,
) -> Option<LabelSettings> {
    let mut best: Option<LabelSettings> = None;
    for (source, scores) in sources {
        for open_after in [1, 2] {
            for step in 5..=95 {
                let on = step as f32 / 100.0;
                let mut hysteresis = Hysteresis::new(on, on / 2.0);
                hysteresis.open_after = open_after;
                let Some(report) = measure(label, recordings, scores, hysteresis, rule) else {
                    continue;
                };
                let candidate = settings_from(label, source, &hysteresis, &report);
                if candidate.false_alarms_per_hour() > budget_per_hour {
                    continue;
                }
                let better = best.as_ref().is_none_or(|b| {
                    (
                        candidate.detected,
                        std::cmp::Reverse(candidate.false_alarms),
                    ) > (b.detected, std::cmp::Reverse(b.false_alarms))
                        || ((candidate.detected, candidate.false_alarms)
                            == (b.detected, b.false_alarms)
                            && candidate.on > b.on)
                });
                if better {
                    best = Some(candidate);
                }
            }
        }
    }
    best
}

/// `settings` measured again on other recordings (the test part), unchanged.
pub fn remeasure(
    settings: &LabelSettings,
    scores: &[Vec<f32>],
    recordings: &[RecordingPatches],
    rule: MatchRule,
) -> Option<LabelSettings> {
    let hysteresis = settings.hysteresis();
    let report = measure(&settings.label, recordings, scores, hysteresis, rule)?;
    Some(settings_from(
        &settings.label,
        &settings.source,
        &hysteresis,
        &report,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::features::Patch;
    use super::*;
    use crate::eval::events::MarkedEvent;

    /// A 60 s recording with patches every 0.48 s, a gunshot at 10 s, and background scores
    /// that peak at 0.5 once at 40 s.
    fn recording() -> (RecordingPatches, Vec<f32>) {
        let mut patches = Vec::new();
        let mut scores = Vec::new();
        let mut t = 0.0;
        while t + 0.96 <= 60.0 {
            let holds = t + 0.96 > 10.0 && t < 10.3;
            scores.push(if holds {
                0.8
            } else if (t - 40.0f64).abs() < 0.3 {
                0.5
            } else {
                0.1
            });
            patches.push(Patch {
                start: t,
                end: t + 0.96,
                scores: Vec::new(),
                embedding: Vec::new(),
                label: holds.then_some(0),
                partial: false,
            });
            t += 0.48;
        }
        let events = vec![MarkedEvent {
            line: 2,
            start: 10.0,
            end: 10.3,
            label: "gunshot".into(),
        }];
        (
            RecordingPatches {
                wav: "a.wav".into(),
                duration_s: 60.0,
                events,
                patches,
            },
            scores,
        )
    }

    #[test]
    fn the_highest_threshold_that_detects_within_the_budget_is_chosen() {
        let (rec, scores) = recording();
        let sources = vec![(ScoreSource::Head(0), vec![scores])];
        let chosen = choose(
            "gunshot",
            &sources,
            std::slice::from_ref(&rec),
            0.0,
            MatchRule::default(),
        )
        .unwrap();
        assert_eq!(
            (chosen.events, chosen.detected, chosen.false_alarms),
            (1, 1, 0)
        );
        // Above the background's 0.5 peak, and the highest threshold that still detects.
        assert!(chosen.on > 0.5 && chosen.on <= 0.8, "{chosen:?}");
        assert_eq!(chosen.on, 0.8);
        // With a budget of one false alarm per minute, the highest detecting threshold still
        // wins (it raises fewer).
        let loose = choose(
            "gunshot",
            &sources,
            std::slice::from_ref(&rec),
            60.0,
            MatchRule::default(),
        )
        .unwrap();
        assert_eq!(loose.false_alarms, 0);
    }
}
