//! Live MAVD scores to violence events: hysteresis on the fused score (the shared
//! [`Tracker`]), and the modalities whose own heads fired while the event was open.
//!
//! The fused score decides; the unimodal heads only explain. A modality "fired" when its head
//! scored at or above `modality_on` on a snippet of the event (from the snippets that opened it
//! to its end), so an operator sees "audio + video" or "audio only" next to the alert.

use std::time::Duration;

use serde::Deserialize;

use super::window::SnippetScores;
use crate::decide::{Hysteresis, Tracker, Transition};

/// Decision settings of a violence stream.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViolenceSettings {
    /// Hysteresis on the fused score, one observation per snippet.
    pub fused: Hysteresis,
    /// A unimodal head at or above this during the event counts its modality as fired.
    #[serde(default = "default_modality_on")]
    pub modality_on: f32,
}

fn default_modality_on() -> f32 {
    0.5
}

impl ViolenceSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.fused.validate()?;
        if !(0.0..=1.0).contains(&self.modality_on) {
            return Err(format!(
                "modality_on {} is not a score in [0, 1]",
                self.modality_on
            ));
        }
        Ok(())
    }
}

/// Which unimodal heads fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modalities {
    pub video: bool,
    pub audio: bool,
    pub flow: bool,
}

impl Modalities {
    /// The names of those that fired, in a fixed order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.video, "video"),
            (self.audio, "audio"),
            (self.flow, "flow"),
        ]
        .into_iter()
        .filter_map(|(fired, name)| fired.then_some(name))
        .collect()
    }

    fn add(&mut self, scores: &SnippetScores, on: f32) {
        self.video |= scores.video >= on;
        self.audio |= scores.audio >= on;
        self.flow |= scores.flow >= on;
    }
}

/// One step of a violence event, with the modalities that fired so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViolenceTransition {
    pub transition: Transition,
    pub modalities: Modalities,
}

/// Follows one stream's live scores.
#[derive(Debug, Clone)]
pub struct ViolenceDecide {
    settings: ViolenceSettings,
    tracker: Tracker,
    /// Modalities of the snippets since the score last fell below `on` while idle (those that
    /// may open the event), then of the open event.
    modalities: Modalities,
}

impl ViolenceDecide {
    pub fn new(settings: ViolenceSettings) -> Result<Self, String> {
        settings.validate()?;
        Ok(Self {
            settings,
            tracker: Tracker::new(settings.fused),
            modalities: Modalities::default(),
        })
    }

    /// Feeds the live scores of the snippet spanning `start..end`.
    pub fn observe(
        &mut self,
        scores: &SnippetScores,
        start: Duration,
        end: Duration,
    ) -> Option<ViolenceTransition> {
        let was_active = self.tracker.is_active();
        // NaN is not at or above anything: a broken snippet never starts an event.
        let above_on = scores.fused >= self.settings.fused.on;
        if !was_active && !above_on {
            // Not (yet) part of an event: forget what earlier idle snippets fired.
            self.modalities = Modalities::default();
        } else {
            self.modalities.add(scores, self.settings.modality_on);
        }
        let transition = self.tracker.observe(scores.fused, start, end)?;
        let modalities = self.modalities;
        if matches!(transition, Transition::Ended { .. }) {
            self.modalities = Modalities::default();
        }
        Some(ViolenceTransition {
            transition,
            modalities,
        })
    }

    /// Ends an open event at the end of the stream.
    pub fn finish(&mut self) -> Option<ViolenceTransition> {
        let transition = self.tracker.finish()?;
        let modalities = std::mem::take(&mut self.modalities);
        Some(ViolenceTransition {
            transition,
            modalities,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(index: u64, fused: f32, video: f32, audio: f32, flow: f32) -> SnippetScores {
        SnippetScores {
            index,
            fused,
            video,
            audio,
            flow,
        }
    }

    fn span(index: u64) -> (Duration, Duration) {
        let snippet = Duration::from_millis(667);
        (snippet * index as u32, snippet * (index as u32 + 1))
    }

    #[test]
    fn an_event_opens_on_the_fused_score_and_names_the_modalities_that_fired() {
        let mut fused = Hysteresis::new(0.6, 0.3);
        fused.open_after = 2;
        let mut decide = ViolenceDecide::new(ViolenceSettings {
            fused,
            modality_on: 0.5,
        })
        .unwrap();
        let stream = [
            scores(0, 0.1, 0.9, 0.1, 0.1), // video alone, not an event: forgotten
            scores(1, 0.7, 0.2, 0.8, 0.1), // audio fires
            scores(2, 0.8, 0.2, 0.9, 0.6), // opens (2 above on): audio + flow
            scores(3, 0.5, 0.7, 0.2, 0.1), // still open: video joins
            scores(4, 0.1, 0.1, 0.1, 0.1),
            scores(5, 0.1, 0.1, 0.1, 0.1), // ends after 2 below off
        ];
        let mut transitions = Vec::new();
        for s in &stream {
            let (start, end) = span(s.index);
            transitions.extend(decide.observe(s, start, end));
        }
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        let opened = transitions[0];
        assert!(
            matches!(opened.transition, Transition::Opened { start, .. } if start == span(1).0)
        );
        assert_eq!(opened.modalities.names(), vec!["audio", "flow"]);
        let ended = transitions[1];
        assert!(matches!(ended.transition, Transition::Ended { end, .. } if end == span(3).1));
        assert_eq!(ended.modalities.names(), vec!["video", "audio", "flow"]);
        assert!(decide.finish().is_none());
    }

    #[test]
    fn an_open_event_ends_with_the_stream_and_bad_settings_are_refused() {
        let mut decide = ViolenceDecide::new(ViolenceSettings {
            fused: Hysteresis::new(0.5, 0.2),
            modality_on: 0.5,
        })
        .unwrap();
        let (start, end) = span(0);
        let opened = decide
            .observe(&scores(0, 0.9, 0.1, 0.1, 0.1), start, end)
            .unwrap();
        assert!(opened.modalities.names().is_empty());
        assert!(matches!(
            decide.finish().unwrap().transition,
            Transition::Ended { .. }
        ));
        let bad = ViolenceSettings {
            fused: Hysteresis::new(0.5, 0.2),
            modality_on: 1.5,
        };
        assert!(
            ViolenceDecide::new(bad)
                .unwrap_err()
                .contains("modality_on 1.5")
        );
        let inverted = ViolenceSettings {
            fused: Hysteresis::new(0.2, 0.5),
            modality_on: 0.5,
        };
        assert!(
            ViolenceDecide::new(inverted)
                .unwrap_err()
                .contains("above on threshold")
        );
    }
}
