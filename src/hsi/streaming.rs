//! RX on a push-broom stream: each line is scored against the mean and covariance of every
//! line up to and including it, updated by rank-k merges (see [`CovarianceAccumulator`]).
//!
//! A line is scored when the next one arrives, not when it arrives itself: while one core
//! reduces the new line to its scatter, the other factors the statistics through the previous
//! line and scores it. The two halves of a line's work then overlap instead of queueing, which
//! at 512 pixels × 200 bands nearly doubles the lines per second, for one line of latency.
//! [`StreamingRx::finish`] scores what is still held when the stream ends.
//!
//! The first lines cannot be scored honestly — with fewer pixels than bands the covariance is
//! singular and mostly noise — so lines are held until `warm_up_pixels` have been seen and then
//! scored together, oldest first. No line is dropped or left unscored; the cost is latency on the
//! first few lines of a flight. After the last line the statistics are exactly the batch ones, so
//! re-scoring the whole cube with [`StreamingRx::background`] gives batch global RX.

use std::collections::VecDeque;

use faer::Par;

use super::HsiError;
use super::background::{Background, BatchStatistics, CovarianceAccumulator};

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
    /// Lines accepted since `background` was factored.
    lines_since_refresh: usize,
    /// Lines accepted but not scored yet, oldest first: the warm-up, then the newest line.
    pending: VecDeque<(u64, Vec<f32>)>,
    /// A scored line's buffer, kept for the next line so a stream does not allocate per line.
    spare: Option<Vec<f32>>,
    /// Two lines' statistics, in buffers kept from line to line: `batches[newest]` is the
    /// newest line's, merged (when `unmerged`) on the scoring side of the next call, while the
    /// other buffer takes the next line.
    batches: [BatchStatistics; 2],
    newest: usize,
    unmerged: bool,
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
            pending: VecDeque::new(),
            spare: None,
            batches: Default::default(),
            newest: 0,
            unmerged: false,
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
    /// scored, oldest first: nothing during the warm-up, then the held lines together, then the
    /// previous line on each call. A malformed line is refused whole and changes nothing; so
    /// does a failure to score the held lines, which stay held.
    pub fn push_line(&mut self, line: &[f32]) -> Result<Vec<ScoredLine>, HsiError> {
        self.check(line)?;
        let seen = self.accumulator.count() + if self.unmerged { self.width } else { 0 };
        let ready = seen >= self.settings.warm_up_pixels;
        let refresh = ready
            && (self.background.is_none()
                || self.lines_since_refresh >= self.settings.refresh_every_lines);
        let reducer = self.accumulator.reducer();
        let unmerged = self.unmerged;
        let [first, second] = &mut self.batches;
        let (newest, reducing) = if self.newest == 0 {
            (&*first, second)
        } else {
            (&*second, first)
        };
        let (accumulator, background, pending) =
            (&mut self.accumulator, &mut self.background, &self.pending);
        let (reduced, (merged, scored)) = rayon::join(
            || reducer.reduce_into(line, reducing),
            || {
                if unmerged && let Err(err) = accumulator.merge_batch(newest) {
                    return (false, Err(err));
                }
                let scored = if ready {
                    score_pending(accumulator, background, refresh, pending)
                } else {
                    Ok(Vec::new())
                };
                (unmerged, scored)
            },
        );
        if merged {
            self.unmerged = false;
        }
        let scored = reduced.and(scored)?;
        self.newest = 1 - self.newest;
        self.unmerged = true;
        if refresh {
            self.lines_since_refresh = 0;
        }
        self.lines_since_refresh += 1;
        self.recycle(scored.len());
        let mut copy = self.spare.take().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(line);
        self.pending.push_back((self.next_index, copy));
        self.next_index += 1;
        Ok(scored)
    }

    /// Scores every line still held, against the statistics of all lines: call it when the
    /// stream ends. A stream that ends inside its warm-up is scored against what it has.
    pub fn finish(&mut self) -> Result<Vec<ScoredLine>, HsiError> {
        if self.unmerged {
            self.accumulator.merge_batch(&self.batches[self.newest])?;
            self.unmerged = false;
        }
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let scored = score_pending(
            &self.accumulator,
            &mut self.background,
            self.lines_since_refresh > 0,
            &self.pending,
        )?;
        self.lines_since_refresh = 0;
        self.recycle(scored.len());
        Ok(scored)
    }

    /// The statistics of every line accepted so far, freshly factored.
    pub fn background(&self) -> Result<Background, HsiError> {
        if !self.unmerged {
            return self.accumulator.background();
        }
        let mut all = self.accumulator.clone();
        all.merge_batch(&self.batches[self.newest])?;
        all.background()
    }

    fn check(&self, line: &[f32]) -> Result<(), HsiError> {
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
        Ok(())
    }

    /// Drops the `scored` oldest held lines, keeping one buffer for the next line.
    fn recycle(&mut self, scored: usize) {
        for _ in 0..scored {
            if let Some((_, buffer)) = self.pending.pop_front() {
                self.spare = Some(buffer);
            }
        }
    }
}

/// Scores the held lines against `accumulator`'s statistics, refactored first when `refresh`
/// (or never factored). Leaves `pending` as it was: the caller drops what was scored.
fn score_pending(
    accumulator: &CovarianceAccumulator,
    background: &mut Option<Background>,
    refresh: bool,
    pending: &VecDeque<(u64, Vec<f32>)>,
) -> Result<Vec<ScoredLine>, HsiError> {
    if refresh || background.is_none() {
        *background = Some(accumulator.refactor(background.take())?);
    }
    let Some(background) = background else {
        return Ok(Vec::new());
    };
    let rank = background.rank();
    pending
        .iter()
        .map(|(index, line)| {
            Ok(ScoredLine {
                index: *index,
                scores: background.score(line)?,
                rank,
            })
        })
        .collect()
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
        scored.extend(rx.finish().unwrap());
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
        // 4 pixels a line: the warm-up ends with line 3, whose statistics score lines 0–3
        // when line 4 arrives; from then on each line is scored when the next one comes.
        for row in 0..4 {
            assert!(
                rx.push_line(cube.line(row)).unwrap().is_empty(),
                "line {row} is inside the warm-up or not followed yet"
            );
        }
        let released: Vec<u64> = rx
            .push_line(cube.line(4))
            .unwrap()
            .iter()
            .map(|s| s.index)
            .collect();
        assert_eq!(released, [0, 1, 2, 3]);
        let next: Vec<u64> = rx
            .push_line(cube.line(5))
            .unwrap()
            .iter()
            .map(|s| s.index)
            .collect();
        assert_eq!(next, [4]);
        let last: Vec<u64> = rx.finish().unwrap().iter().map(|s| s.index).collect();
        assert_eq!(last, [5]);
        assert!(
            rx.finish().unwrap().is_empty(),
            "finish scores each line once"
        );
    }

    #[test]
    fn each_line_is_scored_against_the_lines_up_to_it() {
        // Exact causal RX: line n's scores are batch RX scores under the statistics of lines
        // 0..=n, whatever the one-line pipelining does with timing.
        let cube = mixed_cube(9, 6, 5, 3);
        let (_, scored) = stream_all(&cube, StreamingSettings::default());
        for line in &scored {
            let n = line.index as usize;
            // Warm-up lines share the statistics of the line that ends the warm-up.
            let mut prefix = CovarianceAccumulator::new(cube.bands(), Par::Seq);
            for row in 0..cube.rows() {
                prefix.add(cube.line(row)).unwrap();
                if prefix.count() >= 2 * cube.bands() && row >= n {
                    break;
                }
            }
            let want = prefix.background().unwrap().score(cube.line(n)).unwrap();
            for (got, want) in line.scores.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "line {n}: {got} against {want}"
                );
            }
        }
    }

    #[test]
    fn a_stream_that_ends_inside_its_warm_up_is_still_scored() {
        let cube = mixed_cube(3, 4, 6, 8);
        let mut rx = StreamingRx::new(4, 6, StreamingSettings::default(), Par::Seq).unwrap();
        for row in 0..3 {
            assert!(rx.push_line(cube.line(row)).unwrap().is_empty());
        }
        let scored = rx.finish().unwrap();
        assert_eq!(
            scored.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // 12 pixels of 6 bands: full rank, but only just.
        assert!(
            scored
                .iter()
                .all(|s| s.scores.iter().all(|v| v.is_finite()))
        );
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
