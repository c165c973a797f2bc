//! The checked path from a trained network's fp32 graph to the graphs that ship: tract must
//! compute what burn computes, then the int8 rewrite is calibrated, measured against the fp32
//! graph, and both are timed. Every family's `export` goes through it.

use super::TrainError;
use super::onnx::ModelProto;
use super::parity::{plan, relative_difference, run_plan_outputs};
use super::quantize::{Quantized, median_latency_ms, quantize};

/// Largest |burn − tract| on the fp32 graph's outputs, relative to their largest value.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// What checking and quantizing one export found.
pub struct CheckedExport {
    pub quantized: Quantized,
    /// Worst |burn − tract fp32| over the inputs, relative to each output's largest value.
    pub parity_relative: f32,
    /// Worst |int8 − fp32| in tract over the inputs, likewise.
    pub int8_relative: f32,
    /// Median single-thread latency of each graph in tract on the first input.
    pub fp32_ms: f64,
    pub int8_ms: f64,
}

/// Runs `fp32_model` in tract on each of `inputs` (all of `shape`) against `trainer_outputs`
/// (burn's outputs for the same input, in the graph's output order), refuses a gap above
/// [`PARITY_TOLERANCE`], then quantizes with the inputs as calibration data.
pub fn check_and_quantize(
    fp32_model: &ModelProto,
    shape: &[usize],
    inputs: &[Vec<f32>],
    trainer_outputs: impl Fn(&[f32]) -> Result<Vec<Vec<f32>>, TrainError>,
) -> Result<CheckedExport, TrainError> {
    let Some(first) = inputs.first() else {
        return Err(TrainError::Config(
            "no input to check and calibrate the export on".into(),
        ));
    };
    let fp32_plan = plan(fp32_model)?;
    let mut parity_relative = 0.0f32;
    let mut reference = Vec::with_capacity(inputs.len());
    for input in inputs {
        let tract = run_plan_outputs(&fp32_plan, shape, input)?;
        for (burn, tract) in trainer_outputs(input)?.iter().zip(&tract) {
            parity_relative = parity_relative.max(relative_difference(burn, tract)?);
        }
        reference.push(tract);
    }
    if parity_relative > PARITY_TOLERANCE {
        return Err(TrainError::Config(format!(
            "the exported graph differs from burn by {parity_relative:.2e} of its largest output (tolerance {PARITY_TOLERANCE:.0e})"
        )));
    }
    let quantized = quantize(fp32_model, shape, inputs)?;
    let int8_plan = plan(&quantized.model)?;
    let mut int8_relative = 0.0f32;
    for (input, fp32) in inputs.iter().zip(&reference) {
        let int8 = run_plan_outputs(&int8_plan, shape, input)?;
        for (a, b) in fp32.iter().zip(&int8) {
            int8_relative = int8_relative.max(relative_difference(a, b)?);
        }
    }
    Ok(CheckedExport {
        fp32_ms: median_latency_ms(&fp32_plan, shape, first, 10)?,
        int8_ms: median_latency_ms(&int8_plan, shape, first, 10)?,
        quantized,
        parity_relative,
        int8_relative,
    })
}
