//! MAVD's inference graph in ONNX for a window of up to `capacity` snippets.
//!
//! tract plans are fixed-shape, but a live stream starts with fewer snippets than the window
//! holds. The graph therefore takes the window padded at the end with zeros, plus two inputs
//! the runtime computes for the valid length `n` ([`crate::models::violence::window`]):
//!
//! - `key_bias` `[capacity]`: 0 for valid positions, −1e9 for padding, added to the attention
//!   logits so softmax gives padding no weight;
//! - `local_kernel` `[capacity, capacity]`: the distance kernel of `n` positions in the
//!   top-left corner, zeros elsewhere.
//!
//! Nothing else reads past position `n − 1`: the encoders' k = 3 convolution sees the zero
//! padding as the authors' zero padding, and the fusion TCN is causal. So the first `n`
//! outputs equal the model run on the `n` snippets alone, which the parity tests check.

use burn::nn::conv::Conv1d;
use burn::nn::{Gelu, Linear, PaddingConfig1d};

use super::model::{
    CausalConv, Encoder, EncoderLayer, LocalGlobalAttention, Mavd, MavdConfig, MilRegressor,
    Projection, TemporalBlock,
};
use crate::models::violence::window::{
    AUDIO_INPUT, AUDIO_SCORE, FLOW_INPUT, FLOW_SCORE, FUSED_SCORE, KEY_BIAS_INPUT,
    LOCAL_KERNEL_INPUT, VIDEO_INPUT, VIDEO_SCORE,
};
use crate::train::onnx::{ExportError, ExportOnnx, ModelProto, OnnxGraph, Value, parameter};

/// The graph-wide inputs every attention layer reads.
struct WindowInputs {
    key_bias: Value,
    local_kernel: Value,
}

/// Writes the window graph: features `[1, capacity, input]` per modality in, scores
/// `[1, capacity]` out (fused, then video, audio, flow).
pub fn export_window(
    mavd: &Mavd,
    config: &MavdConfig,
    capacity: usize,
) -> Result<ModelProto, ExportError> {
    if capacity == 0 {
        return Err(ExportError::Unsupported("a window of zero snippets".into()));
    }
    let mut graph = OnnxGraph::new("mavd_window");
    let video = graph.input(VIDEO_INPUT, &[1, capacity, config.video.input])?;
    let audio = graph.input(AUDIO_INPUT, &[1, capacity, config.audio.input])?;
    let flow = graph.input(FLOW_INPUT, &[1, capacity, config.flow.input])?;
    let window = WindowInputs {
        key_bias: graph.input(KEY_BIAS_INPUT, &[capacity])?,
        local_kernel: graph.input(LOCAL_KERNEL_INPUT, &[capacity, capacity])?,
    };
    let video = encoder(&mavd.video, &mut graph, &video, &window, "video")?;
    let audio = encoder(&mavd.audio, &mut graph, &audio, &window, "audio")?;
    let flow = encoder(&mavd.flow, &mut graph, &flow, &window, "flow")?;
    let projected_audio = projection(
        &mavd.audio_projection,
        &mut graph,
        &audio,
        "audio_projection",
    )?;
    let projected_flow = projection(&mavd.flow_projection, &mut graph, &flow, "flow_projection")?;
    let fused_input = graph.concat(&[&video, &projected_audio, &projected_flow], 2)?;
    let fused = fusion(mavd, &mut graph, &fused_input)?;
    graph.output(&fused, FUSED_SCORE)?;
    for (encoder, features, name, scope) in [
        (&mavd.video, &video, VIDEO_SCORE, "video.mil"),
        (&mavd.audio, &audio, AUDIO_SCORE, "audio.mil"),
        (&mavd.flow, &flow, FLOW_SCORE, "flow.mil"),
    ] {
        let score = mil(&encoder.mil, &mut graph, features, scope)?;
        graph.output(&score, name)?;
    }
    Ok(graph.finish())
}

/// `[1, L, C]` → `[1, C, L]` (and back, the permutation being its own inverse).
fn swap_time_channels(graph: &mut OnnxGraph, x: &Value) -> Result<Value, ExportError> {
    graph.transpose(x, &[0, 2, 1])
}

fn conv1d(
    conv: &Conv1d,
    graph: &mut OnnxGraph,
    x: &Value,
    scope: &str,
) -> Result<Value, ExportError> {
    let pad = match conv.padding {
        PaddingConfig1d::Explicit(before, after) => (before, after),
        PaddingConfig1d::Valid => (0, 0),
        PaddingConfig1d::Same => {
            return Err(ExportError::Unsupported(format!(
                "{scope}: 'same' padding (the encoders use explicit padding)"
            )));
        }
    };
    let weight = parameter(graph, scope, "weight", conv.weight.val())?;
    let bias = conv
        .bias
        .as_ref()
        .ok_or_else(|| ExportError::Unsupported(format!("{scope}: a convolution without bias")))?;
    let bias = parameter(graph, scope, "bias", bias.val())?;
    graph.conv1d(x, &weight, &bias, pad, conv.dilation)
}

fn encoder(
    encoder: &Encoder,
    graph: &mut OnnxGraph,
    x: &Value,
    window: &WindowInputs,
    scope: &str,
) -> Result<Value, ExportError> {
    let channels_first = swap_time_channels(graph, x)?;
    let embedded = conv1d(
        &encoder.embedding,
        graph,
        &channels_first,
        &format!("{scope}.embedding"),
    )?;
    let embedded = graph.unary("Relu", &embedded)?;
    let mut x = swap_time_channels(graph, &embedded)?;
    for (index, layer) in encoder.layers.iter().enumerate() {
        x = encoder_layer(layer, graph, &x, window, &format!("{scope}.layer{index}"))?;
    }
    Ok(x)
}

fn encoder_layer(
    layer: &EncoderLayer,
    graph: &mut OnnxGraph,
    x: &Value,
    window: &WindowInputs,
    scope: &str,
) -> Result<Value, ExportError> {
    let normed = layer
        .attention_norm
        .export_onnx(graph, x, &format!("{scope}.attention_norm"))?;
    let attended = attention(
        &layer.attention,
        graph,
        &normed,
        window,
        &format!("{scope}.attention"),
    )?;
    let x = graph.add(&attended, x)?;
    let normed =
        layer
            .feed_forward_norm
            .export_onnx(graph, &x, &format!("{scope}.feed_forward_norm"))?;
    let hidden =
        layer
            .feed_forward1
            .export_onnx(graph, &normed, &format!("{scope}.feed_forward1"))?;
    let hidden = Gelu::new().export_onnx(graph, &hidden, &format!("{scope}.gelu"))?;
    let out = layer
        .feed_forward2
        .export_onnx(graph, &hidden, &format!("{scope}.feed_forward2"))?;
    graph.add(&out, &x)
}

fn attention(
    attention: &LocalGlobalAttention,
    graph: &mut OnnxGraph,
    x: &Value,
    window: &WindowInputs,
    scope: &str,
) -> Result<Value, ExportError> {
    let &[batch, snippets, _] = x.shape.as_slice() else {
        return Err(ExportError::Incompatible {
            op: format!("{scope} expecting [batch, snippets, width]"),
            shapes: vec![x.shape.clone()],
        });
    };
    let (heads, width) = (attention.heads, attention.head_width);
    let inner = heads * width;
    let qkvt = attention
        .to_qkvt
        .export_onnx(graph, x, &format!("{scope}.to_qkvt"))?;
    let part = |graph: &mut OnnxGraph, index: usize, perm: [usize; 4]| {
        let slice = graph.slice(&qkvt, &[2], &[(index * inner, (index + 1) * inner)])?;
        let split = graph.reshape(&slice, &[batch, snippets, heads, width])?;
        graph.transpose(&split, &perm)
    };
    let query = part(graph, 0, [0, 2, 1, 3])?;
    // Keys straight to [batch, heads, width, snippets].
    let key_t = part(graph, 1, [0, 2, 3, 1])?;
    let value = part(graph, 2, [0, 2, 1, 3])?;
    let local_value = part(graph, 3, [0, 2, 1, 3])?;
    let logits = graph.matmul(&query, &key_t)?;
    let scale = graph.constant_f32(
        &format!("{scope}.sqrt_head_width"),
        &[],
        &[(width as f32).sqrt()],
    )?;
    let logits = graph.binary("Div", &logits, &scale)?;
    let logits = graph.add(&logits, &window.key_bias)?;
    let weights = graph.softmax(&logits, 3)?;
    let global = graph.matmul(&weights, &value)?;
    let local = graph.matmul(&window.local_kernel, &local_value)?;
    let mixed = graph.concat(&[&global, &local], 3)?;
    let mixed = graph.transpose(&mixed, &[0, 2, 1, 3])?;
    let mixed = graph.reshape(&mixed, &[batch, snippets, 2 * inner])?;
    attention
        .to_out
        .export_onnx(graph, &mixed, &format!("{scope}.to_out"))
}

fn linear_relu(
    linear: &Linear,
    graph: &mut OnnxGraph,
    x: &Value,
    scope: &str,
) -> Result<Value, ExportError> {
    let y = linear.export_onnx(graph, x, scope)?;
    graph.unary("Relu", &y)
}

/// `[1, L, width]` → scores `[1, L]`.
fn mil(
    mil: &MilRegressor,
    graph: &mut OnnxGraph,
    x: &Value,
    scope: &str,
) -> Result<Value, ExportError> {
    let hidden = linear_relu(&mil.fc1, graph, x, &format!("{scope}.fc1"))?;
    let hidden = mil
        .fc2
        .export_onnx(graph, &hidden, &format!("{scope}.fc2"))?;
    let logit = mil
        .fc3
        .export_onnx(graph, &hidden, &format!("{scope}.fc3"))?;
    let score = graph.unary("Sigmoid", &logit)?;
    let shape = score.shape[..score.rank() - 1].to_vec();
    graph.reshape(&score, &shape)
}

fn projection(
    projection: &Projection,
    graph: &mut OnnxGraph,
    x: &Value,
    scope: &str,
) -> Result<Value, ExportError> {
    let mut x = x.clone();
    for (index, layer) in projection.layers.iter().enumerate() {
        x = linear_relu(layer, graph, &x, &format!("{scope}.layer{index}"))?;
    }
    Ok(x)
}

/// The weight-normalised causal convolution with its weight folded (`g · v / ‖v‖`).
fn causal_conv(
    conv: &CausalConv,
    graph: &mut OnnxGraph,
    x: &Value,
    scope: &str,
) -> Result<Value, ExportError> {
    let [_, _, kernel] = conv.direction.dims();
    let weight = parameter(graph, scope, "weight", conv.weight())?;
    let bias = parameter(graph, scope, "bias", conv.bias.val())?;
    let pad = ((kernel - 1) * conv.dilation, 0);
    graph.conv1d(x, &weight, &bias, pad, conv.dilation)
}

fn temporal_block(
    block: &TemporalBlock,
    graph: &mut OnnxGraph,
    x: &Value,
    scope: &str,
) -> Result<Value, ExportError> {
    let out = causal_conv(&block.conv1, graph, x, &format!("{scope}.conv1"))?;
    let out = graph.unary("Relu", &out)?;
    let out = causal_conv(&block.conv2, graph, &out, &format!("{scope}.conv2"))?;
    let out = graph.unary("Relu", &out)?;
    let sum = graph.add(&out, x)?;
    graph.unary("Relu", &sum)
}

fn fusion(mavd: &Mavd, graph: &mut OnnxGraph, x: &Value) -> Result<Value, ExportError> {
    let fusion = &mavd.fusion;
    let x = linear_relu(&fusion.embed1, graph, x, "fusion.embed1")?;
    let x = linear_relu(&fusion.embed2, graph, &x, "fusion.embed2")?;
    let mut x = swap_time_channels(graph, &x)?;
    for (index, block) in fusion.tcn.iter().enumerate() {
        x = temporal_block(block, graph, &x, &format!("fusion.tcn{index}"))?;
    }
    let x = swap_time_channels(graph, &x)?;
    mil(&fusion.mil, graph, &x, "fusion.mil")
}

/// Writes the window graph to `path` after checking it against burn on probe features, for a
/// full window and a half-full one. Returns the worst absolute score difference.
pub fn write_window(
    mavd: &Mavd,
    config: &MavdConfig,
    capacity: usize,
    path: &std::path::Path,
) -> Result<f32, crate::train::TrainError> {
    use burn::prelude::*;

    use crate::models::violence::window::WindowModel;
    use crate::train::parity::ParityError;

    let proto = export_window(mavd, config, capacity)?;
    let model = WindowModel::from_proto(&proto)?;
    let device = mavd.fusion.embed1.weight.device();
    let mut worst = 0.0f32;
    for snippets in [capacity, capacity.div_ceil(2)] {
        let probe = |width: usize, modality: usize| {
            let values = super::probe_features(snippets, width, modality);
            let tensor = Tensor::<3>::from_data(
                TensorData::new(values.clone(), [1, snippets, width]),
                &device,
            );
            (values, tensor)
        };
        let (video, video_t) = probe(config.video.input, 0);
        let (audio, audio_t) = probe(config.audio.input, 1);
        let (flow, flow_t) = probe(config.flow.input, 2);
        let burn: Vec<f32> = mavd
            .forward(video_t, audio_t, flow_t)
            .fused
            .into_data()
            .try_to_vec()
            .map_err(|e| ParityError::Burn(format!("{e:?}")))?;
        let tract = model.score(&video, &audio, &flow, snippets)?.fused;
        if burn.len() != tract.len() {
            return Err(ParityError::Shape {
                burn: vec![burn.len()],
                tract: vec![tract.len()],
            }
            .into());
        }
        // Scores lie in (0, 1): compared absolutely (a relative gap would blow up near 0).
        for (a, b) in burn.iter().zip(&tract) {
            let diff = (a - b).abs();
            worst = worst.max(if diff.is_nan() { f32::INFINITY } else { diff });
        }
    }
    if worst > 1e-4 {
        return Err(ParityError::Mismatch {
            max_abs_diff: worst,
            index: 0,
            tolerance: 1e-4,
        }
        .into());
    }
    crate::train::onnx::save(&proto, path)?;
    Ok(worst)
}
