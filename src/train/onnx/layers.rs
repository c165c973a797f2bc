//! ONNX export of burn layers, one `ExportOnnx` impl per layer type.
//!
//! Each impl writes the operators its burn `forward` computes in inference mode, with that
//! module's weights as initializers named `<scope>.<parameter>`. The parity tests run the burn
//! module and the tract plan of the written graph on the same input, so a forward and an export
//! that drift apart fail a test rather than ship.

use burn::nn::conv::Conv2d;
use burn::nn::norm::BatchNorm;
use burn::nn::{Gelu, Linear, PaddingConfig2d, Relu, attention::MultiHeadAttention};
use burn::tensor::Tensor;

use super::ExportError;
use super::graph::{Attr, OnnxGraph, Value};

/// A module that can append its inference-mode forward pass to an ONNX graph.
pub trait ExportOnnx {
    /// Appends the nodes computing this module on `input` and returns the output value.
    /// `scope` prefixes the names of the initializers (`encoder.block0.attn`).
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError>;
}

/// Copies a tensor's values out of burn (f32, row-major).
pub fn tensor_values<const D: usize>(
    tensor: Tensor<D>,
    name: &str,
) -> Result<Vec<f32>, ExportError> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|err| ExportError::Weights {
            name: name.to_string(),
            reason: format!("{err:?}"),
        })
}

/// Adds a parameter tensor as an initializer named `<scope>.<name>`.
pub fn parameter<const D: usize>(
    graph: &mut OnnxGraph,
    scope: &str,
    name: &str,
    tensor: Tensor<D>,
) -> Result<Value, ExportError> {
    let full_name = format!("{scope}.{name}");
    let shape = tensor.dims().to_vec();
    let values = tensor_values(tensor, &full_name)?;
    graph.constant_f32(&full_name, &shape, &values)
}

fn expect_last_dim(op: &str, input: &Value, dim: usize) -> Result<(), ExportError> {
    if input.shape.last() != Some(&dim) {
        return Err(ExportError::Incompatible {
            op: format!("{op} expecting last dimension {dim}"),
            shapes: vec![input.shape.clone()],
        });
    }
    Ok(())
}

impl ExportOnnx for Linear {
    /// `MatMul(x, W[in, out]) + b`: the form the quantizer rewrites into `MatMulInteger`.
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let [d_input, _] = self.weight.dims();
        expect_last_dim("Linear", input, d_input)?;
        let weight = parameter(graph, scope, "weight", self.weight.val())?;
        let mut output = graph.matmul(input, &weight)?;
        if let Some(bias) = &self.bias {
            let bias = parameter(graph, scope, "bias", bias.val())?;
            output = graph.add(&output, &bias)?;
        }
        Ok(output)
    }
}

impl ExportOnnx for Conv2d {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let [out_channels, in_per_group, kh, kw] = self.weight.dims();
        let &[batch, channels, height, width] = input.shape.as_slice() else {
            return Err(ExportError::Incompatible {
                op: "Conv2d expecting [N, C, H, W]".into(),
                shapes: vec![input.shape.clone()],
            });
        };
        if channels != in_per_group * self.groups {
            return Err(ExportError::Incompatible {
                op: format!("Conv2d with {} input channels", in_per_group * self.groups),
                shapes: vec![input.shape.clone()],
            });
        }
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let (top, left, bottom, right) = match &self.padding {
            PaddingConfig2d::Valid => (0, 0, 0, 0),
            PaddingConfig2d::Explicit(top, left, bottom, right) => (*top, *left, *bottom, *right),
            PaddingConfig2d::Same => {
                let (top, bottom) = same_padding(height, kh, sh, dh);
                let (left, right) = same_padding(width, kw, sw, dw);
                (top, left, bottom, right)
            }
        };
        let out_dim = |size: usize, before: usize, after: usize, k: usize, s: usize, d: usize| {
            (size + before + after)
                .checked_sub(d * (k - 1) + 1)
                .map(|span| span / s + 1)
        };
        let (Some(out_h), Some(out_w)) = (
            out_dim(height, top, bottom, kh, sh, dh),
            out_dim(width, left, right, kw, sw, dw),
        ) else {
            return Err(ExportError::Incompatible {
                op: format!("Conv2d kernel {kh}x{kw} larger than its padded input"),
                shapes: vec![input.shape.clone()],
            });
        };
        let weight = parameter(graph, scope, "weight", self.weight.val())?;
        let mut inputs = vec![input.clone(), weight];
        if let Some(bias) = &self.bias {
            inputs.push(parameter(graph, scope, "bias", bias.val())?);
        }
        let refs: Vec<&Value> = inputs.iter().collect();
        graph.node(
            "Conv",
            &refs,
            &[
                Attr::Ints("kernel_shape", vec![kh as i64, kw as i64]),
                Attr::Ints("strides", vec![sh as i64, sw as i64]),
                Attr::Ints("dilations", vec![dh as i64, dw as i64]),
                Attr::Ints(
                    "pads",
                    vec![top as i64, left as i64, bottom as i64, right as i64],
                ),
                Attr::Int("group", self.groups as i64),
            ],
            &[batch, out_channels, out_h, out_w],
        )
    }
}

/// TensorFlow-style "same" padding: the output is `ceil(size / stride)`, the odd pixel of
/// padding goes after.
fn same_padding(size: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let needed = ((out - 1) * stride + dilation * (kernel - 1) + 1).saturating_sub(size);
    (needed / 2, needed - needed / 2)
}

impl ExportOnnx for BatchNorm {
    /// Inference-mode batch norm with the running statistics.
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let [features] = self.gamma.dims();
        if input.shape.get(1) != Some(&features) {
            return Err(ExportError::Incompatible {
                op: format!("BatchNorm over {features} channels (axis 1)"),
                shapes: vec![input.shape.clone()],
            });
        }
        let gamma = parameter(graph, scope, "gamma", self.gamma.val())?;
        let beta = parameter(graph, scope, "beta", self.beta.val())?;
        let mean = parameter(graph, scope, "running_mean", self.running_mean.value())?;
        let var = parameter(graph, scope, "running_var", self.running_var.value())?;
        let shape = input.shape.clone();
        graph.node(
            "BatchNormalization",
            &[input, &gamma, &beta, &mean, &var],
            &[Attr::Float("epsilon", self.epsilon as f32)],
            &shape,
        )
    }
}

impl ExportOnnx for Relu {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        _: &str,
    ) -> Result<Value, ExportError> {
        graph.unary("Relu", input)
    }
}

impl ExportOnnx for Gelu {
    /// Exact GELU as `0.5·x·(1 + erf(x/√2))`, or the tanh approximation when the module uses it.
    /// Written out rather than as opset-20 `Gelu`, which tract 0.23 and older runtimes lack; tract
    /// recognises the erf pattern and fuses it.
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let one = graph.constant_f32(&format!("{scope}.one"), &[], &[1.0])?;
        let inner = if self.approximate {
            // tanh(√(2/π)·(x + 0.044715·x³))
            let x2 = graph.mul(input, input)?;
            let x3 = graph.mul(&x2, input)?;
            let cubic = graph.mul_scalar(&x3, 0.044715, &format!("{scope}.cubic"))?;
            let sum = graph.add(input, &cubic)?;
            let scaled = graph.mul_scalar(
                &sum,
                (2.0 / std::f64::consts::PI).sqrt() as f32,
                &format!("{scope}.sqrt_2_over_pi"),
            )?;
            graph.unary("Tanh", &scaled)?
        } else {
            let scaled = graph.mul_scalar(
                input,
                std::f32::consts::FRAC_1_SQRT_2,
                &format!("{scope}.inv_sqrt2"),
            )?;
            graph.unary("Erf", &scaled)?
        };
        let shifted = graph.add(&inner, &one)?;
        let product = graph.mul(input, &shifted)?;
        graph.mul_scalar(&product, 0.5, &format!("{scope}.half"))
    }
}

impl ExportOnnx for MultiHeadAttention {
    /// Self-attention on `[batch, seq, d_model]`, exactly as burn's forward without masks:
    /// per-head `softmax(QKᵀ/√d_k)·V`, heads concatenated, output projection. Q, K, V and the
    /// output projection are `Linear` exports, so the quantizer makes them int8; the attention
    /// core stays fp32 (the int8 study found quantized attention slower and wrong in tract).
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        if self.quiet_softmax {
            return Err(ExportError::Unsupported(format!(
                "{scope}: quiet softmax attention has no ONNX export yet"
            )));
        }
        let &[batch, seq, d_model] = input.shape.as_slice() else {
            return Err(ExportError::Incompatible {
                op: "MultiHeadAttention expecting [batch, seq, d_model]".into(),
                shapes: vec![input.shape.clone()],
            });
        };
        expect_last_dim("MultiHeadAttention", input, self.d_model)?;
        let (heads, d_k) = (self.n_heads, self.d_k);
        let split_heads = |graph: &mut OnnxGraph, linear: &Linear, name: &str, perm: [usize; 4]| {
            let projected = linear.export_onnx(graph, input, &format!("{scope}.{name}"))?;
            let split = graph.reshape(&projected, &[batch, seq, heads, d_k])?;
            graph.transpose(&split, &perm)
        };
        let query = split_heads(graph, &self.query, "query", [0, 2, 1, 3])?;
        // Keys go straight to [batch, heads, d_k, seq]: one transpose instead of two.
        let key_t = split_heads(graph, &self.key, "key", [0, 2, 3, 1])?;
        let value = split_heads(graph, &self.value, "value", [0, 2, 1, 3])?;
        let scores = graph.matmul(&query, &key_t)?;
        let scale =
            graph.constant_f32(&format!("{scope}.sqrt_d_k"), &[], &[(d_k as f32).sqrt()])?;
        let scores = graph.binary("Div", &scores, &scale)?;
        let weights = graph.softmax(&scores, 3)?;
        let context = graph.matmul(&weights, &value)?;
        let context = graph.transpose(&context, &[0, 2, 1, 3])?;
        let context = graph.reshape(&context, &[batch, seq, d_model])?;
        self.output
            .export_onnx(graph, &context, &format!("{scope}.output"))
    }
}

#[cfg(test)]
mod tests {
    use super::same_padding;

    #[test]
    fn same_padding_keeps_size_at_stride_one_and_ceils_at_stride_two() {
        assert_eq!(same_padding(16, 3, 1, 1), (1, 1));
        assert_eq!(same_padding(16, 4, 1, 1), (1, 2));
        assert_eq!(same_padding(16, 3, 2, 1), (0, 1));
        assert_eq!(same_padding(15, 3, 2, 1), (1, 1));
        assert_eq!(same_padding(16, 3, 1, 2), (2, 2));
    }
}
