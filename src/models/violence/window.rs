//! Scoring a live stream with MAVD: a sliding window of the last `capacity` snippets.
//!
//! The paper's attention spans the whole video, so a snippet's score depends on snippets that
//! come after it. Live, [`StreamingScorer`] keeps the last `capacity` snippets and rescores
//! the window on every new one, giving two scores per snippet:
//!
//! - **live**: its score when it is the newest in the window (no look-ahead), which alerts use;
//! - **settled**: its score in the last window that holds it, where it is the oldest and has
//!   seen `capacity − 1` snippets after it (or, at the end of the stream, whatever came
//!   after). With a window at least as long as the video, every settled score comes from one
//!   window over the whole video: the offline scores of the paper.

use std::collections::VecDeque;
use std::path::Path;

use tract_onnx::prelude::*;

use super::kernel::padded_distance_kernel;

/// The window graph's inputs (in this order) and outputs, as `vigil-train mavd export` names
/// them.
pub const VIDEO_INPUT: &str = "video";
pub const AUDIO_INPUT: &str = "audio";
pub const FLOW_INPUT: &str = "flow";
pub const KEY_BIAS_INPUT: &str = "key_bias";
pub const LOCAL_KERNEL_INPUT: &str = "local_kernel";
pub const FUSED_SCORE: &str = "fused";
pub const VIDEO_SCORE: &str = "video_score";
pub const AUDIO_SCORE: &str = "audio_score";
pub const FLOW_SCORE: &str = "flow_score";

/// Added to the attention logits of padded positions: far below any real logit, and finite,
/// so that softmax's max-subtraction never meets ∞ − ∞.
pub const PADDING_BIAS: f32 = -1e9;

/// Why a window could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("MAVD window model {path}: {detail}")]
    Model { path: String, detail: String },
    #[error("snippet {index}: {modality} features have {got} values, the model takes {expected}")]
    FeatureWidth {
        index: u64,
        modality: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("snippet {index}: {modality} features are not finite")]
    NotFinite { index: u64, modality: &'static str },
    #[error(
        "{modality} features: {got} values for {snippets} snippets, the model takes {expected}"
    )]
    Length {
        modality: &'static str,
        snippets: usize,
        got: usize,
        expected: usize,
    },
    #[error("{snippets} snippets do not fit a window of {capacity}")]
    TooLong { snippets: usize, capacity: usize },
    #[error("MAVD window: {0}")]
    Run(String),
}

/// `[capacity]`: 0 over the `valid` first positions, [`PADDING_BIAS`] after.
pub fn key_bias(valid: usize, capacity: usize) -> Vec<f32> {
    (0..capacity)
        .map(|i| if i < valid { 0.0 } else { PADDING_BIAS })
        .collect()
}

/// One snippet's features, one vector per modality.
#[derive(Debug, Clone, PartialEq)]
pub struct SnippetFeatures {
    pub video: Vec<f32>,
    pub audio: Vec<f32>,
    pub flow: Vec<f32>,
}

/// The four scores of one snippet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnippetScores {
    /// The snippet's number in its stream, from 0.
    pub index: u64,
    /// The fused score the paper evaluates; alerts are decided on it.
    pub fused: f32,
    /// The unimodal heads: which modalities fired.
    pub video: f32,
    pub audio: f32,
    pub flow: f32,
}

/// Scores of every position of one window run, each `len` long.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowScores {
    pub fused: Vec<f32>,
    pub video: Vec<f32>,
    pub audio: Vec<f32>,
    pub flow: Vec<f32>,
}

impl WindowScores {
    fn at(&self, position: usize, index: u64) -> Option<SnippetScores> {
        Some(SnippetScores {
            index,
            fused: *self.fused.get(position)?,
            video: *self.video.get(position)?,
            audio: *self.audio.get(position)?,
            flow: *self.flow.get(position)?,
        })
    }
}

/// The window graph on tract, fixed-shape.
pub struct WindowModel {
    plan: std::sync::Arc<TypedSimplePlan>,
    capacity: usize,
    /// Feature widths of video, audio and flow.
    widths: [usize; 3],
    source: String,
}

impl std::fmt::Debug for WindowModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowModel")
            .field("source", &self.source)
            .field("capacity", &self.capacity)
            .field("widths", &self.widths)
            .finish()
    }
}

impl WindowModel {
    /// Loads and optimizes a window graph from an ONNX file.
    pub fn load(path: &Path) -> Result<Self, WindowError> {
        let source = path.display().to_string();
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|err| model_error(&source, err))?;
        Self::from_inference(model, source)
    }

    /// Loads a window graph from its protobuf (what the exporter returns).
    pub fn from_proto(proto: &tract_onnx::pb::ModelProto) -> Result<Self, WindowError> {
        let source = "(in memory)".to_string();
        let model = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(|err| model_error(&source, err))?;
        Self::from_inference(model, source)
    }

    fn from_inference(model: InferenceModel, source: String) -> Result<Self, WindowError> {
        let typed = model
            .into_optimized()
            .map_err(|err| model_error(&source, err))?;
        let shape_of = |index: usize| -> Result<Vec<usize>, WindowError> {
            let outlet = typed
                .input_outlets()
                .map_err(|err| model_error(&source, err))?
                .get(index)
                .copied()
                .ok_or_else(|| WindowError::Model {
                    path: source.clone(),
                    detail: format!("no input {index}: not a MAVD window graph"),
                })?;
            let fact = typed
                .outlet_fact(outlet)
                .map_err(|err| model_error(&source, err))?;
            fact.shape
                .as_concrete()
                .map(<[usize]>::to_vec)
                .ok_or_else(|| WindowError::Model {
                    path: source.clone(),
                    detail: format!("input {index} has a symbolic shape {:?}", fact.shape),
                })
        };
        let mut widths = [0; 3];
        let mut capacity = None;
        for (index, width) in widths.iter_mut().enumerate() {
            match shape_of(index)?.as_slice() {
                &[1, snippets, features]
                    if capacity.is_none_or(|c| c == snippets) && snippets > 0 =>
                {
                    capacity = Some(snippets);
                    *width = features;
                }
                other => {
                    return Err(WindowError::Model {
                        path: source,
                        detail: format!(
                            "input {index} has shape {other:?}, expected [1, window, features] \
                             with one window length"
                        ),
                    });
                }
            }
        }
        let capacity = capacity.unwrap_or_default();
        let plan = typed
            .into_runnable()
            .map_err(|err| model_error(&source, err))?;
        Ok(Self {
            plan,
            capacity,
            widths,
            source,
        })
    }

    /// How many snippets one run scores.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Feature widths of video, audio and flow.
    pub fn widths(&self) -> [usize; 3] {
        self.widths
    }

    /// Scores `snippets` (at most the capacity), oldest first. Each modality's features are
    /// row-major `[snippets, width]`.
    pub fn score(
        &self,
        video: &[f32],
        audio: &[f32],
        flow: &[f32],
        snippets: usize,
    ) -> Result<WindowScores, WindowError> {
        let capacity = self.capacity;
        if snippets > capacity {
            return Err(WindowError::TooLong { snippets, capacity });
        }
        let [vw, aw, fw] = self.widths;
        for (modality, values, width) in [
            ("video", video, vw),
            ("audio", audio, aw),
            ("flow", flow, fw),
        ] {
            if values.len() != snippets * width {
                return Err(WindowError::Length {
                    modality,
                    snippets,
                    got: values.len(),
                    expected: snippets * width,
                });
            }
        }
        let padded = |values: &[f32], width: usize| -> Result<Tensor, WindowError> {
            let mut data = vec![0.0f32; capacity * width];
            data[..values.len()].copy_from_slice(values);
            Tensor::from_shape(&[1, capacity, width], &data).map_err(run_error)
        };
        let inputs: TVec<TValue> = tvec![
            padded(video, vw)?.into(),
            padded(audio, aw)?.into(),
            padded(flow, fw)?.into(),
            Tensor::from_shape(&[capacity], &key_bias(snippets, capacity))
                .map_err(run_error)?
                .into(),
            Tensor::from_shape(
                &[capacity, capacity],
                &padded_distance_kernel(snippets, capacity),
            )
            .map_err(run_error)?
            .into(),
        ];
        let outputs = self.plan.run(inputs).map_err(run_error)?;
        let read = |index: usize| -> Result<Vec<f32>, WindowError> {
            let value = outputs
                .get(index)
                .ok_or_else(|| WindowError::Run(format!("the graph has no output {index}")))?;
            let view = value.to_plain_array_view::<f32>().map_err(run_error)?;
            Ok(view.iter().take(snippets).copied().collect())
        };
        Ok(WindowScores {
            fused: read(0)?,
            video: read(1)?,
            audio: read(2)?,
            flow: read(3)?,
        })
    }
}

fn model_error(source: &str, err: impl std::fmt::Debug) -> WindowError {
    WindowError::Model {
        path: source.to_string(),
        detail: format!("{err:?}").replace('\n', "; "),
    }
}

fn run_error(err: impl std::fmt::Display) -> WindowError {
    WindowError::Run(format!("{err:#}"))
}

/// What one new snippet gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// The new snippet's score with no look-ahead.
    pub live: SnippetScores,
    /// The oldest snippet's final score, when the new one pushed it out of the window.
    pub settled: Option<SnippetScores>,
}

/// A sliding window over a stream of snippets (see the module documentation).
#[derive(Debug)]
pub struct StreamingScorer {
    model: WindowModel,
    /// The window's snippets, oldest first, each modality row-major.
    video: VecDeque<f32>,
    audio: VecDeque<f32>,
    flow: VecDeque<f32>,
    /// Index of the oldest snippet in the window.
    first: u64,
    held: usize,
    last: WindowScores,
}

impl StreamingScorer {
    pub fn new(model: WindowModel) -> Self {
        Self {
            model,
            video: VecDeque::new(),
            audio: VecDeque::new(),
            flow: VecDeque::new(),
            first: 0,
            held: 0,
            last: WindowScores::default(),
        }
    }

    pub fn model(&self) -> &WindowModel {
        &self.model
    }

    /// Adds the next snippet and rescores the window. A snippet whose features have the wrong
    /// width or are not finite is refused, and the window is left as it was.
    pub fn push(&mut self, snippet: &SnippetFeatures) -> Result<Pushed, WindowError> {
        let index = self.first + self.held as u64;
        let [vw, aw, fw] = self.model.widths;
        for (modality, values, width) in [
            ("video", &snippet.video, vw),
            ("audio", &snippet.audio, aw),
            ("flow", &snippet.flow, fw),
        ] {
            if values.len() != width {
                return Err(WindowError::FeatureWidth {
                    index,
                    modality,
                    got: values.len(),
                    expected: width,
                });
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(WindowError::NotFinite { index, modality });
            }
        }
        // The new window is scored before anything changes, so a failed run leaves the
        // accepted snippets (and the oldest one's pending settled score) in place.
        let full = self.held == self.model.capacity;
        let skip = usize::from(full);
        let window = |held: &VecDeque<f32>, width: usize, new: &[f32]| -> Vec<f32> {
            held.iter().skip(skip * width).chain(new).copied().collect()
        };
        let held = self.held - skip + 1;
        let scores = self.model.score(
            &window(&self.video, vw, &snippet.video),
            &window(&self.audio, aw, &snippet.audio),
            &window(&self.flow, fw, &snippet.flow),
            held,
        )?;
        let settled = if full {
            let settled = self.last.at(0, self.first);
            self.video.drain(..vw);
            self.audio.drain(..aw);
            self.flow.drain(..fw);
            self.first += 1;
            settled
        } else {
            None
        };
        self.video.extend(&snippet.video);
        self.audio.extend(&snippet.audio);
        self.flow.extend(&snippet.flow);
        self.held = held;
        let live = scores
            .at(self.held - 1, index)
            .ok_or_else(|| WindowError::Run("the window gave fewer scores than snippets".into()))?;
        self.last = scores;
        Ok(Pushed { live, settled })
    }

    /// Ends the stream: the settled scores of the snippets still in the window, oldest first.
    pub fn finish(&mut self) -> Vec<SnippetScores> {
        let settled = (0..self.held)
            .filter_map(|position| self.last.at(position, self.first + position as u64))
            .collect();
        self.first += self.held as u64;
        self.held = 0;
        self.video.clear();
        self.audio.clear();
        self.flow.clear();
        settled
    }
}
