//! Snippets to the three feature vectors MAVD-edge's head reads, on the edge:
//!
//! - **RGB**: ImageNet MobileNetV2's pooled 1280-d features (`mobilenet_v2_features.onnx`,
//!   written by `vigil-train mobilenet convert`), averaged over every `frame_stride`-th frame;
//! - **audio**: YAMNet's 1024-d embedding of the snippet's 0.96 s patch (the int8 model the
//!   audio-event streams run);
//! - **flow**: the [`FlowDescriptor`] of dense DIS flow between the snippet's consecutive
//!   frames.
//!
//! A snippet without audio gets a zero audio vector and says so ([`Extracted::audio_present`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;

use super::snippet::Snippet;
use super::window::SnippetFeatures;
use crate::detector::Plan;
use crate::flow::descriptor::FlowDescriptor;
use crate::flow::{DisParams, GrayImage, dense_flow};
use crate::models::audio_events::{MelPatch, YamnetDetector, input_quantization};
use crate::prepare::imagenet::normalize_chw;
use crate::prepare::mel::{LogMel, LogMelConfig, quantize_u8};

/// Side of the square frames the RGB extractor takes.
pub const RGB_SIDE: usize = 224;
/// Width of the RGB and audio features.
pub const RGB_WIDTH: usize = 1280;
pub const AUDIO_WIDTH: usize = 1024;

/// Why a snippet's features could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("RGB extractor {path}: {detail}")]
    Model { path: String, detail: String },
    #[error(
        "snippet {index}: frames are {width}×{height}, the RGB extractor takes {RGB_SIDE}×{RGB_SIDE}"
    )]
    FrameSize { index: u64, width: u32, height: u32 },
    #[error("snippet {index} has no frames")]
    NoFrames { index: u64 },
    #[error("snippet {index}: {stage}: {detail}")]
    Stage {
        index: u64,
        stage: &'static str,
        detail: String,
    },
}

/// One snippet's features, and what each stage cost.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub features: SnippetFeatures,
    pub audio_present: bool,
    pub rgb_time: Duration,
    pub audio_time: Duration,
    pub flow_time: Duration,
}

/// The three extractors.
pub struct SnippetExtractor {
    rgb: Arc<TypedSimplePlan>,
    rgb_source: String,
    yamnet: YamnetDetector,
    /// Built once: the FFT plan and mel matrix are not per-snippet work.
    mel: LogMel,
    mel_scale: f32,
    mel_zero_point: u8,
    /// RGB features from every n-th frame (4: four frames of a 16-frame snippet).
    pub frame_stride: usize,
    pub flow: DisParams,
}

impl std::fmt::Debug for SnippetExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnippetExtractor")
            .field("rgb", &self.rgb_source)
            .field("frame_stride", &self.frame_stride)
            .finish()
    }
}

impl SnippetExtractor {
    /// `rgb_model` is `mobilenet_v2_features.onnx`; `yamnet` the audio-event model's plan.
    pub fn new(rgb_model: &Path, yamnet: &Plan) -> Result<Self, ExtractError> {
        let source = rgb_model.display().to_string();
        let model_error = |err: TractError| ExtractError::Model {
            path: source.clone(),
            detail: format!("{err:#}"),
        };
        let rgb = tract_onnx::onnx()
            .model_for_path(rgb_model)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(model_error)?;
        let spec = yamnet.spec();
        let yamnet_error = |detail: String| ExtractError::Model {
            path: spec.name.clone(),
            detail,
        };
        let (mel_scale, mel_zero_point) =
            input_quantization(spec).map_err(|err| yamnet_error(err.to_string()))?;
        let yamnet_detector =
            YamnetDetector::new(yamnet).map_err(|err| yamnet_error(err.to_string()))?;
        let mel =
            LogMel::new(LogMelConfig::yamnet()).map_err(|err| yamnet_error(err.to_string()))?;
        Ok(Self {
            rgb,
            rgb_source: source,
            yamnet: yamnet_detector,
            mel,
            mel_scale,
            mel_zero_point,
            frame_stride: 4,
            flow: DisParams::FAST,
        })
    }

    /// Features of one snippet.
    pub fn extract(&mut self, snippet: &Snippet) -> Result<Extracted, ExtractError> {
        let index = snippet.index;
        let stage = |stage: &'static str| {
            move |detail: String| ExtractError::Stage {
                index,
                stage,
                detail,
            }
        };
        let first = snippet
            .frames
            .first()
            .ok_or(ExtractError::NoFrames { index })?;
        if (first.width as usize, first.height as usize) != (RGB_SIDE, RGB_SIDE) {
            return Err(ExtractError::FrameSize {
                index,
                width: first.width,
                height: first.height,
            });
        }

        let clock = Instant::now();
        let mut rgb = vec![0.0f32; RGB_WIDTH];
        let picked: Vec<_> = snippet
            .frames
            .iter()
            .step_by(self.frame_stride.max(1))
            .collect();
        for frame in &picked {
            let features = self
                .rgb_features(&frame.rgb)
                .map_err(stage("RGB features"))?;
            for (sum, value) in rgb.iter_mut().zip(features) {
                *sum += value / picked.len() as f32;
            }
        }
        let rgb_time = clock.elapsed();

        let clock = Instant::now();
        let (audio, audio_present) = match &snippet.audio {
            Some(samples) => (
                self.audio_embedding(samples)
                    .map_err(stage("audio embedding"))?,
                true,
            ),
            None => (vec![0.0; AUDIO_WIDTH], false),
        };
        let audio_time = clock.elapsed();

        let clock = Instant::now();
        let mut descriptor = FlowDescriptor::default();
        let mut previous: Option<GrayImage> = None;
        for frame in &snippet.frames {
            let grey =
                GrayImage::from_rgb8(frame.width as usize, frame.height as usize, &frame.rgb)
                    .map_err(|e| stage("flow")(e.to_string()))?;
            if let Some(before) = &previous {
                let flow = dense_flow(before, &grey, &self.flow)
                    .map_err(|e| stage("flow")(e.to_string()))?;
                descriptor.add(&flow);
            }
            previous = Some(grey);
        }
        let flow_time = clock.elapsed();

        Ok(Extracted {
            features: SnippetFeatures {
                video: rgb,
                audio,
                flow: descriptor.finish(),
            },
            audio_present,
            rgb_time,
            audio_time,
            flow_time,
        })
    }

    /// MobileNetV2's pooled features of one packed RGB 224×224 frame.
    pub fn rgb_features(&self, rgb: &[u8]) -> Result<Vec<f32>, String> {
        let input = normalize_chw(rgb);
        let tensor = Tensor::from_shape(&[1, 3, RGB_SIDE, RGB_SIDE], &input)
            .map_err(|e| format!("{e:#}"))?;
        let outputs = self
            .rgb
            .run(tvec!(tensor.into_tvalue()))
            .map_err(|e| format!("{e:#}"))?;
        let first = outputs.first().ok_or("the extractor has no output")?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("{e:#}"))?;
        Ok(view.iter().copied().collect())
    }

    /// YAMNet's embedding of the patch of 96 log-mel frames that ends with `samples`.
    pub fn audio_embedding(&mut self, samples: &[f32]) -> Result<Vec<f32>, String> {
        let config = self.mel.config();
        let (frames, bands) = (config.patch_frames, config.mel_bands);
        // Only the samples of the patch's frames are analysed.
        let span = (frames - 1) * config.hop_samples + config.window_samples;
        if samples.len() < span {
            return Err(format!(
                "{} samples are too few for a patch of {frames} log-mel frames ({span} needed)",
                samples.len()
            ));
        }
        let patch = self.mel.frames_of(&samples[samples.len() - span..]);
        let patch_values = frames * bands;
        let mut quantized = vec![0u8; patch_values];
        quantize_u8(&patch, self.mel_scale, self.mel_zero_point, &mut quantized)
            .map_err(|e| e.to_string())?;
        let scores = self
            .yamnet
            .run(&MelPatch {
                quantized,
                start: Duration::ZERO,
                end: Duration::ZERO,
            })
            .map_err(|e| e.to_string())?;
        Ok(scores.embedding)
    }
}
