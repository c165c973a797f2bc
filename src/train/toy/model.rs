//! ToyNet: a tiny conv + transformer classifier that uses every layer type the three model
//! families export (conv, depthwise conv, batch norm, ReLU, linear, multi-head attention,
//! layer norm, GELU, mean pooling, softmax), so the whole train → export → parity → int8 →
//! eval chain is exercised in seconds on a CPU.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::norm::{BatchNorm, BatchNormConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::train::nn::{LayerNorm, LayerNormConfig, TransformerBlock, TransformerBlockConfig};
use crate::train::onnx::{ExportError, ExportOnnx, ModelProto, OnnxGraph};

/// Hyper-parameters of [`ToyNet`].
#[derive(Config, Debug)]
pub struct ToyNetConfig {
    /// Side of the square grey input patch.
    #[config(default = 16)]
    pub patch: usize,
    #[config(default = 8)]
    pub stem_channels: usize,
    #[config(default = 16)]
    pub channels: usize,
    #[config(default = 32)]
    pub d_model: usize,
    #[config(default = 4)]
    pub n_heads: usize,
    #[config(default = 2)]
    pub mlp_ratio: usize,
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// The toy anomaly classifier: `[batch, 1, patch, patch]` → two logits (normal, anomalous).
#[derive(Module, Debug)]
pub struct ToyNet {
    pub stem: Conv2d,
    pub stem_norm: BatchNorm,
    pub down: Conv2d,
    pub down_norm: BatchNorm,
    pub depthwise: Conv2d,
    pub relu: Relu,
    pub embed: Linear,
    pub block: TransformerBlock,
    pub norm: LayerNorm,
    pub head: Linear,
}

impl ToyNetConfig {
    pub fn init(&self, device: &Device) -> ToyNet {
        let c = self.channels;
        ToyNet {
            stem: Conv2dConfig::new([1, self.stem_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            stem_norm: BatchNormConfig::new(self.stem_channels).init(device),
            down: Conv2dConfig::new([self.stem_channels, c], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            down_norm: BatchNormConfig::new(c).init(device),
            depthwise: Conv2dConfig::new([c, c], [3, 3])
                .with_groups(c)
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            relu: Relu::new(),
            embed: LinearConfig::new(c, self.d_model).init(device),
            block: TransformerBlockConfig::new(self.d_model, self.n_heads)
                .with_mlp_ratio(self.mlp_ratio)
                .with_dropout(self.dropout)
                .init(device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            head: LinearConfig::new(self.d_model, 2).init(device),
        }
    }
}

impl ToyNet {
    /// Logits `[batch, 2]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self
            .relu
            .forward(self.stem_norm.forward(self.stem.forward(images)));
        let x = self
            .relu
            .forward(self.down_norm.forward(self.down.forward(x)));
        let x = self.relu.forward(self.depthwise.forward(x));
        let [batch, channels, height, width] = x.dims();
        // Each spatial cell becomes a token of `channels` features.
        let tokens = x.reshape([batch, channels, height * width]).swap_dims(1, 2);
        let tokens = self.block.forward(self.embed.forward(tokens));
        let pooled = self.norm.forward(tokens).mean_dim(1).squeeze_dim::<2>(1);
        self.head.forward(pooled)
    }

    /// Class probabilities `[batch, 2]`; column 1 is the anomaly score.
    pub fn probabilities(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(images), 1)
    }

    /// The ONNX graph of [`Self::probabilities`] for a fixed input shape.
    pub fn to_onnx(&self, input_shape: [usize; 4]) -> Result<ModelProto, ExportError> {
        let mut graph = OnnxGraph::new("toynet");
        let input = graph.input("image", &input_shape)?;
        let x = self.stem.export_onnx(&mut graph, &input, "stem")?;
        let x = self.stem_norm.export_onnx(&mut graph, &x, "stem_norm")?;
        let x = self.relu.export_onnx(&mut graph, &x, "relu")?;
        let x = self.down.export_onnx(&mut graph, &x, "down")?;
        let x = self.down_norm.export_onnx(&mut graph, &x, "down_norm")?;
        let x = self.relu.export_onnx(&mut graph, &x, "relu")?;
        let x = self.depthwise.export_onnx(&mut graph, &x, "depthwise")?;
        let x = self.relu.export_onnx(&mut graph, &x, "relu")?;
        let [batch, channels, height, width] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let x = graph.reshape(&x, &[batch, channels, height * width])?;
        let tokens = graph.transpose(&x, &[0, 2, 1])?;
        let tokens = self.embed.export_onnx(&mut graph, &tokens, "embed")?;
        let tokens = self.block.export_onnx(&mut graph, &tokens, "block")?;
        let tokens = self.norm.export_onnx(&mut graph, &tokens, "norm")?;
        let pooled = graph.reduce_mean(&tokens, &[1], false)?;
        let logits = self.head.export_onnx(&mut graph, &pooled, "head")?;
        let probabilities = graph.softmax(&logits, 1)?;
        graph.output(&probabilities, "probabilities")?;
        Ok(graph.finish())
    }
}
