//! Two thresholds and two persistence counts, the classic way to debounce a detector.

use std::time::Duration;

use serde::Deserialize;

/// When an event opens, updates and ends.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hysteresis {
    /// A score at or above this opens an event…
    pub on: f32,
    /// …which ends once the score stays below this (≤ `on`).
    pub off: f32,
    /// Consecutive windows at or above `on` needed to open.
    #[serde(default = "one")]
    pub open_after: u32,
    /// Consecutive windows below `off` needed to end.
    #[serde(default = "two")]
    pub close_after: u32,
    /// An open event reports a higher peak at most this often.
    #[serde(default = "default_update_ms")]
    pub update_interval_ms: u64,
}

fn one() -> u32 {
    1
}

fn two() -> u32 {
    2
}

fn default_update_ms() -> u64 {
    1_000
}

impl Hysteresis {
    pub fn new(on: f32, off: f32) -> Self {
        Self {
            on,
            off,
            open_after: 1,
            close_after: 2,
            update_interval_ms: default_update_ms(),
        }
    }

    /// Refuses settings under which events could never open or never end.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.on.is_finite() && self.off.is_finite()) {
            return Err(format!(
                "thresholds must be finite numbers (on {}, off {})",
                self.on, self.off
            ));
        }
        if self.off > self.on {
            return Err(format!(
                "off threshold {} is above on threshold {}",
                self.off, self.on
            ));
        }
        if self.open_after == 0 || self.close_after == 0 {
            return Err("open_after and close_after must be at least 1".into());
        }
        Ok(())
    }
}

/// What one observation did to the tracked event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// An event opened; `start` is the stream time of its first window above `on`.
    Opened { start: Duration, score: f32 },
    /// The open event reached a higher peak.
    Updated {
        start: Duration,
        score: f32,
        peak: f32,
    },
    /// The event ended; `end` is the end of its last window at or above `off`.
    Ended {
        start: Duration,
        end: Duration,
        peak: f32,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle {
        above: u32,
        first_above: Duration,
    },
    Active {
        start: Duration,
        peak: f32,
        reported_peak: f32,
        last_report: Duration,
        below: u32,
        last_high_end: Duration,
    },
}

/// Tracks one label on one stream.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: Hysteresis,
    state: State,
}

impl Tracker {
    pub fn new(config: Hysteresis) -> Self {
        Self {
            config,
            state: State::Idle {
                above: 0,
                first_above: Duration::ZERO,
            },
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// Feeds the score of the window spanning stream times `at..end`. NaN scores count as
    /// below `off`: a broken window must never hold an event open or open one.
    pub fn observe(&mut self, score: f32, at: Duration, end: Duration) -> Option<Transition> {
        let score_or_floor = if score.is_nan() {
            f32::NEG_INFINITY
        } else {
            score
        };
        let config = self.config;
        match &mut self.state {
            State::Idle { above, first_above } => {
                if score_or_floor >= config.on {
                    if *above == 0 {
                        *first_above = at;
                    }
                    *above += 1;
                    if *above >= config.open_after {
                        let start = *first_above;
                        self.state = State::Active {
                            start,
                            peak: score,
                            reported_peak: score,
                            last_report: at,
                            below: 0,
                            last_high_end: end,
                        };
                        return Some(Transition::Opened { start, score });
                    }
                } else {
                    *above = 0;
                }
                None
            }
            State::Active {
                start,
                peak,
                reported_peak,
                last_report,
                below,
                last_high_end,
            } => {
                if score_or_floor < config.off {
                    *below += 1;
                    if *below >= config.close_after {
                        let ended = Transition::Ended {
                            start: *start,
                            end: *last_high_end,
                            peak: *peak,
                        };
                        self.state = State::Idle {
                            above: 0,
                            first_above: Duration::ZERO,
                        };
                        return Some(ended);
                    }
                    return None;
                }
                *below = 0;
                *last_high_end = end;
                if score_or_floor > *peak {
                    *peak = score_or_floor;
                }
                let interval = Duration::from_millis(config.update_interval_ms);
                if *peak > *reported_peak && at.saturating_sub(*last_report) >= interval {
                    *reported_peak = *peak;
                    *last_report = at;
                    return Some(Transition::Updated {
                        start: *start,
                        score,
                        peak: *peak,
                    });
                }
                None
            }
        }
    }

    /// Ends an open event when its stream ends.
    pub fn finish(&mut self) -> Option<Transition> {
        let State::Active {
            start,
            peak,
            last_high_end,
            ..
        } = self.state
        else {
            return None;
        };
        self.state = State::Idle {
            above: 0,
            first_above: Duration::ZERO,
        };
        Some(Transition::Ended {
            start,
            end: last_high_end,
            peak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn run(tracker: &mut Tracker, scores: &[f32]) -> Vec<Transition> {
        scores
            .iter()
            .enumerate()
            .filter_map(|(i, s)| tracker.observe(*s, ms(i as u64 * 500), ms(i as u64 * 500 + 960)))
            .collect()
    }

    #[test]
    fn a_flickering_score_opens_one_event() {
        let mut t = Tracker::new(Hysteresis::new(0.5, 0.3));
        // Dips to 0.4 are between the thresholds: they neither end nor re-open the event.
        let transitions = run(&mut t, &[0.1, 0.6, 0.4, 0.6, 0.4, 0.6, 0.2, 0.1, 0.1]);
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        assert!(matches!(transitions[0], Transition::Opened { start, .. } if start == ms(500)));
        // It ends with the last window still above `off` (the 0.6 at 2.5 s, ending at 3.46 s).
        assert!(
            matches!(transitions[1], Transition::Ended { start, end, .. } if start == ms(500) && end == ms(3460))
        );
    }

    #[test]
    fn one_low_window_does_not_end_an_event() {
        let mut t = Tracker::new(Hysteresis::new(0.5, 0.3));
        let transitions = run(&mut t, &[0.9, 0.1, 0.9, 0.1, 0.9]);
        assert_eq!(transitions.len(), 1);
        assert!(t.is_active());
    }

    #[test]
    fn open_after_requires_consecutive_windows() {
        let mut config = Hysteresis::new(0.5, 0.3);
        config.open_after = 3;
        let mut t = Tracker::new(config);
        assert!(run(&mut t, &[0.9, 0.9, 0.1, 0.9, 0.9]).is_empty());
        assert!(
            matches!(t.observe(0.9, ms(2500), ms(3460)), Some(Transition::Opened { start, .. }) if start == ms(1500))
        );
    }

    #[test]
    fn updates_report_new_peaks_at_most_once_per_interval() {
        let mut t = Tracker::new(Hysteresis::new(0.5, 0.3));
        let scores: Vec<f32> = (0..10).map(|i| 0.5 + i as f32 * 0.05).collect();
        let transitions = run(&mut t, &scores);
        let updates = transitions
            .iter()
            .filter(|t| matches!(t, Transition::Updated { .. }))
            .count();
        // 10 windows of 0.5 s with a rising score: the first opens, then one update per second.
        assert_eq!(updates, 4, "{transitions:?}");
    }

    #[test]
    fn nan_never_opens_and_counts_as_low() {
        let mut t = Tracker::new(Hysteresis::new(0.5, 0.3));
        assert!(run(&mut t, &[f32::NAN, f32::NAN]).is_empty());
        t.observe(0.9, ms(0), ms(960));
        t.observe(f32::NAN, ms(500), ms(1460));
        assert!(
            matches!(t.observe(f32::NAN, ms(1000), ms(1960)), Some(Transition::Ended { end, .. }) if end == ms(960))
        );
    }

    #[test]
    fn finish_closes_an_open_event() {
        let mut t = Tracker::new(Hysteresis::new(0.5, 0.3));
        t.observe(0.9, ms(0), ms(960));
        assert!(matches!(t.finish(), Some(Transition::Ended { end, .. }) if end == ms(960)));
        assert!(t.finish().is_none());
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(Hysteresis::new(0.3, 0.5).validate().is_err());
        assert!(Hysteresis::new(f32::NAN, 0.1).validate().is_err());
        let mut c = Hysteresis::new(0.5, 0.3);
        c.close_after = 0;
        assert!(c.validate().is_err());
        assert!(Hysteresis::new(0.5, 0.3).validate().is_ok());
    }
}
