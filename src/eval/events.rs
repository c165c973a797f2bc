//! Event-level scoring of a labelled recording: which marked events the alerts caught, how
//! late, and how many alerts fired on nothing, per hour of background.
//!
//! One matching rule, used by `vigil eval --events` and by every card that reports events:
//!
//! - An alert is the `new` record of an event (updates and ends add nothing); its time is its
//!   `pts_ns`, the stream time of the data that opened it.
//! - An alert of label L **detects** a marked event of label L when its time lies in
//!   `[start − before, end + after]` (the collars, default 0.5 s and 2 s: a classifier sees
//!   a window that may begin before the event, and needs some of it to decide). Latency is
//!   the first such alert's time minus the event's start.
//! - A further alert on an already detected event is a **repeat**, not a false alarm.
//! - An alert that detects nothing is a **confusion** when it lies within another label's
//!   collared event (a gunshot called an explosion), else a **false alarm**.
//! - **Background** is the recording minus every collared event; false alarms are counted
//!   per hour of it.
//!
//! The event list is a CSV with a header naming `start`, `end` (seconds) and `label`, in any
//! order among other columns. Reversed or overlapping intervals, labels the box cannot raise,
//! times past the recording's end, and alerts from another stream or model are refused with
//! the line named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::alert::{Alert, Phase};

/// The collars around each marked event inside which an alert counts for it, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatchRule {
    pub before: f64,
    pub after: f64,
}

impl Default for MatchRule {
    fn default() -> Self {
        Self {
            before: 0.5,
            after: 2.0,
        }
    }
}

/// One marked event.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkedEvent {
    /// 1-based line in the event list.
    pub line: usize,
    pub start: f64,
    pub end: f64,
    pub label: String,
}

/// One alert that opened an event.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    /// 1-based line in the alerts file.
    pub line: usize,
    pub label: String,
    /// Stream time, seconds.
    pub at: f64,
}

/// What is wrong with an event list or an alerts file; each names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum EventEvalError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error("{setting} = {value}: {detail}")]
    Setting {
        setting: &'static str,
        value: f64,
        detail: &'static str,
    },
}

fn read_text(path: &Path) -> Result<String, EventEvalError> {
    std::fs::read_to_string(path).map_err(|source| EventEvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks an event list: every label among `labels`, `0 ≤ start < end ≤ duration`,
/// and no two events overlapping. Returned in time order.
pub fn read_marked_events(
    path: &Path,
    labels: &[String],
    duration: f64,
) -> Result<Vec<MarkedEvent>, EventEvalError> {
    let text = read_text(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let line_error = |line: usize, problem: String| EventEvalError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = rows.next() else {
        return Err(EventEvalError::File {
            path: path.to_path_buf(),
            problem: "empty file, expected a header with start, end and label columns".into(),
        });
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            line_error(
                header_line,
                format!("no `{name}` column in the header ({})", names.join(",")),
            )
        })
    };
    let (start_col, end_col, label_col) = (column("start")?, column("end")?, column("label")?);
    let mut events = Vec::new();
    for (line, row) in rows {
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(line_error(
                line,
                format!("{} fields, the header has {}", fields.len(), names.len()),
            ));
        }
        let time = |col: usize, what: &str| -> Result<f64, EventEvalError> {
            match fields[col].parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(line_error(
                    line,
                    format!("{what} {:?} is not a time in seconds ≥ 0", fields[col]),
                )),
            }
        };
        let (start, end) = (time(start_col, "start")?, time(end_col, "end")?);
        let label = fields[label_col].to_string();
        if end <= start {
            return Err(line_error(
                line,
                format!("the event ends at {end} s, not after its start at {start} s"),
            ));
        }
        if end > duration {
            return Err(line_error(
                line,
                format!("the event ends at {end} s, past the recording's end at {duration} s"),
            ));
        }
        if !labels.contains(&label) {
            return Err(line_error(
                line,
                format!(
                    "unknown label {label:?}: the box raises {}",
                    labels.join(", ")
                ),
            ));
        }
        events.push(MarkedEvent {
            line,
            start,
            end,
            label,
        });
    }
    events.sort_by(|a, b| a.start.total_cmp(&b.start));
    for pair in events.windows(2) {
        if pair[1].start < pair[0].end {
            return Err(line_error(
                pair[1].line,
                format!(
                    "the event {}–{} s overlaps line {}'s {}–{} s; mark one event per span",
                    pair[1].start, pair[1].end, pair[0].line, pair[0].start, pair[0].end
                ),
            ));
        }
    }
    Ok(events)
}

/// One more column of an event list (an SNR, a place, a recording day), by line, for
/// breaking results down by it. A list without the column is an error naming it.
pub fn read_event_column(
    path: &Path,
    column: &str,
) -> Result<BTreeMap<usize, String>, EventEvalError> {
    let text = read_text(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = rows.next() else {
        return Err(EventEvalError::File {
            path: path.to_path_buf(),
            problem: "empty file".into(),
        });
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let index = names
        .iter()
        .position(|n| *n == column)
        .ok_or_else(|| EventEvalError::Line {
            path: path.to_path_buf(),
            line: header_line,
            problem: format!("no `{column}` column in the header ({})", names.join(",")),
        })?;
    Ok(rows
        .map(|(line, row)| {
            let value = row.split(',').nth(index).unwrap_or("").trim().to_string();
            (line, value)
        })
        .collect())
}

/// Which stream and model the alerts must come from; `None` takes the first alert's.
#[derive(Debug, Clone, Default)]
pub struct AlertSource {
    pub stream: Option<String>,
    pub model: Option<String>,
}

/// Reads the `new` records of a JSON-lines alerts file (the `jsonl` sink's format), refusing
/// a line that is not an alert, one from another stream or model, and one past `duration`.
pub fn read_raised_alerts(
    path: &Path,
    source: &AlertSource,
    duration: f64,
) -> Result<Vec<RaisedAlert>, EventEvalError> {
    let text = read_text(path)?;
    let line_error = |line: usize, problem: String| EventEvalError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let (mut stream, mut model) = (source.stream.clone(), source.model.clone());
    let mut raised = Vec::new();
    for (index, row) in text.lines().enumerate() {
        let line = index + 1;
        if row.trim().is_empty() {
            continue;
        }
        let alert: Alert = serde_json::from_str(row)
            .map_err(|e| line_error(line, format!("not an alert record: {e}")))?;
        for (what, expected, got) in [
            ("stream", &mut stream, alert.stream.as_str()),
            ("model", &mut model, alert.model.as_str()),
        ] {
            match expected {
                Some(name) if name != got => {
                    return Err(line_error(
                        line,
                        format!("an alert from {what} {got:?}, the evaluation is of {name:?}"),
                    ));
                }
                Some(_) => {}
                None => *expected = Some(got.to_string()),
            }
        }
        if alert.phase != Phase::New {
            continue;
        }
        let at = alert.pts_ns as f64 / 1e9;
        if at > duration {
            return Err(line_error(
                line,
                format!("alert at {at:.3} s, past the recording's end at {duration} s"),
            ));
        }
        raised.push(RaisedAlert {
            line,
            label: alert.label.as_str().to_string(),
            at,
        });
    }
    raised.sort_by(|a, b| a.at.total_cmp(&b.at));
    Ok(raised)
}

/// One label's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelResult {
    pub label: String,
    pub events: usize,
    pub detected: usize,
    /// Per detected event, first matching alert's time minus the event's start (seconds).
    pub latencies: Vec<f64>,
    pub repeats: usize,
    /// Alerts of this label inside another label's event.
    pub confusions: usize,
    pub false_alarms: usize,
}

impl LabelResult {
    pub fn detection_rate(&self) -> Option<f64> {
        (self.events > 0).then(|| self.detected as f64 / self.events as f64)
    }

    pub fn median_latency(&self) -> Option<f64> {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        (n > 0).then(|| {
            if n % 2 == 1 {
                sorted[n / 2]
            } else {
                0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
            }
        })
    }
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReport {
    pub rule: MatchRule,
    pub duration_s: f64,
    pub background_s: f64,
    /// Per label, in name order: every label marked or alerted.
    pub labels: Vec<LabelResult>,
    /// The event-list lines of the events detected (for breaking results down by another
    /// column of the list; empty in a report merged from several recordings).
    #[serde(skip)]
    pub detected_lines: Vec<usize>,
}

impl EventReport {
    pub fn false_alarms(&self) -> usize {
        self.labels.iter().map(|l| l.false_alarms).sum()
    }

    /// False alarms per hour of background (`None` when there is no background).
    pub fn false_alarms_per_hour(&self, false_alarms: usize) -> Option<f64> {
        (self.background_s > 0.0).then(|| false_alarms as f64 * 3600.0 / self.background_s)
    }

    /// A Markdown table, one row per label and a total.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:.1} s recorded, {:.1} s of background (collars {} s before, {} s after each event)\n\n\
             | label | events | detected | median latency | max latency | repeats | confusions | false alarms | per hour |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            self.duration_s, self.background_s, self.rule.before, self.rule.after
        );
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("–".to_string(), |v| format!("{v:.2}{unit}"));
        for l in &self.labels {
            let max = l.latencies.iter().copied().reduce(f64::max);
            out.push_str(&format!(
                "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                l.label,
                l.events,
                l.detected,
                opt(l.detection_rate().map(|r| r * 100.0), " %"),
                opt(l.median_latency(), " s"),
                opt(max, " s"),
                l.repeats,
                l.confusions,
                l.false_alarms,
                opt(self.false_alarms_per_hour(l.false_alarms), ""),
            ));
        }
        let total = self.false_alarms();
        out.push_str(&format!(
            "\nfalse alarms in all: {total} ({} per hour of background)\n",
            opt(self.false_alarms_per_hour(total), "")
        ));
        out
    }
}

fn label_result<'a>(
    results: &'a mut BTreeMap<String, LabelResult>,
    label: &str,
) -> &'a mut LabelResult {
    results
        .entry(label.to_string())
        .or_insert_with(|| LabelResult {
            label: label.to_string(),
            events: 0,
            detected: 0,
            latencies: Vec::new(),
            repeats: 0,
            confusions: 0,
            false_alarms: 0,
        })
}

/// Scores `alerts` against `events` under `rule` (the module notes give the rule).
pub fn score_events(
    events: &[MarkedEvent],
    alerts: &[RaisedAlert],
    duration: f64,
    rule: MatchRule,
) -> Result<EventReport, EventEvalError> {
    for (setting, value) in [("collar before", rule.before), ("collar after", rule.after)] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(EventEvalError::Setting {
                setting,
                value,
                detail: "must be a number of seconds ≥ 0",
            });
        }
    }
    let window = |e: &MarkedEvent| (e.start - rule.before, e.end + rule.after);
    let mut results: BTreeMap<String, LabelResult> = BTreeMap::new();
    for event in events {
        label_result(&mut results, &event.label).events += 1;
    }
    let mut detected_by: Vec<Option<f64>> = vec![None; events.len()];
    for alert in alerts {
        let result = label_result(&mut results, &alert.label);
        let inside = |e: &MarkedEvent| {
            let (from, to) = window(e);
            alert.at >= from && alert.at <= to
        };
        // The earliest event of the alert's label it falls in: collars of neighbours may
        // overlap, and the earlier one is the one still waiting for its alert.
        let matched = events
            .iter()
            .enumerate()
            .find(|(_, e)| e.label == alert.label && inside(e));
        match matched {
            Some((index, event)) => match detected_by[index] {
                Some(_) => result.repeats += 1,
                None => {
                    detected_by[index] = Some(alert.at);
                    result.detected += 1;
                    result.latencies.push(alert.at - event.start);
                }
            },
            None if events.iter().any(inside) => result.confusions += 1,
            None => result.false_alarms += 1,
        }
    }
    // Background: the recording minus the union of the collared events (sorted by start).
    let mut covered = 0.0;
    let mut reach = f64::NEG_INFINITY;
    for event in events {
        let (from, to) = window(event);
        let (from, to) = (from.max(0.0).max(reach), to.min(duration));
        if to > from {
            covered += to - from;
        }
        reach = reach.max(to);
    }
    Ok(EventReport {
        rule,
        duration_s: duration,
        background_s: (duration - covered).max(0.0),
        labels: results.into_values().collect(),
        detected_lines: events
            .iter()
            .zip(&detected_by)
            .filter(|(_, d)| d.is_some())
            .map(|(e, _)| e.line)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: usize, start: f64, end: f64, label: &str) -> MarkedEvent {
        MarkedEvent {
            line,
            start,
            end,
            label: label.into(),
        }
    }

    fn alert(at: f64, label: &str) -> RaisedAlert {
        RaisedAlert {
            line: 0,
            label: label.into(),
            at,
        }
    }

    #[test]
    fn detections_repeats_confusions_and_false_alarms_follow_the_rule() {
        let events = [
            event(2, 10.0, 10.5, "gunshot"),
            event(3, 30.0, 32.0, "screaming"),
            event(4, 60.0, 60.3, "gunshot"),
        ];
        let alerts = [
            alert(9.6, "gunshot"),  // inside the 0.5 s collar before: detects, latency −0.4
            alert(11.0, "gunshot"), // same event again: a repeat
            alert(31.0, "explosion"), // inside the scream: a confusion
            alert(33.9, "screaming"), // 1.9 s after the scream's end: detects, latency 3.9
            alert(62.5, "gunshot"), // 2.2 s after the shot's end: too late, a false alarm
            alert(100.0, "screaming"), // nothing near: a false alarm
        ];
        let report = score_events(&events, &alerts, 3600.0, MatchRule::default()).unwrap();
        let by = |label: &str| report.labels.iter().find(|l| l.label == label).unwrap();
        let gunshot = by("gunshot");
        assert_eq!(
            (gunshot.events, gunshot.detected, gunshot.repeats),
            (2, 1, 1)
        );
        assert_eq!(gunshot.false_alarms, 1);
        assert!((gunshot.latencies[0] + 0.4).abs() < 1e-9);
        let scream = by("screaming");
        assert_eq!((scream.detected, scream.false_alarms), (1, 1));
        assert!((scream.median_latency().unwrap() - 3.9).abs() < 1e-9);
        assert_eq!(by("explosion").confusions, 1);
        assert_eq!(report.false_alarms(), 2);
        // Collared spans: 9.5–12.5, 29.5–34, 59.5–62.3: 10.3 s in all.
        assert!(
            (report.background_s - (3600.0 - 10.3)).abs() < 1e-9,
            "{report:?}"
        );
        let text = report.render();
        assert!(text.contains("| gunshot | 2 | 1 (50.00 %)"), "{text}");
    }

    #[test]
    fn overlapping_collars_count_the_background_once_and_negative_collars_are_refused() {
        let events = [event(2, 1.0, 2.0, "shout"), event(3, 3.0, 4.0, "shout")];
        let report = score_events(&events, &[], 10.0, MatchRule::default()).unwrap();
        // 0.5–4.0 then 2.5–6.0: the union is 0.5–6.0.
        assert!((report.background_s - 4.5).abs() < 1e-9, "{report:?}");
        let bad = MatchRule {
            before: -1.0,
            after: 2.0,
        };
        let err = score_events(&events, &[], 10.0, bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("collar before = -1"), "{err}");
    }

    fn labels() -> Vec<String> {
        ["gunshot", "screaming"].map(String::from).to_vec()
    }

    fn read(text: &str) -> Result<Vec<MarkedEvent>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        std::fs::write(&path, text).unwrap();
        read_marked_events(&path, &labels(), 100.0).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_event_lists_are_refused_naming_the_line() {
        let ok = read("label,start,end\ngunshot,5,5.4\n\nscreaming,1,2\n").unwrap();
        assert_eq!(ok[0].line, 4, "sorted by time, lines kept");
        for (text, wanted) in [
            ("start,end\n1,2\n", "no `label` column"),
            (
                "start,end,label\n3,2,gunshot\n",
                "line 2: the event ends at 2 s, not after",
            ),
            (
                "start,end,label\n1,2,gunshot\n1.5,3,screaming\n",
                "line 3: the event 1.5–3 s overlaps line 2",
            ),
            (
                "start,end,label\n1,2,explosion\n",
                "line 2: unknown label \"explosion\"",
            ),
            (
                "start,end,label\n90,120,gunshot\n",
                "past the recording's end at 100 s",
            ),
            (
                "start,end,label\nsoon,2,gunshot\n",
                "start \"soon\" is not a time",
            ),
            ("start,end,label\n1,2\n", "2 fields, the header has 3"),
            ("", "empty file"),
        ] {
            let err = read(text).unwrap_err();
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }

    #[test]
    fn alerts_from_another_stream_or_model_or_past_the_end_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let record = |stream: &str, model: &str, phase: &str, pts: u64| {
            format!(
                r#"{{"id":1,"event":1,"phase":"{phase}","stream":"{stream}","model":"{model}","label":"gunshot","score":0.9,"peak":0.9,"threshold":0.5,"start_pts_ns":{pts},"pts_ns":{pts},"captured_at_ns":0,"decided_at_ns":0,"regions":[]}}"#
            )
        };
        let lines = [
            record("mic", "yamnet", "new", 2_000_000_000),
            record("mic", "yamnet", "end", 3_000_000_000),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let raised = read_raised_alerts(&path, &AlertSource::default(), 100.0).unwrap();
        assert_eq!(
            raised,
            vec![RaisedAlert {
                line: 1,
                label: "gunshot".into(),
                at: 2.0
            }]
        );
        let mixed = [lines[0].clone(), record("cam", "yamnet", "new", 1)];
        std::fs::write(&path, mixed.join("\n")).unwrap();
        let err = read_raised_alerts(&path, &AlertSource::default(), 100.0).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: an alert from stream \"cam\""),
            "{err}"
        );
        let only = AlertSource {
            stream: None,
            model: Some("mavd".into()),
        };
        let err = read_raised_alerts(&path, &only, 100.0).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: an alert from model \"yamnet\""),
            "{err}"
        );
        std::fs::write(&path, &lines[0]).unwrap();
        let err = read_raised_alerts(&path, &AlertSource::default(), 1.0).unwrap_err();
        assert!(
            err.to_string().contains("past the recording's end"),
            "{err}"
        );
        std::fs::write(&path, "{not json").unwrap();
        let err = read_raised_alerts(&path, &AlertSource::default(), 1.0).unwrap_err();
        assert!(
            err.to_string().contains("line 1: not an alert record"),
            "{err}"
        );
    }
}
