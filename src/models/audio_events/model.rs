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
    /// A head learned on the embedding (`vigil-train audio-events fit`): its sigmoid scores
    /// follow the 521 AudioSet scores.
    head: Option<Session>,
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
            head: None,
            logits: vec![0; classes],
            logit_scale: scale,
            logit_zero_point: zero_point as f32,
            embedding_output,
        })
    }

    /// YAMNet followed by a head that maps its 1024-d embedding to logits (one f32 input of
    /// the embedding's width, one f32 output).
    pub fn with_head(plan: &Plan, head: &Plan) -> Result<Self, StageError> {
        let mut detector = Self::new(plan)?;
        let width: usize = plan.spec().outputs[detector.embedding_output]
            .shape
            .iter()
            .product();
        let spec = head.spec();
        let fits = spec.inputs.len() == 1
            && spec.inputs[0].shape.iter().product::<usize>() == width
            && spec.outputs.len() == 1;
        if !fits {
            return Err(stage_error(format!(
                "head {} must take one {width}-wide embedding and give one output; it takes {:?}",
                spec.name,
                spec.inputs.iter().map(|t| &t.shape).collect::<Vec<_>>()
            )));
        }
        detector.head = Some(head.session().map_err(|err| stage_error(err.to_string()))?);
        Ok(detector)
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
        let mut scores: Vec<f32> = self
            .logits
            .iter()
            .map(|&q| sigmoid(self.logit_scale * (f32::from(q) - self.logit_zero_point)))
            .collect();
        if let Some(head) = &mut self.head {
            let shape = head.spec().inputs[0].shape.clone();
            let input = Tensor::from_shape(&shape, &embedding)
                .map_err(|err| stage_error(format!("{err:#}")))?;
            let outputs = head
                .run(vec![input])
                .map_err(|err| stage_error(err.to_string()))?;
            let mut logits = vec![0.0; head.spec().outputs[0].shape.iter().product()];
            head.read_f32(&outputs, 0, &mut logits)
                .map_err(|err| stage_error(err.to_string()))?;
            scores.extend(logits.into_iter().map(sigmoid));
        }
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

fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

impl Detect for YamnetDetector {
    type Input = MelPatch;
    type Output = ClassScores;

    fn detect(&mut self, input: MelPatch) -> Result<ClassScores, StageError> {
        self.run(&input)
    }
}
