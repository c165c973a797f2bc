//! RX on a push-broom stream: each line is scored as it arrives against the mean and covariance
//! of every line seen so far, updated by rank-k merges (see [`CovarianceAccumulator`]).
//!
//! The first lines cannot be scored honestly — with fewer pixels than bands the covariance is
//! singular and mostly noise — so lines are held until `warm_up_pixels` have been seen and then
//! scored together, oldest first. No line is dropped or left unscored; the cost is latency on the
//! first few lines of a flight. After the last line the statistics are exactly the batch ones, so
//! re-scoring the whole cube with [`StreamingRx::background`] gives batch global RX.

use faer::Par;

use super::HsiError;
use super::background::{Background, CovarianceAccumulator};

/// How often the streaming statistics are refactored and how long the warm-up lasts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingSettings {
    /// Pixels to accumulate before the first line is scored; 0 means twice the band count.
    pub warm_up_pixels: usize,
    /// Refactor the covariance every this many lines (1 = every line, exact causal RX). Larger
    /// values trade freshness of the statistics for B³ work per line on wide-band sensors.
    pub refresh_every_lines: usize,
}

impl Default for StreamingSettings {
    fn default() -> StreamingSettings {
        StreamingSettings {
            warm_up_pixels: 0,
            refresh_every_lines: 1,
        }
    }
}

/// One line's scores, with its index in the stream (0 = first line pushed).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredLine {
    pub index: u64,
    pub scores: Vec<f32>,
    /// Rank of the covariance the line was scored against (its χ² degrees of freedom).
    pub rank: usize,
}

/// Streaming global RX over lines of `width` pixels × `bands` bands (BIP within a line).
#[derive(Debug)]
pub struct StreamingRx {
    width: usize,
    accumulator: CovarianceAccumulator,
    background: Option<Background>,
    settings: StreamingSettings,
    lines_since_refresh: usize,
    /// Warm-up lines not scored yet, oldest first.
    pending: Vec<(u64, Vec<f32>)>,
    next_index: u64,
}

impl StreamingRx {
    pub fn new(
        width: usize,
        bands: usize,
        settings: StreamingSettings,
        par: Par,
    ) -> Result<StreamingRx, HsiError> {
        if width == 0 || bands == 0 {
            return Err(HsiError::Detector(format!(
                "a push-broom line of {width} pixels × {bands} bands is empty"
            )));
        }
        Ok(StreamingRx {
            width,
            accumulator: CovarianceAccumulator::new(bands, par),
            background: None,
            settings: StreamingSettings {
                warm_up_pixels: if settings.warm_up_pixels == 0 {
                    2 * bands
                } else {
                    settings.warm_up_pixels.max(2)
                },
                refresh_every_lines: settings.refresh_every_lines.max(1),
            },
            lines_since_refresh: 0,
            pending: Vec::new(),
            next_index: 0,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn bands(&self) -> usize {
        self.accumulator.bands()
    }

    /// Lines accepted so far.
    pub fn lines(&self) -> u64 {
        self.next_index
    }

    /// Accepts one line (BIP, `width·bands` values) and returns every line that can now be
    /// scored: nothing during warm-up, the held lines and this one when it ends, then this one.
    /// A malformed line is refused whole and changes nothing.
    pub fn push_line(&mut self, line: &[f32]) -> Result<Vec<ScoredLine>, HsiError> {
        let expected = self.width * self.bands();
        if line.len() != expected {
            return Err(HsiError::Detector(format!(
                "line {} has {} values, {} pixels × {} bands need {expected}",
                self.next_index,
                line.len(),
                self.width,
                self.bands()
            )));
        }
        // Tested whole first, without an early exit, so it vectorises; searched only if bad.
        if !line.iter().fold(true, |ok, v| ok & v.is_finite())
            && let Some(i) = line.iter().position(|v| !v.is_finite())
        {
            return Err(HsiError::Detector(format!(
                "line {}: band {} of pixel {} is not finite",
                self.next_index,
                i % self.bands(),
                i / self.bands()
            )));
        }
        self.accumulator.add(line)?;
        let index = self.next_index;
        self.next_index += 1;
        self.lines_since_refresh += 1;

        if self.accumulator.count() < self.settings.warm_up_pixels {
            self.pending.push((index, line.to_vec()));
            return Ok(Vec::new());
        }
        if self.background.is_none()
            || self.lines_since_refresh >= self.settings.refresh_every_lines
        {
            self.background = Some(self.accumulator.background()?);
            self.lines_since_refresh = 0;
        }
        let Some(background) = &self.background else {
            return Ok(Vec::new());
        };
        let rank = background.rank();
        let mut scored = Vec::with_capacity(self.pending.len() + 1);
        for (held_index, held_line) in self.pending.drain(..) {
            scored.push(ScoredLine {
                index: held_index,
                scores: background.score(&held_line)?,
                rank,
            });
        }
        scored.push(ScoredLine {
            index,
            scores: background.score(line)?,
            rank,
        });
        Ok(scored)
    }

    /// The statistics of every line accepted so far, freshly factored.
    pub fn background(&self) -> Result<Background, HsiError> {
        self.accumulator.background()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsi::background::global_rx;
    use crate::hsi::background::tests::mixed_cube;

    fn stream_all(
        cube: &crate::hsi::Cube,
        settings: StreamingSettings,
    ) -> (StreamingRx, Vec<ScoredLine>) {
        let mut rx = StreamingRx::new(cube.cols(), cube.bands(), settings, Par::Seq).unwrap();
        let mut scored = Vec::new();
        for row in 0..cube.rows() {
            scored.extend(rx.push_line(cube.line(row)).unwrap());
        }
        (rx, scored)
    }

    #[test]
    fn after_the_last_line_streaming_equals_batch_rx() {
        // A property over shapes and seeds: lines narrower and wider than the band count, warm-up
        // shorter and longer than one line, refresh every line and every third.
        for (seed, (rows, cols, bands)) in [(12, 5, 8), (20, 3, 7), (6, 40, 12), (30, 9, 4)]
            .into_iter()
            .enumerate()
        {
            let cube = mixed_cube(rows, cols, bands, 10 + seed as u64);
            let batch = global_rx(&cube, Par::Seq).unwrap();
            for refresh_every_lines in [1, 3] {
                let settings = StreamingSettings {
                    warm_up_pixels: 0,
                    refresh_every_lines,
                };
                let (rx, scored) = stream_all(&cube, settings);
                // Every line scored exactly once, in order.
                let order: Vec<u64> = scored.iter().map(|s| s.index).collect();
                assert_eq!(order, (0..rows as u64).collect::<Vec<_>>());
                let rescored = rx.background().unwrap().score(cube.data()).unwrap();
                let scale = batch.iter().fold(0.0f32, |m, &v| m.max(v));
                for (i, (s, b)) in rescored.iter().zip(&batch).enumerate() {
                    assert!(
                        (s - b).abs() <= 1e-4 * scale,
                        "{rows}×{cols}×{bands} pixel {i}: {s} against {b}"
                    );
                }
                if refresh_every_lines == 1 {
                    let last = &scored[rows - 1].scores;
                    for (s, b) in last.iter().zip(&batch[(rows - 1) * cols..]) {
                        assert!((s - b).abs() <= 1e-4 * scale);
                    }
                }
            }
        }
    }

    #[test]
    fn warm_up_lines_are_held_then_scored() {
        let cube = mixed_cube(10, 4, 6, 5);
        let mut rx = StreamingRx::new(
            4,
            6,
            StreamingSettings {
                warm_up_pixels: 14,
                refresh_every_lines: 1,
            },
            Par::Seq,
        )
        .unwrap();
        for row in 0..3 {
            assert!(
                rx.push_line(cube.line(row)).unwrap().is_empty(),
                "line {row} is inside the warm-up"
            );
        }
        let released: Vec<u64> = rx
            .push_line(cube.line(3))
            .unwrap()
            .iter()
            .map(|s| s.index)
            .collect();
        assert_eq!(released, [0, 1, 2, 3]);
        assert_eq!(rx.push_line(cube.line(4)).unwrap().len(), 1);
    }

    #[test]
    fn a_bad_line_is_refused_and_changes_nothing() {
        let cube = mixed_cube(8, 5, 4, 6);
        let (clean, _) = stream_all(&cube, StreamingSettings::default());
        let mut rx = StreamingRx::new(5, 4, StreamingSettings::default(), Par::Seq).unwrap();
        for row in 0..cube.rows() {
            if row == 4 {
                let short = rx.push_line(&cube.line(row)[..19]).unwrap_err().to_string();
                assert!(short.contains("line 4 has 19 values"), "{short}");
                let mut poisoned = cube.line(row).to_vec();
                poisoned[7] = f32::INFINITY;
                let nan = rx.push_line(&poisoned).unwrap_err().to_string();
                assert!(nan.contains("band 3 of pixel 1"), "{nan}");
            }
            rx.push_line(cube.line(row)).unwrap();
        }
        assert_eq!(rx.lines(), 8);
        let a = rx.background().unwrap().score(cube.data()).unwrap();
        let b = clean.background().unwrap().score(cube.data()).unwrap();
        assert_eq!(a, b);
    }
}
