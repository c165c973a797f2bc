//! Class scores to alerts: each alert label is a group of AudioSet classes (a gunshot is
//! "Gunshot, gunfire", "Machine gun", …); the group's score is its best class's.

use serde::Deserialize;

use super::labels::{ClassMap, LabelError};
use super::model::ClassScores;
use crate::alert::{Alert, Name};
use crate::capture::Stamp;
use crate::decide::{AlertFactory, Hysteresis, NameTooLong, Tracker, name};
use crate::pipeline::Decide;

/// One alert label, the AudioSet classes that raise it, and its thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventClass {
    pub label: String,
    pub classes: Vec<String>,
    /// Score at which an event opens.
    pub on: f32,
    /// Score below which it ends.
    pub off: f32,
    #[serde(default)]
    pub open_after: Option<u32>,
    #[serde(default)]
    pub close_after: Option<u32>,
    #[serde(default)]
    pub update_interval_ms: Option<u64>,
}

impl EventClass {
    pub fn hysteresis(&self) -> Hysteresis {
        let mut h = Hysteresis::new(self.on, self.off);
        h.open_after = self.open_after.unwrap_or(h.open_after);
        h.close_after = self.close_after.unwrap_or(h.close_after);
        h.update_interval_ms = self.update_interval_ms.unwrap_or(h.update_interval_ms);
        h
    }
}

/// What a surveillance box listens for; profiles may replace the list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioEventsSettings {
    /// Absent: every default label, opening at the model's manifest threshold.
    #[serde(default)]
    pub events: Option<Vec<EventClass>>,
    /// 10 ms frames between the starts of consecutive 0.96 s patches (default 48: 0.48 s, as
    /// YAMNet was trained). A finer hop sees short sounds more centred in some patch, at the
    /// cost of one YAMNet run per hop; `open_after` and `close_after` count patches.
    #[serde(default)]
    pub patch_hop_frames: Option<usize>,
}

impl AudioEventsSettings {
    /// YAMNet's front end with this stream's patch hop; a hop outside 1–96 frames is refused.
    pub fn log_mel(&self) -> Result<crate::prepare::mel::LogMelConfig, String> {
        let mut config = crate::prepare::mel::LogMelConfig::yamnet();
        if let Some(hop) = self.patch_hop_frames {
            if hop == 0 || hop > config.patch_frames {
                return Err(format!(
                    "patch_hop_frames = {hop}: expected 1 to {} frames of 10 ms",
                    config.patch_frames
                ));
            }
            config.patch_hop_frames = hop;
        }
        Ok(config)
    }

    /// The events to watch: the profile's list, or the defaults at `threshold` (the model's
    /// manifest threshold), ending below half of it.
    pub fn events_or_defaults(&self, threshold: f32) -> Vec<EventClass> {
        self.events
            .clone()
            .unwrap_or_else(|| default_events(threshold))
    }
}

fn event(label: &str, classes: &[&str], threshold: f32) -> EventClass {
    EventClass {
        label: label.into(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        on: threshold,
        off: threshold / 2.0,
        open_after: None,
        close_after: None,
        update_interval_ms: None,
    }
}

/// The labels a surveillance box's audio stream raises by default.
pub fn default_labels() -> Vec<String> {
    default_events(0.0).into_iter().map(|e| e.label).collect()
}

fn default_events(threshold: f32) -> Vec<EventClass> {
    vec![
        event(
            "gunshot",
            &[
                "Gunshot, gunfire",
                "Machine gun",
                "Fusillade",
                "Artillery fire",
                "Cap gun",
            ],
            threshold,
        ),
        event(
            "explosion",
            &["Explosion", "Burst, pop", "Eruption", "Boom"],
            threshold,
        ),
        event("screaming", &["Screaming"], threshold),
        event("shout", &["Shout", "Yell", "Children shouting"], threshold),
        event(
            "glass_breaking",
            &["Glass", "Shatter", "Chink, clink"],
            threshold,
        ),
        // Blows in a fight: what AudioSet calls the sound of one thing striking another.
        event(
            "impact",
            &[
                "Slap, smack",
                "Whack, thwack",
                "Thump, thud",
                "Smash, crash",
            ],
            threshold,
        ),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error(transparent)]
    Name(#[from] NameTooLong),
    #[error("event {label}: {detail}")]
    Event { label: String, detail: String },
}

struct Group {
    label: Name,
    classes: Vec<usize>,
    threshold: f32,
    tracker: Tracker,
    event: u64,
    /// The group's score on the last patch.
    score: f32,
}

pub struct AudioEventsDecide {
    groups: Vec<Group>,
    factory: AlertFactory,
    last: Option<Stamp>,
}

impl AudioEventsDecide {
    pub fn new(
        stream: &str,
        model: &str,
        events: &[EventClass],
        classes: &ClassMap,
    ) -> Result<Self, SettingsError> {
        let mut groups = Vec::new();
        for event in events {
            let bad = |detail: String| SettingsError::Event {
                label: event.label.clone(),
                detail,
            };
            let hysteresis = event.hysteresis();
            hysteresis.validate().map_err(bad)?;
            if event.classes.is_empty() {
                return Err(bad("names no AudioSet class".into()));
            }
            let indices = event
                .classes
                .iter()
                .map(|c| classes.index(c))
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(Group {
                label: name("alert label", &event.label)?,
                classes: indices,
                threshold: hysteresis.on,
                tracker: Tracker::new(hysteresis),
                event: 0,
                score: f32::NAN,
            });
        }
        Ok(Self {
            groups,
            factory: AlertFactory::new(stream, model)?,
            last: None,
        })
    }
}

impl Decide for AudioEventsDecide {
    type Input = ClassScores;

    fn decide(&mut self, stamp: Stamp, scores: ClassScores, emit: &mut dyn FnMut(Alert)) {
        // Alerts carry the patch's stream time, not the block's: that is when the sound was.
        let at = Stamp {
            pts: scores.end,
            ..stamp
        };
        for group in &mut self.groups {
            let score = group
                .classes
                .iter()
                .filter_map(|&c| scores.scores.get(c).copied())
                .fold(f32::NAN, f32::max);
            group.score = score;
            if let Some(transition) = group.tracker.observe(score, scores.start, scores.end) {
                emit(self.factory.make(
                    &group.label,
                    &mut group.event,
                    group.threshold,
                    transition,
                    &at,
                    &[],
                ));
            }
        }
        self.last = Some(at);
    }

    fn scores(&self) -> Vec<(Name, f32)> {
        self.groups
            .iter()
            .map(|g| (g.label.clone(), g.score))
            .collect()
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Alert)) {
        let Some(last) = self.last else { return };
        for group in &mut self.groups {
            if let Some(transition) = group.tracker.finish() {
                emit(self.factory.make(
                    &group.label,
                    &mut group.event,
                    group.threshold,
                    transition,
                    &last,
                    &[],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_events_open_at_the_manifest_threshold() {
        let events = AudioEventsSettings::default().events_or_defaults(0.6);
        assert!(events.iter().any(|e| e.label == "gunshot"));
        assert!(
            events.iter().all(|e| e.on == 0.6 && e.off == 0.3),
            "{events:?}"
        );
        let chosen = AudioEventsSettings {
            events: Some(vec![event("x", &["Speech"], 0.9)]),
            patch_hop_frames: None,
        };
        assert_eq!(
            chosen.events_or_defaults(0.6)[0].on,
            0.9,
            "a profile's list wins"
        );
    }

    #[test]
    fn a_patch_hop_outside_one_patch_is_refused_by_name() {
        let hop = |frames| AudioEventsSettings {
            events: None,
            patch_hop_frames: Some(frames),
        };
        assert_eq!(
            AudioEventsSettings::default().log_mel().unwrap(),
            crate::prepare::mel::LogMelConfig::yamnet()
        );
        assert_eq!(hop(24).log_mel().unwrap().patch_hop_frames, 24);
        for bad in [0, 97] {
            let err = hop(bad).log_mel().unwrap_err();
            assert!(err.contains("patch_hop_frames"), "{err}");
        }
    }
}
