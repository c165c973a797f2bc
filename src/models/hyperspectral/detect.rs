//! Streaming RX as a pipeline stage: a line in, the lines that can now be scored out.

use faer::Par;

use crate::capture::pushbroom::SpectralLine;
use crate::hsi::streaming::{ScoredLine, StreamingRx, StreamingSettings};
use crate::pipeline::{Detect, StageError};

/// A scored line with what the decide stage needs to place it (its values left behind).
#[derive(Debug, Clone)]
pub struct LineScores {
    pub scored: ScoredLine,
    pub line: SpectralLine,
}

pub struct StreamingRxDetect {
    settings: StreamingSettings,
    par: Par,
    rx: Option<StreamingRx>,
    /// Lines not scored yet (without their values, which StreamingRx keeps), so that
    /// their stamps and map info travel with their scores.
    held: std::collections::VecDeque<SpectralLine>,
}

impl StreamingRxDetect {
    pub fn new(settings: StreamingSettings, threads: usize) -> StreamingRxDetect {
        StreamingRxDetect {
            settings,
            par: if threads <= 1 {
                Par::Seq
            } else {
                Par::rayon(threads)
            },
            rx: None,
            held: std::collections::VecDeque::new(),
        }
    }

    /// Scores come back oldest first, one per held line.
    fn pair(&mut self, scored: Vec<ScoredLine>) -> Result<Vec<LineScores>, StageError> {
        let mut out = Vec::with_capacity(scored.len());
        for scored in scored {
            let Some(line) = self.held.pop_front() else {
                return Err(StageError {
                    stage: "detect",
                    detail: format!("line {} was scored but never held", scored.index),
                });
            };
            out.push(LineScores { scored, line });
        }
        Ok(out)
    }
}

impl Detect for StreamingRxDetect {
    type Input = SpectralLine;
    type Output = Vec<LineScores>;

    fn detect(&mut self, line: SpectralLine) -> Result<Vec<LineScores>, StageError> {
        let failed = |err: crate::hsi::HsiError| StageError {
            stage: "detect",
            detail: err.to_string(),
        };
        let rx = match &mut self.rx {
            Some(rx) => rx,
            None => self.rx.insert(
                StreamingRx::new(line.width, line.bands, self.settings, self.par)
                    .map_err(failed)?,
            ),
        };
        let scored = rx.push_line(&line.values).map_err(failed)?;
        // The statistics have the values now; what travels on to decide is where the line is.
        self.held.push_back(SpectralLine {
            values: Vec::new(),
            ..line
        });
        self.pair(scored)
    }

    /// The lines still held when the stream ends, scored against all of it.
    fn finish(&mut self) -> Result<Option<Vec<LineScores>>, StageError> {
        let Some(rx) = &mut self.rx else {
            return Ok(None);
        };
        let scored = rx.finish().map_err(|err| StageError {
            stage: "detect",
            detail: err.to_string(),
        })?;
        if scored.is_empty() {
            return Ok(None);
        }
        self.pair(scored).map(Some)
    }
}
