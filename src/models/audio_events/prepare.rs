//! Audio blocks to quantized log-mel patches.

use std::time::Duration;

use crate::capture::{Sample, Stamp};
use crate::detector::ModelSpec;
use crate::pipeline::{Prepare, StageError};
use crate::prepare::mel::{LogMelConfig, PatchStream, quantize_u8};

/// One model input: a quantized [96 × 64] patch and the stream times it spans.
#[derive(Debug, Clone)]
pub struct MelPatch {
    pub quantized: Vec<u8>,
    pub start: Duration,
    pub end: Duration,
}

pub struct AudioEventsPrepare {
    stream: PatchStream,
    scale: f32,
    zero_point: u8,
    rate: u32,
    hop: usize,
    window: usize,
    /// Stream time of sample 0 of the front end (the first block's PTS after a reset).
    origin: Option<Duration>,
    /// Where the next block should start if the stream is continuous.
    expected: Option<Duration>,
}

/// A jump in stream time larger than this (a restarted source, lost buffers) restarts the
/// front end, so that no patch mixes audio from both sides of the gap.
const MAX_GAP: Duration = Duration::from_millis(50);

fn stage_error(detail: String) -> StageError {
    StageError {
        stage: "prepare audio",
        detail,
    }
}

/// The u8 quantization of the model's log-mel input, `(scale, zero_point)`.
pub fn input_quantization(spec: &ModelSpec) -> Result<(f32, u8), StageError> {
    let input = spec
        .inputs
        .first()
        .ok_or_else(|| stage_error("model has no input".into()))?;
    let (Some(scale), Some(zero_point)) = (input.scale, input.zero_point) else {
        return Err(stage_error(format!(
            "model {} input {} lacks scale or zero_point",
            spec.name, input.name
        )));
    };
    let zero_point = u8::try_from(zero_point)
        .map_err(|_| stage_error(format!("zero point {zero_point} does not fit u8")))?;
    Ok((scale, zero_point))
}

impl AudioEventsPrepare {
    /// Reads the input quantization from the model's manifest entry.
    pub fn new(spec: &ModelSpec, config: LogMelConfig) -> Result<Self, StageError> {
        let (scale, zero_point) = input_quantization(spec)?;
        let input = &spec.inputs[0];
        let expected = config.patch_frames * config.mel_bands;
        if input.shape.iter().product::<usize>() != expected {
            return Err(stage_error(format!(
                "model input {:?} does not hold a {}×{} patch",
                input.shape, config.patch_frames, config.mel_bands
            )));
        }
        let (rate, hop, window) = (
            config.sample_rate_hz,
            config.hop_samples,
            config.window_samples,
        );
        let stream = PatchStream::new(config).map_err(|err| stage_error(err.to_string()))?;
        Ok(Self {
            stream,
            scale,
            zero_point,
            rate,
            hop,
            window,
            origin: None,
            expected: None,
        })
    }
}

impl Prepare for AudioEventsPrepare {
    type Output = MelPatch;

    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, MelPatch),
    ) -> Result<(), StageError> {
        let Sample::Audio(block) = sample else {
            return Err(stage_error("expected audio, got a video frame".into()));
        };
        if block.rate != self.rate {
            return Err(stage_error(format!(
                "audio at {} Hz, the model needs {} Hz (let GStreamer resample)",
                block.rate, self.rate
            )));
        }
        if let Some(bad) = block.samples.iter().position(|s| !s.is_finite()) {
            return Err(stage_error(format!(
                "sample {bad} of block {} is not finite",
                block.stamp.seq
            )));
        }
        let pts = block.stamp.pts;
        if let Some(expected) = self.expected
            && pts.abs_diff(expected) > MAX_GAP
        {
            log::warn!(
                "audio jumps from {expected:?} to {pts:?}: restarting the log-mel front end"
            );
            self.stream.reset();
            self.origin = None;
        }
        self.expected =
            Some(pts + Duration::from_secs_f64(block.samples.len() as f64 / f64::from(self.rate)));
        let origin = *self.origin.get_or_insert(pts);
        let rate = f64::from(self.rate);
        let (hop, window) = (self.hop, self.window);
        let (scale, zero_point) = (self.scale, self.zero_point);
        let mut failure = None;
        self.stream.push(&block.samples, |patch| {
            let mut quantized = vec![0u8; patch.data.len()];
            if let Err(err) = quantize_u8(patch.data, scale, zero_point, &mut quantized) {
                failure = Some(err.to_string());
                return;
            }
            let start = origin + Duration::from_secs_f64(patch.start_sample as f64 / rate);
            let span = (patch.frames.saturating_sub(1) * hop + window) as f64 / rate;
            let end = start + Duration::from_secs_f64(span);
            emit(
                block.stamp,
                MelPatch {
                    quantized,
                    start,
                    end,
                },
            );
        });
        failure.map_or(Ok(()), |detail| Err(stage_error(detail)))
    }
}
