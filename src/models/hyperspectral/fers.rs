//! FERS-edge as a pipeline stage: push-broom lines gathered into blocks one model tile deep,
//! each block mapped by the model and scored by the fused detector, then handed on line by
//! line. A block is FERS's scene: it is normalised and its RX statistics are taken over it,
//! so a scene replayed line by line scores as `vigil hsi --detector fers` scores its blocks.

use crate::capture::pushbroom::SpectralLine;
use crate::hsi::Cube;
use crate::hsi::fers::FersEdge;
use crate::hsi::streaming::ScoredLine;
use crate::pipeline::{Detect, StageError};

use super::detect::LineScores;

pub struct FersBlockDetect {
    model: FersEdge,
    threads: usize,
    block: Vec<SpectralLine>,
}

impl FersBlockDetect {
    pub fn new(model: FersEdge, threads: usize) -> FersBlockDetect {
        FersBlockDetect {
            model,
            threads,
            block: Vec::new(),
        }
    }

    /// Scores the block held so far and empties it.
    fn score_block(&mut self) -> Result<Vec<LineScores>, StageError> {
        let lines = std::mem::take(&mut self.block);
        let Some(first) = lines.first() else {
            return Ok(Vec::new());
        };
        let (width, bands) = (first.width, first.bands);
        let mut values = Vec::with_capacity(lines.len() * width * bands);
        for line in &lines {
            values.extend_from_slice(&line.values);
        }
        let scores = Cube::from_bip(lines.len(), width, bands, values)
            .and_then(|cube| self.model.score(&cube, self.threads))
            .map_err(detect_error)?;
        Ok(lines
            .into_iter()
            .zip(scores.chunks(width))
            .map(|(line, scores)| LineScores {
                scored: ScoredLine {
                    index: line.index,
                    scores: scores.to_vec(),
                    // FERS-edge thresholds empirically; the rank is the model's bands.
                    rank: self.model.bands(),
                },
                line: SpectralLine {
                    values: Vec::new(),
                    ..line
                },
            })
            .collect())
    }
}

fn detect_error(err: impl std::fmt::Display) -> StageError {
    StageError {
        stage: "detect",
        detail: err.to_string(),
    }
}

impl Detect for FersBlockDetect {
    type Input = SpectralLine;
    type Output = Vec<LineScores>;

    fn detect(&mut self, line: SpectralLine) -> Result<Vec<LineScores>, StageError> {
        if line.bands < self.model.bands() {
            return Err(detect_error(format!(
                "line {} has {} bands, FERS-edge reads {}",
                line.index,
                line.bands,
                self.model.bands()
            )));
        }
        let mut done = Vec::new();
        if let Some(first) = self.block.first()
            && (first.width, first.bands) != (line.width, line.bands)
        {
            // A new geometry starts a new block; the old one is scored as it stands.
            done = self.score_block()?;
        }
        self.block.push(line);
        if self.block.len() >= self.model.tile() {
            done.extend(self.score_block()?);
        }
        Ok(done)
    }

    fn finish(&mut self) -> Result<Option<Vec<LineScores>>, StageError> {
        if self.block.is_empty() {
            return Ok(None);
        }
        self.score_block().map(Some)
    }
}

/// The detector of a hyperspectral stream.
// One per stream, built once and moved into its thread: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum HyperspectralDetect {
    StreamingRx(super::StreamingRxDetect),
    Fers(FersBlockDetect),
}

impl Detect for HyperspectralDetect {
    type Input = SpectralLine;
    type Output = Vec<LineScores>;

    fn detect(&mut self, line: SpectralLine) -> Result<Vec<LineScores>, StageError> {
        match self {
            HyperspectralDetect::StreamingRx(rx) => rx.detect(line),
            HyperspectralDetect::Fers(fers) => fers.detect(line),
        }
    }

    fn finish(&mut self) -> Result<Option<Vec<LineScores>>, StageError> {
        match self {
            HyperspectralDetect::StreamingRx(rx) => rx.finish(),
            HyperspectralDetect::Fers(fers) => fers.finish(),
        }
    }
}
