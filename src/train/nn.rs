//! Layers the model families share, built from burn's and exportable to ONNX.

use burn::module::{Module, Param};
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{Dropout, DropoutConfig, Gelu, Initializer, Linear, LinearConfig};
use burn::prelude::*;

use super::onnx::{ExportError, ExportOnnx, OnnxGraph, Value, parameter};

/// Layer normalisation over the last axis. burn's own keeps epsilon private; the export needs it.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub epsilon: f64,
}

/// Configuration of [`LayerNorm`].
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    pub d_model: usize,
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

impl LayerNormConfig {
    pub fn init(&self, device: &Device) -> LayerNorm {
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: Initializer::Zeros.init([self.d_model], device),
            epsilon: self.epsilon,
        }
    }
}

impl LayerNorm {
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::layer_norm(
            input,
            self.gamma.val(),
            Some(self.beta.val()),
            self.epsilon,
        )
    }
}

impl ExportOnnx for LayerNorm {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let [d_model] = self.gamma.dims();
        if input.shape.last() != Some(&d_model) {
            return Err(ExportError::Incompatible {
                op: format!("LayerNorm over {d_model} features"),
                shapes: vec![input.shape.clone()],
            });
        }
        let gamma = parameter(graph, scope, "gamma", self.gamma.val())?;
        let beta = parameter(graph, scope, "beta", self.beta.val())?;
        let shape = input.shape.clone();
        graph.node(
            "LayerNormalization",
            &[input, &gamma, &beta],
            &[
                super::onnx::Attr::Int("axis", -1),
                super::onnx::Attr::Float("epsilon", self.epsilon as f32),
            ],
            &shape,
        )
    }
}

/// The transformer MLP: Linear → GELU → Linear.
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub activation: Gelu,
    pub fc2: Linear,
    pub dropout: Dropout,
}

impl Mlp {
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let hidden = self
            .dropout
            .forward(self.activation.forward(self.fc1.forward(input)));
        self.dropout.forward(self.fc2.forward(hidden))
    }
}

impl ExportOnnx for Mlp {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let hidden = self
            .fc1
            .export_onnx(graph, input, &format!("{scope}.fc1"))?;
        let hidden = self
            .activation
            .export_onnx(graph, &hidden, &format!("{scope}.gelu"))?;
        self.fc2
            .export_onnx(graph, &hidden, &format!("{scope}.fc2"))
    }
}

/// A pre-norm transformer encoder block, as in ViT: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub struct TransformerBlock {
    pub norm1: LayerNorm,
    pub attention: MultiHeadAttention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

/// Configuration of [`TransformerBlock`].
#[derive(Config, Debug)]
pub struct TransformerBlockConfig {
    pub d_model: usize,
    pub n_heads: usize,
    /// Hidden width of the MLP as a multiple of `d_model`.
    #[config(default = 4)]
    pub mlp_ratio: usize,
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Epsilon of both layer norms (timm's ViT uses 1e-6).
    #[config(default = 1e-5)]
    pub layer_norm_epsilon: f64,
}

impl TransformerBlockConfig {
    pub fn init(&self, device: &Device) -> TransformerBlock {
        let hidden = self.d_model * self.mlp_ratio;
        TransformerBlock {
            norm1: LayerNormConfig::new(self.d_model)
                .with_epsilon(self.layer_norm_epsilon)
                .init(device),
            attention: MultiHeadAttentionConfig::new(self.d_model, self.n_heads)
                .with_dropout(self.dropout)
                .init(device),
            norm2: LayerNormConfig::new(self.d_model)
                .with_epsilon(self.layer_norm_epsilon)
                .init(device),
            mlp: Mlp {
                fc1: LinearConfig::new(self.d_model, hidden).init(device),
                activation: Gelu::new(),
                fc2: LinearConfig::new(hidden, self.d_model).init(device),
                dropout: DropoutConfig::new(self.dropout).init(),
            },
        }
    }
}

impl TransformerBlock {
    /// `[batch, seq, d_model]` → same shape.
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        let attended = self
            .attention
            .forward(MhaInput::self_attn(self.norm1.forward(input.clone())))
            .context;
        let x = input + attended;
        let mlp = self.mlp.forward(self.norm2.forward(x.clone()));
        x + mlp
    }
}

impl ExportOnnx for TransformerBlock {
    fn export_onnx(
        &self,
        graph: &mut OnnxGraph,
        input: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let normed = self
            .norm1
            .export_onnx(graph, input, &format!("{scope}.norm1"))?;
        let attended = self
            .attention
            .export_onnx(graph, &normed, &format!("{scope}.attention"))?;
        let x = graph.add(input, &attended)?;
        let normed = self
            .norm2
            .export_onnx(graph, &x, &format!("{scope}.norm2"))?;
        let mlp = self
            .mlp
            .export_onnx(graph, &normed, &format!("{scope}.mlp"))?;
        graph.add(&x, &mlp)
    }
}
