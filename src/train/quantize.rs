//! Post-training int8 quantization into the one ONNX form tract runs on int8 kernels.
//!
//! The int8 study (`models/README.md`) measured every form tract 0.23 accepts. Only this one
//! optimizes to *quantize → int8 matmul → cast → one fused multiply-add*:
//!
//! ```text
//! x ─ QuantizeLinear(s_x, zero point int8 0) ─ MatMulInteger(·, W_q int8 [K, N]) ─ Cast(float)
//!   ─ Mul(s_x · s_w[N]) ─ (the exporter's Add(bias), unchanged)
//! ```
//!
//! with symmetric per-output-channel weight scales and one per-tensor activation scale from
//! calibration. Every `MatMul` whose right operand is a constant `[K, N]` weight is rewritten
//! (linear layers, Q/K/V and output projections, MLPs); matmuls of two activations (the
//! attention core), convolutions, Softmax, LayerNorm and GELU stay fp32, because the study found
//! their quantized forms slower or, next to a Softmax, wrong in tract.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tract_onnx::pb;
use tract_onnx::prelude::{IntoTValue, Tensor as TractTensor, tvec};

use super::onnx::ElemType;

/// Why a model could not be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("the model has no graph")]
    NoGraph,
    #[error("no MatMul with a constant [K, N] weight to quantize")]
    NothingToQuantize,
    #[error("the calibration set is empty")]
    NoCalibration,
    #[error(
        "calibration sample {index} has {len} values, the model input {shape:?} needs {expected}"
    )]
    CalibrationShape {
        index: usize,
        len: usize,
        shape: Vec<usize>,
        expected: usize,
    },
    #[error("activation {name} is not finite on calibration sample {index}")]
    NonFinite { name: String, index: usize },
    #[error("weight {name}: {problem}")]
    Weight { name: String, problem: String },
    #[error("tract: {0}")]
    Tract(String),
    #[error(transparent)]
    Plan(#[from] super::parity::ParityError),
}

/// How one linear layer was quantized.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedLayer {
    pub node: String,
    pub weight: String,
    pub k: usize,
    pub n: usize,
    /// `max|x| / 127` over the calibration set.
    pub activation_scale: f32,
    /// Largest |W − s_w·W_q| over the weight, relative to max|W|.
    pub weight_error: f32,
}

/// The int8 model and what was done to it.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub model: pb::ModelProto,
    pub layers: Vec<QuantizedLayer>,
}

fn tract_error(err: impl std::fmt::Debug) -> QuantizeError {
    QuantizeError::Tract(format!("{err:?}").replace('\n', "; "))
}

/// Quantizes `model` (one f32 input of shape `input_shape`) with activation scales calibrated
/// on `calibration`.
pub fn quantize(
    model: &pb::ModelProto,
    input_shape: &[usize],
    calibration: &[Vec<f32>],
) -> Result<Quantized, QuantizeError> {
    let graph = model.graph.as_ref().ok_or(QuantizeError::NoGraph)?;
    let initializers: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let targets: Vec<&pb::NodeProto> = graph
        .node
        .iter()
        .filter(|node| node.op_type == "MatMul" && node.input.len() == 2)
        .filter(|node| {
            initializers
                .get(node.input[1].as_str())
                .is_some_and(|w| w.dims.len() == 2 && w.data_type == ElemType::F32 as i32)
        })
        .collect();
    if targets.is_empty() {
        return Err(QuantizeError::NothingToQuantize);
    }
    let activations: Vec<String> = targets.iter().map(|n| n.input[0].clone()).collect();
    let ranges = calibrate(model, input_shape, calibration, &activations)?;

    let mut quantized = model.clone();
    let mut layers = Vec::new();
    let Some(out_graph) = quantized.graph.as_mut() else {
        return Err(QuantizeError::NoGraph);
    };
    let mut nodes = Vec::with_capacity(out_graph.node.len() + 3 * targets.len());
    let mut new_initializers = Vec::new();
    let mut replaced_weights = HashSet::new();
    let target_names: HashSet<&str> = targets.iter().map(|n| n.name.as_str()).collect();
    for node in &graph.node {
        if !target_names.contains(node.name.as_str()) {
            nodes.push(node.clone());
            continue;
        }
        let (activation, weight_name) = (&node.input[0], &node.input[1]);
        let weight = initializers[weight_name.as_str()];
        let (k, n) = (weight.dims[0] as usize, weight.dims[1] as usize);
        let values = f32_values(weight)?;
        let max_abs = ranges.get(activation).copied().unwrap_or(0.0);
        // An activation that is zero on all calibration data still needs a usable scale.
        let activation_scale = if max_abs > 0.0 {
            max_abs / 127.0
        } else {
            1.0 / 127.0
        };
        let (weight_q, weight_scales, weight_error) = quantize_per_column(&values, k, n);
        let prefix = &node.name;
        let names = |suffix: &str| format!("{prefix}.{suffix}");
        new_initializers.push(scalar_f32(&names("x_scale"), activation_scale));
        new_initializers.push(tensor_i8(&names("x_zero_point"), &[], &[0]));
        new_initializers.push(tensor_i8(&weight_name.to_string(), &[k, n], &weight_q));
        let output_scales: Vec<f32> = weight_scales.iter().map(|s| s * activation_scale).collect();
        new_initializers.push(tensor_f32(&names("output_scale"), &[n], &output_scales));
        replaced_weights.insert(weight_name.clone());
        let quantized_x = names("x_q");
        let accumulated = names("acc_i32");
        let accumulated_f = names("acc_f32");
        nodes.push(simple_node(
            &names("quantize"),
            "QuantizeLinear",
            vec![activation.clone(), names("x_scale"), names("x_zero_point")],
            &quantized_x,
            vec![],
        ));
        nodes.push(simple_node(
            &names("matmul_integer"),
            "MatMulInteger",
            vec![quantized_x, weight_name.clone()],
            &accumulated,
            vec![],
        ));
        nodes.push(simple_node(
            &names("cast"),
            "Cast",
            vec![accumulated],
            &accumulated_f,
            vec![pb::AttributeProto {
                name: "to".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: ElemType::F32 as i64,
                ..Default::default()
            }],
        ));
        nodes.push(simple_node(
            &names("rescale"),
            "Mul",
            vec![accumulated_f, names("output_scale")],
            &node.output[0],
            vec![],
        ));
        layers.push(QuantizedLayer {
            node: node.name.clone(),
            weight: weight_name.clone(),
            k,
            n,
            activation_scale,
            weight_error,
        });
    }
    out_graph.node = nodes;
    out_graph
        .initializer
        .retain(|t| !replaced_weights.contains(&t.name));
    out_graph.initializer.extend(new_initializers);
    // QuantizeLinear with an int8 zero point and MatMulInteger need opset ≥ 10; ours is 17.
    Ok(Quantized {
        model: quantized,
        layers,
    })
}

/// Quantizes every `Conv` whose weight is a constant `[O, I/g, kh, kw]` f32 initializer into
///
/// ```text
/// x ─ QuantizeLinear(s_x, int8 0) ─ ConvInteger(·, W_q int8, 0, 0) ─ Cast(float)
///   ─ Mul(s_x · s_w[O], shaped [1, O, 1, 1]) ─ Add(bias, when the Conv had one)
/// ```
///
/// with symmetric per-output-channel weight scales and one activation scale per input from
/// calibration: the convolution networks' counterpart of [`quantize`], for measuring what int8
/// does to a backbone's features (tract 0.23.9 runs these forms slower than fp32,
/// `models/README.md`).
pub fn quantize_convolutions(
    model: &pb::ModelProto,
    input_shape: &[usize],
    calibration: &[Vec<f32>],
) -> Result<Quantized, QuantizeError> {
    let graph = model.graph.as_ref().ok_or(QuantizeError::NoGraph)?;
    let initializers: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let targets: Vec<&pb::NodeProto> = graph
        .node
        .iter()
        .filter(|node| node.op_type == "Conv" && node.input.len() >= 2)
        .filter(|node| {
            initializers
                .get(node.input[1].as_str())
                .is_some_and(|w| w.dims.len() == 4 && w.data_type == ElemType::F32 as i32)
        })
        .collect();
    if targets.is_empty() {
        return Err(QuantizeError::NothingToQuantize);
    }
    let activations: Vec<String> = targets.iter().map(|n| n.input[0].clone()).collect();
    let ranges = calibrate(model, input_shape, calibration, &activations)?;
    let mut quantized = model.clone();
    let Some(out_graph) = quantized.graph.as_mut() else {
        return Err(QuantizeError::NoGraph);
    };
    let mut nodes = Vec::with_capacity(out_graph.node.len() + 4 * targets.len());
    let (mut new_initializers, mut layers) = (Vec::new(), Vec::new());
    let mut replaced_weights = HashSet::new();
    let target_outputs: HashSet<&str> = targets.iter().map(|n| n.output[0].as_str()).collect();
    for (index, node) in graph.node.iter().enumerate() {
        if !target_outputs.contains(node.output[0].as_str()) {
            nodes.push(node.clone());
            continue;
        }
        let (activation, weight_name) = (&node.input[0], &node.input[1]);
        let weight = initializers[weight_name.as_str()];
        let dims: Vec<usize> = weight.dims.iter().map(|d| *d as usize).collect();
        let (outputs, per_output) = (dims[0], dims[1..].iter().product::<usize>());
        let values = f32_values(weight)?;
        let max_abs = ranges.get(activation).copied().unwrap_or(0.0);
        let activation_scale = if max_abs > 0.0 {
            max_abs / 127.0
        } else {
            1.0 / 127.0
        };
        // Per output channel is per row of [O, I/g·kh·kw]: the columns of its transpose.
        let transposed: Vec<f32> = (0..per_output)
            .flat_map(|k| (0..outputs).map(move |o| (k, o)))
            .map(|(k, o)| values[o * per_output + k])
            .collect();
        let (q_transposed, weight_scales, weight_error) =
            quantize_per_column(&transposed, per_output, outputs);
        let mut weight_q = vec![0i8; values.len()];
        for o in 0..outputs {
            for k in 0..per_output {
                weight_q[o * per_output + k] = q_transposed[k * outputs + o];
            }
        }
        // Node names are optional in ONNX; the position makes the new names unique anyway.
        let names = |suffix: &str| format!("conv_integer_{index}.{suffix}");
        new_initializers.push(scalar_f32(&names("x_scale"), activation_scale));
        new_initializers.push(tensor_i8(&names("x_zero_point"), &[], &[0]));
        new_initializers.push(tensor_i8(weight_name, &dims, &weight_q));
        let output_scales: Vec<f32> = weight_scales.iter().map(|s| s * activation_scale).collect();
        new_initializers.push(tensor_f32(
            &names("output_scale"),
            &[1, outputs, 1, 1],
            &output_scales,
        ));
        replaced_weights.insert(weight_name.clone());
        let rescaled = if node.input.len() > 2 {
            names("rescaled")
        } else {
            node.output[0].clone()
        };
        nodes.push(simple_node(
            &names("quantize"),
            "QuantizeLinear",
            vec![activation.clone(), names("x_scale"), names("x_zero_point")],
            &names("x_q"),
            vec![],
        ));
        let mut conv = simple_node(
            &names("conv_integer"),
            "ConvInteger",
            vec![names("x_q"), weight_name.clone()],
            &names("acc_i32"),
            node.attribute.clone(),
        );
        conv.domain = node.domain.clone();
        nodes.push(conv);
        nodes.push(simple_node(
            &names("cast"),
            "Cast",
            vec![names("acc_i32")],
            &names("acc_f32"),
            vec![pb::AttributeProto {
                name: "to".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: ElemType::F32 as i64,
                ..Default::default()
            }],
        ));
        nodes.push(simple_node(
            &names("rescale"),
            "Mul",
            vec![names("acc_f32"), names("output_scale")],
            &rescaled,
            vec![],
        ));
        if let Some(bias_name) = node.input.get(2) {
            let bias =
                initializers
                    .get(bias_name.as_str())
                    .ok_or_else(|| QuantizeError::Weight {
                        name: bias_name.clone(),
                        problem: "a convolution bias that is not a constant".into(),
                    })?;
            let bias_values = f32_values(bias)?;
            new_initializers.push(tensor_f32(
                &names("bias"),
                &[1, outputs, 1, 1],
                &bias_values,
            ));
            nodes.push(simple_node(
                &names("bias_add"),
                "Add",
                vec![rescaled, names("bias")],
                &node.output[0],
                vec![],
            ));
        }
        layers.push(QuantizedLayer {
            node: node.name.clone(),
            weight: weight_name.clone(),
            k: per_output,
            n: outputs,
            activation_scale,
            weight_error,
        });
    }
    out_graph.node = nodes;
    out_graph
        .initializer
        .retain(|t| !replaced_weights.contains(&t.name));
    out_graph.initializer.extend(new_initializers);
    Ok(Quantized {
        model: quantized,
        layers,
    })
}

/// The fixed shape of a model's single input (vigil's exports have static shapes).
pub fn input_shape(model: &pb::ModelProto) -> Result<Vec<usize>, QuantizeError> {
    let graph = model.graph.as_ref().ok_or(QuantizeError::NoGraph)?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(QuantizeError::Tract(format!(
            "the model has {} inputs; quantize takes single-input models",
            inputs.len()
        )));
    };
    let dims = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(tensor)) => tensor
            .shape
            .as_ref()
            .map(|s| s.dim.clone())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    dims.iter()
        .map(|dim| match dim.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)) if d > 0 => Ok(d as usize),
            _ => Err(QuantizeError::Tract(format!(
                "input {} has a symbolic or missing dimension: export with fixed shapes",
                input.name
            ))),
        })
        .collect()
}

/// Symmetric int8 per output column: `s_w[n] = max_k |W[k, n]| / 127`.
fn quantize_per_column(weight: &[f32], k: usize, n: usize) -> (Vec<i8>, Vec<f32>, f32) {
    let mut scales = vec![0.0f32; n];
    for row in weight.chunks(n) {
        for (scale, value) in scales.iter_mut().zip(row) {
            *scale = scale.max(value.abs());
        }
    }
    let max_abs = scales.iter().copied().fold(0.0f32, f32::max);
    for scale in &mut scales {
        // An all-zero column quantizes to zeros with any scale; 1 avoids dividing by zero.
        *scale = if *scale > 0.0 { *scale / 127.0 } else { 1.0 };
    }
    let mut error = 0.0f32;
    let mut quantized = Vec::with_capacity(k * n);
    for row in weight.chunks(n) {
        for (value, scale) in row.iter().zip(&scales) {
            let q = (value / scale).round().clamp(-127.0, 127.0);
            error = error.max((value - q * scale).abs());
            quantized.push(q as i8);
        }
    }
    let relative = if max_abs > 0.0 { error / max_abs } else { 0.0 };
    (quantized, scales, relative)
}

/// max|x| of each named activation over the calibration set, read by making them extra
/// outputs of the fp32 graph and running it in tract.
fn calibrate(
    model: &pb::ModelProto,
    input_shape: &[usize],
    calibration: &[Vec<f32>],
    activations: &[String],
) -> Result<HashMap<String, f32>, QuantizeError> {
    if calibration.is_empty() {
        return Err(QuantizeError::NoCalibration);
    }
    let expected: usize = input_shape.iter().product();
    if let Some((index, sample)) = calibration
        .iter()
        .enumerate()
        .find(|(_, sample)| sample.len() != expected)
    {
        return Err(QuantizeError::CalibrationShape {
            index,
            len: sample.len(),
            shape: input_shape.to_vec(),
            expected,
        });
    }
    let mut probe = model.clone();
    let Some(graph) = probe.graph.as_mut() else {
        return Err(QuantizeError::NoGraph);
    };
    // A layer that reads the graph input directly (an MLP's first Linear) is calibrated on the
    // samples themselves; tract cannot expose its own input as an output.
    let graph_inputs: HashSet<String> = graph.input.iter().map(|i| i.name.clone()).collect();
    let mut seen = HashSet::new();
    let (direct, intermediate): (Vec<String>, Vec<String>) = activations
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .cloned()
        .partition(|name| graph_inputs.contains(name));
    let mut ranges: HashMap<String, f32> = HashMap::new();
    for (index, sample) in calibration.iter().enumerate() {
        for name in &direct {
            widen_range(&mut ranges, name, sample.iter().copied(), index)?;
        }
    }
    if intermediate.is_empty() {
        return Ok(ranges);
    }
    graph.output = intermediate
        .iter()
        .map(|name| pb::ValueInfoProto {
            name: name.clone(),
            ..Default::default()
        })
        .collect();
    let plan = super::parity::probe_plan(&probe)?;
    for (index, sample) in calibration.iter().enumerate() {
        let input = TractTensor::from_shape(input_shape, sample).map_err(tract_error)?;
        let outputs = plan.run(tvec!(input.into_tvalue())).map_err(tract_error)?;
        for (name, value) in intermediate.iter().zip(outputs.iter()) {
            let view = value.to_plain_array_view::<f32>().map_err(tract_error)?;
            widen_range(&mut ranges, name, view.iter().copied(), index)?;
        }
    }
    Ok(ranges)
}

/// Raises `ranges[name]` to max|x| over `values`; a non-finite value is an error naming the
/// activation and the calibration sample.
fn widen_range(
    ranges: &mut HashMap<String, f32>,
    name: &str,
    values: impl Iterator<Item = f32>,
    index: usize,
) -> Result<(), QuantizeError> {
    let range = ranges.entry(name.to_string()).or_insert(0.0);
    for x in values {
        if !x.is_finite() {
            return Err(QuantizeError::NonFinite {
                name: name.to_string(),
                index,
            });
        }
        *range = range.max(x.abs());
    }
    Ok(())
}

/// Median wall time of one inference, in milliseconds, over `runs` runs after two warm-ups,
/// of a tract plan ([`super::parity::plan`]: optimized, single thread, as on the box).
pub fn median_latency_ms(
    plan: &super::parity::TractPlan,
    input_shape: &[usize],
    input: &[f32],
    runs: usize,
) -> Result<f64, QuantizeError> {
    let input = TractTensor::from_shape(input_shape, input).map_err(tract_error)?;
    let mut times = Vec::with_capacity(runs.max(1));
    for round in 0..runs.max(1) + 2 {
        let started = Instant::now();
        plan.run(tvec!(input.clone().into_tvalue()))
            .map_err(tract_error)?;
        if round >= 2 {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn f32_values(tensor: &pb::TensorProto) -> Result<Vec<f32>, QuantizeError> {
    let count: usize = tensor.dims.iter().map(|d| *d as usize).product();
    let values: Vec<f32> = if !tensor.raw_data.is_empty() {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        tensor.float_data.clone()
    };
    if values.len() != count {
        return Err(QuantizeError::Weight {
            name: tensor.name.clone(),
            problem: format!("{} values for shape {:?}", values.len(), tensor.dims),
        });
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(QuantizeError::Weight {
            name: tensor.name.clone(),
            problem: format!("value {index} is not finite"),
        });
    }
    Ok(values)
}

fn simple_node(
    name: &str,
    op: &str,
    inputs: Vec<String>,
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        name: name.to_string(),
        op_type: op.to_string(),
        input: inputs,
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

fn tensor_f32(name: &str, shape: &[usize], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        data_type: ElemType::F32 as i32,
        dims: shape.iter().map(|d| *d as i64).collect(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn scalar_f32(name: &str, value: f32) -> pb::TensorProto {
    tensor_f32(name, &[], &[value])
}

fn tensor_i8(name: &str, shape: &[usize], values: &[i8]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        data_type: ElemType::I8 as i32,
        dims: shape.iter().map(|d| *d as i64).collect(),
        raw_data: values.iter().map(|v| *v as u8).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::{QuantizeError, quantize, quantize_per_column};
    use crate::train::onnx::{ExportError, OnnxGraph};

    /// A small MobileNetV2 trunk (standard, depthwise and pointwise convolutions): every
    /// convolution becomes ConvInteger, and tract runs the int8 graph close to the fp32 one.
    #[test]
    fn convolutions_quantize_per_output_channel_and_stay_close_to_fp32() {
        use crate::train::mobilenet::{MobileNetV2, Tap};
        use crate::train::parity::{plan, relative_difference, run_plan_outputs};
        let device = burn::prelude::Device::flex();
        let net = MobileNetV2::new(&device);
        let shape = [1, 3, 32, 32];
        let model = net.to_taps_onnx(shape, &[Tap::output(2)]).unwrap();
        let mut rng = crate::rng::SplitMix64::new(4);
        let samples: Vec<Vec<f32>> = (0..3)
            .map(|_| {
                (0..3 * 32 * 32)
                    .map(|_| rng.range(-2.0, 2.0) as f32)
                    .collect()
            })
            .collect();
        let done = super::quantize_convolutions(&model, &shape, &samples[..2]).unwrap();
        let convolutions = model
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .filter(|n| n.op_type == "Conv")
            .count();
        assert_eq!(done.layers.len(), convolutions);
        let ops: Vec<&str> = done
            .model
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(!ops.contains(&"Conv"), "{ops:?}");
        let fp32 = run_plan_outputs(&plan(&model).unwrap(), &shape, &samples[2]).unwrap();
        let int8 = run_plan_outputs(&plan(&done.model).unwrap(), &shape, &samples[2]).unwrap();
        let gap = relative_difference(&fp32[0], &int8[0]).unwrap();
        assert!(gap > 0.0 && gap < 0.1, "int8 against fp32: {gap}");
    }

    /// `y = x·W` with `x` the graph input: the first layer of an MLP.
    fn linear_graph(constant_weight: bool) -> Result<tract_onnx::pb::ModelProto, ExportError> {
        let mut graph = OnnxGraph::new("linear");
        let x = graph.input("x", &[1, 4])?;
        let w = if constant_weight {
            graph.constant_f32("w", &[4, 3], &[0.5; 12])?
        } else {
            graph.input("w", &[4, 3])?
        };
        let y = graph.matmul(&x, &w)?;
        graph.output(&y, "y")?;
        Ok(graph.finish())
    }

    #[test]
    fn bad_calibration_and_models_are_named_errors() -> Result<(), ExportError> {
        let model = linear_graph(true)?;
        let short = quantize(&model, &[1, 4], &[vec![1.0; 4], vec![1.0; 3]]);
        assert!(matches!(
            short,
            Err(QuantizeError::CalibrationShape {
                index: 1,
                len: 3,
                expected: 4,
                ..
            })
        ));
        assert!(matches!(
            quantize(&model, &[1, 4], &[]),
            Err(QuantizeError::NoCalibration)
        ));
        let nan = quantize(&model, &[1, 4], &[vec![f32::NAN; 4]]);
        assert!(matches!(
            nan,
            Err(QuantizeError::NonFinite { index: 0, .. })
        ));
        let no_weights = quantize(&linear_graph(false)?, &[1, 4], &[vec![1.0; 4]]);
        assert!(matches!(no_weights, Err(QuantizeError::NothingToQuantize)));
        let calibration = [vec![1.0, -2.0, 0.5, 0.0]];
        let quantized = quantize(&model, &[1, 4], &calibration).map_err(|e| {
            ExportError::Unsupported(format!("a graph-input layer must quantize: {e}"))
        })?;
        assert_eq!(quantized.layers.len(), 1);
        assert!((quantized.layers[0].activation_scale - 2.0 / 127.0).abs() < 1e-9);
        // And it runs in tract, close to fp32: 0.5·(1 − 2 + 0.5) = −0.25 per output.
        let run = |m| crate::train::parity::run_tract(m, &[1, 4], &calibration[0]);
        let (fp32, int8) = (run(&model), run(&quantized.model));
        assert!(
            matches!((fp32, int8), (Ok((_, a)), Ok((_, b))) if a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 0.01 && (x + 0.25).abs() < 1e-6)),
            "int8 graph-input layer drifted"
        );
        Ok(())
    }

    #[test]
    fn per_column_scales_use_the_full_int8_range() {
        // Column 0 spans ±2, column 1 ±0.01: per-column scales keep column 1 precise.
        let weight = [2.0, 0.01, -0.9, -0.004, 0.5, 0.0025];
        let (q, scales, error) = quantize_per_column(&weight, 3, 2);
        assert_eq!(q, [127, 127, -57, -51, 32, 32]);
        assert!((scales[0] - 2.0 / 127.0).abs() < 1e-9);
        assert!((scales[1] - 0.01 / 127.0).abs() < 1e-9);
        assert!(error < 0.5 / 127.0 + 1e-6, "{error}");
        let (q, scales, _) = quantize_per_column(&[0.0, 0.0], 2, 1);
        assert_eq!((q, scales), (vec![0, 0], vec![1.0]));
    }
}
