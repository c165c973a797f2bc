//! The three model-specific stages a pipeline runs between a source and the alert bus. Each
//! model family implements them; the pipeline gives each its own thread.

use crate::alert::Alert;
use crate::capture::{Sample, Stamp};

/// A stage met data it cannot use. The pipeline logs it, counts it and goes on with the next
/// message: one bad frame must not stop a camera.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {detail}")]
pub struct StageError {
    pub stage: &'static str,
    pub detail: String,
}

/// Sensor data to model inputs; may emit zero, one or several inputs per sample (an audio
/// block completes a patch now and then; a frame gives one tensor).
pub trait Prepare: Send + 'static {
    type Output: Send + 'static;
    /// Emits each ready input with the stamp of the newest sample it contains.
    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, Self::Output),
    ) -> Result<(), StageError>;
    /// The stream ended: emit what is still held and complete enough to use (a snippet that
    /// was waiting for audio that will not come), stamped with `last`, the newest sample's
    /// stamp.
    fn finish(&mut self, _last: Stamp, _emit: &mut dyn FnMut(Stamp, Self::Output)) {}
}

/// Model inputs to scores, on a tract plan.
pub trait Detect: Send + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;
    fn detect(&mut self, input: Self::Input) -> Result<Self::Output, StageError>;
    /// The stream ended: score what is still held (a partial block), if anything.
    fn finish(&mut self) -> Result<Option<Self::Output>, StageError> {
        Ok(None)
    }
}

/// Scores to alerts.
pub trait Decide: Send + 'static {
    type Input: Send + 'static;
    fn decide(&mut self, stamp: Stamp, input: Self::Input, emit: &mut dyn FnMut(Alert));
    /// The stream ended: close what is open.
    fn finish(&mut self, emit: &mut dyn FnMut(Alert));
    /// The score of each alert label for the input last decided on (what the GStreamer element
    /// attaches to buffers); empty for families that score pixels or lines, not labels.
    fn scores(&self) -> Vec<(crate::alert::Name, f32)> {
        Vec::new()
    }
}
