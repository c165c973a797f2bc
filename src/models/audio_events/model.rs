//! YAMNet on tract: a quantized patch in, AudioSet class scores and the embedding out.

use std::time::Duration;

use tract_onnx::prelude::Tensor;

use super::prepare::MelPatch;
use crate::detector::{Plan, Session};
use crate::pipeline::{Detect, StageError};

/// Scores of one patch.
#[derive(Debug, Clone)]
pub struct ClassScores {
    /// Sigmoid of the dequantized logits, one per AudioSet class.
    pub scores: Vec<f32>,
    /// The 1024-d embedding before the classifier (what the violence model consumes).
    pub embedding: Vec<f32>,
    pub start: Duration,
    pub end: Duration,
}

pub struct YamnetDetector {
    session: Session,
    logits: Vec<u8>,
    logit_scale: f32,
    logit_zero_point: f32,
    embedding_output: usize,
}

fn stage_error(detail: String) -> StageError {
    StageError {
        stage: "detect audio events",
        detail,
    }
}

impl YamnetDetector {
    pub fn new(plan: &Plan) -> Result<Self, StageError> {
        let spec = plan.spec();
        let (_, scores) = spec.output("class_scores").ok_or_else(|| {
            stage_error(format!("model {} has no class_scores output", spec.name))
        })?;
        let (Some(scale), Some(zero_point)) = (scores.scale, scores.zero_point) else {
            return Err(stage_error(
                "class_scores output lacks scale or zero_point".into(),
            ));
        };
        let classes = scores.shape.iter().product();
        let (embedding_output, _) = spec
            .output("embedding")
            .ok_or_else(|| stage_error(format!("model {} has no embedding output", spec.name)))?;
        let session = plan.session().map_err(|err| stage_error(err.to_string()))?;
        Ok(Self {
            session,
            logits: vec![0; classes],
            logit_scale: scale,
            logit_zero_point: zero_point as f32,
            embedding_output,
        })
    }

    /// Runs one patch; public for parity tests and benchmarks that bypass the pipeline.
    pub fn run(&mut self, patch: &MelPatch) -> Result<ClassScores, StageError> {
        let shape = self.session.spec().inputs[0].shape.clone();
        let input = Tensor::from_shape(&shape, &patch.quantized)
            .map_err(|err| stage_error(format!("{err:#}")))?;
        let outputs = self
            .session
            .run(vec![input])
            .map_err(|err| stage_error(err.to_string()))?;
        self.session
            .read_u8(&outputs, 0, &mut self.logits)
            .map_err(|err| stage_error(err.to_string()))?;
        let mut embedding = vec![
            0.0;
            self.session.spec().outputs[self.embedding_output]
                .shape
                .iter()
                .product()
        ];
        self.session
            .read_f32(&outputs, self.embedding_output, &mut embedding)
            .map_err(|err| stage_error(err.to_string()))?;
        let scores = self
            .logits
            .iter()
            .map(|&q| {
                let logit = self.logit_scale * (f32::from(q) - self.logit_zero_point);
                1.0 / (1.0 + (-logit).exp())
            })
            .collect();
        Ok(ClassScores {
            scores,
            embedding,
            start: patch.start,
            end: patch.end,
        })
    }

    /// The raw quantized logits of the last run (what onnxruntime returns, for parity).
    pub fn last_logits(&self) -> &[u8] {
        &self.logits
    }
}

impl Detect for YamnetDetector {
    type Input = MelPatch;
    type Output = ClassScores;

    fn detect(&mut self, input: MelPatch) -> Result<ClassScores, StageError> {
        self.run(&input)
    }
}
