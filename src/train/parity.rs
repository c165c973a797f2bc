//! Parity between a burn module and the tract plan of its exported ONNX graph.
//!
//! The exporter is only as good as this check: every export in the trainer and in the tests
//! runs the burn module and tract's optimized plan on the same input and compares.

use burn::prelude::*;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoTValue, Tensor as TractTensor, tvec};
use tract_onnx::tract_core::prelude::IntoRunnable;

use super::onnx::{ModelProto, tensor_values};

/// Why the parity check could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    #[error("tract cannot run the exported graph: {0}")]
    Tract(String),
    #[error("cannot read the burn output: {0}")]
    Burn(String),
    #[error("burn gives shape {burn:?}, tract {tract:?}")]
    Shape { burn: Vec<usize>, tract: Vec<usize> },
    #[error(
        "burn and tract differ by {max_abs_diff:.3e} at element {index} (tolerance {tolerance:.0e})"
    )]
    Mismatch {
        max_abs_diff: f32,
        index: usize,
        tolerance: f32,
    },
}

/// The largest difference found, with the output's magnitude for scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parity {
    pub max_abs_diff: f32,
    pub max_abs_value: f32,
}

/// tract's runnable plan of an ONNX model.
pub type TractPlan = std::sync::Arc<tract_onnx::prelude::TypedSimplePlan>;

fn tract(err: tract_onnx::prelude::TractError) -> ParityError {
    // The alternate form prints the cause chain on one line, without a backtrace.
    ParityError::Tract(format!("{err:#}"))
}

/// Optimizes an ONNX model with its fixed shapes, as the runtime does.
pub fn plan(model: &ModelProto) -> Result<TractPlan, ParityError> {
    tract_onnx::onnx()
        .model_for_proto_model(model)
        .map_err(tract)?
        .into_optimized()
        .map_err(tract)?
        .into_runnable()
        .map_err(tract)
}

/// A plan that computes exactly what the graph says, without tract's kernel-level rewrites:
/// for reading intermediate values (calibration), which the optimizer may fuse away. (With
/// the reshape of an input feeding a matmul selected as an output, the optimized plan failed
/// on a placeholder op.)
pub fn probe_plan(model: &ModelProto) -> Result<TractPlan, ParityError> {
    tract_onnx::onnx()
        .model_for_proto_model(model)
        .map_err(tract)?
        .into_typed()
        .map_err(tract)?
        .into_decluttered()
        .map_err(tract)?
        .into_runnable()
        .map_err(tract)
}

/// Runs a plan on one f32 input and returns its first output's values.
pub fn run_plan(
    plan: &TractPlan,
    input_shape: &[usize],
    input: &[f32],
) -> Result<Vec<f32>, ParityError> {
    Ok(run_plan_shaped(plan, input_shape, input)?.1)
}

/// Runs an ONNX model with one f32 input through tract (optimized, fixed shapes, as the
/// runtime does) and returns its first output with its shape.
pub fn run_tract(
    model: &ModelProto,
    input_shape: &[usize],
    input: &[f32],
) -> Result<(Vec<usize>, Vec<f32>), ParityError> {
    run_plan_shaped(&plan(model)?, input_shape, input)
}

fn run_plan_shaped(
    plan: &TractPlan,
    input_shape: &[usize],
    input: &[f32],
) -> Result<(Vec<usize>, Vec<f32>), ParityError> {
    let input = TractTensor::from_shape(input_shape, input).map_err(tract)?;
    let outputs = plan.run(tvec!(input.into_tvalue())).map_err(tract)?;
    let first = outputs
        .first()
        .ok_or_else(|| ParityError::Tract("the graph has no output".into()))?;
    let view = first.to_plain_array_view::<f32>().map_err(tract)?;
    Ok((view.shape().to_vec(), view.iter().copied().collect()))
}

/// Runs a plan on one f32 input and returns every output's values, in the graph's order.
pub fn run_plan_outputs(
    plan: &TractPlan,
    input_shape: &[usize],
    input: &[f32],
) -> Result<Vec<Vec<f32>>, ParityError> {
    let input = TractTensor::from_shape(input_shape, input).map_err(tract)?;
    let outputs = plan.run(tvec!(input.into_tvalue())).map_err(tract)?;
    outputs
        .iter()
        .map(|value| {
            let view = value.to_plain_array_view::<f32>().map_err(tract)?;
            Ok(view.iter().copied().collect())
        })
        .collect()
}

/// The concrete shape of every output of a plan, in the graph's order.
pub fn output_shapes(plan: &TractPlan) -> Result<Vec<Vec<usize>>, ParityError> {
    let model = plan.model();
    model
        .output_outlets()
        .map_err(tract)?
        .iter()
        .map(|outlet| {
            let fact = model.outlet_fact(*outlet).map_err(tract)?;
            fact.shape
                .as_concrete()
                .map(|shape| shape.to_vec())
                .ok_or_else(|| {
                    ParityError::Tract(format!("output shape {:?} is not concrete", fact.shape))
                })
        })
        .collect()
}

/// `max |a − b| / max |a|`: the gap between two runs of one output, relative to its scale.
/// Different lengths and non-finite values are errors, not large numbers.
pub fn relative_difference(a: &[f32], b: &[f32]) -> Result<f32, ParityError> {
    if a.len() != b.len() {
        return Err(ParityError::Shape {
            burn: vec![a.len()],
            tract: vec![b.len()],
        });
    }
    let (mut diff, mut scale) = (0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        if !d.is_finite() {
            return Err(ParityError::Burn("an output is not finite".into()));
        }
        diff = diff.max(d);
        scale = scale.max(x.abs());
    }
    Ok(if scale > 0.0 { diff / scale } else { diff })
}

/// Compares a burn output with tract's output of the exported graph on the same input
/// (given as shape and values).
pub fn compare_values<const D: usize>(
    burn_output: Tensor<D>,
    model: &ModelProto,
    input_shape: &[usize],
    input: &[f32],
    tolerance: f32,
) -> Result<Parity, ParityError> {
    let burn_shape = burn_output.dims().to_vec();
    let expected =
        tensor_values(burn_output, "output").map_err(|err| ParityError::Burn(err.to_string()))?;
    let (tract_shape, actual) = run_tract(model, input_shape, input)?;
    if tract_shape != burn_shape {
        return Err(ParityError::Shape {
            burn: burn_shape,
            tract: tract_shape,
        });
    }
    let mut worst = (0.0f32, 0usize);
    let mut max_abs_value = 0.0f32;
    for (index, (a, b)) in expected.iter().zip(&actual).enumerate() {
        let diff = (a - b).abs();
        // NaN on either side must fail, not compare as "not greater".
        if diff > worst.0 || diff.is_nan() {
            worst = (if diff.is_nan() { f32::INFINITY } else { diff }, index);
        }
        max_abs_value = max_abs_value.max(a.abs());
    }
    if worst.0 > tolerance {
        return Err(ParityError::Mismatch {
            max_abs_diff: worst.0,
            index: worst.1,
            tolerance,
        });
    }
    Ok(Parity {
        max_abs_diff: worst.0,
        max_abs_value,
    })
}
