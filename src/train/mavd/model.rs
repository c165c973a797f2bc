//! The MAVD networks as the authors' code builds them (papers.md §2.2): three unimodal
//! encoders, the audio→video and flow→video projections, and the fusion MLP + causal TCN.
//!
//! Tensors are `[batch, snippets, features]` throughout, as in the authors' code; the
//! convolutions swap to `[batch, channels, snippets]` and back. Parameter names follow the
//! roles, and [`super::weights`] maps the authors' state-dict keys onto them.

use burn::module::Param;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::module::conv1d;
use burn::tensor::ops::ConvOptions;

use crate::models::violence::kernel::distance_kernel;
use crate::train::nn::{LayerNorm, LayerNormConfig};

/// One unimodal encoder's sizes. The three of the paper are [`EncoderConfig::paper_video`],
/// [`EncoderConfig::paper_audio`] and [`EncoderConfig::paper_flow`].
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Features per snippet coming in (1024 for I3D, 128 for VGGish).
    pub input: usize,
    /// Width of the temporal convolution's output and of the transformer.
    pub width: usize,
    #[config(default = 4)]
    pub heads: usize,
    /// Width of one attention head (the authors use `width / 2`).
    pub head_width: usize,
    /// Hidden width of the MIL regressor.
    pub mil_hidden: usize,
    #[config(default = 2)]
    pub depth: usize,
}

impl EncoderConfig {
    pub fn paper_video(input: usize) -> Self {
        Self::new(input, 128, 64, 128)
    }

    pub fn paper_audio(input: usize) -> Self {
        Self::new(input, 32, 16, 64)
    }

    pub fn paper_flow(input: usize) -> Self {
        Self::new(input, 64, 32, 128)
    }
}

/// A whole MAVD model. [`MavdConfig::paper`] is the published one on I3D/VGGish features;
/// the edge model changes only the input widths.
#[derive(Config, Debug)]
pub struct MavdConfig {
    pub video: EncoderConfig,
    pub audio: EncoderConfig,
    pub flow: EncoderConfig,
    /// Projection layers of `va_net` and `vf_net`.
    #[config(default = 3)]
    pub projection_depth: usize,
    /// Kernel size of the fusion TCN.
    #[config(default = 2)]
    pub tcn_kernel: usize,
    /// One temporal block per level, dilation `2^level`.
    #[config(default = 3)]
    pub tcn_levels: usize,
    #[config(default = 128)]
    pub fusion_mil_hidden: usize,
}

impl MavdConfig {
    /// The paper's model: I3D RGB and flow (1024 each) and VGGish audio (128).
    pub fn paper() -> Self {
        Self::with_inputs(1024, 128, 1024)
    }

    /// The paper's architecture on other feature extractors.
    pub fn with_inputs(video: usize, audio: usize, flow: usize) -> Self {
        Self::new(
            EncoderConfig::paper_video(video),
            EncoderConfig::paper_audio(audio),
            EncoderConfig::paper_flow(flow),
        )
    }

    /// Width of the fusion input: video features, projected audio, projected flow.
    pub fn fusion_input(&self) -> usize {
        self.video.width + self.audio.width + self.flow.width
    }

    pub fn init(&self, device: &Device) -> Mavd {
        let fusion_in = self.fusion_input();
        let fusion_width = self.flow.width;
        Mavd {
            video: self.video.init(device),
            audio: self.audio.init(device),
            flow: self.flow.init(device),
            audio_projection: Projection::new(self.audio.width, self.projection_depth, device),
            flow_projection: Projection::new(self.flow.width, self.projection_depth, device),
            fusion: Fusion {
                embed1: LinearConfig::new(fusion_in, fusion_in / 2).init(device),
                embed2: LinearConfig::new(fusion_in / 2, fusion_width).init(device),
                tcn: (0..self.tcn_levels)
                    .map(|level| {
                        TemporalBlock::new(fusion_width, self.tcn_kernel, 1 << level, device)
                    })
                    .collect(),
                mil: MilRegressor::new(fusion_width, self.fusion_mil_hidden, device),
            },
        }
    }
}

impl EncoderConfig {
    pub fn init(&self, device: &Device) -> Encoder {
        let inner = self.heads * self.head_width;
        Encoder {
            embedding: Conv1dConfig::new(self.input, self.width, 3)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(device),
            layers: (0..self.depth)
                .map(|_| EncoderLayer {
                    attention_norm: LayerNormConfig::new(self.width).init(device),
                    attention: LocalGlobalAttention {
                        to_qkvt: LinearConfig::new(self.width, 4 * inner)
                            .with_bias(false)
                            .init(device),
                        to_out: LinearConfig::new(2 * inner, self.width).init(device),
                        heads: self.heads,
                        head_width: self.head_width,
                    },
                    feed_forward_norm: LayerNormConfig::new(self.width).init(device),
                    feed_forward1: LinearConfig::new(self.width, self.width).init(device),
                    feed_forward2: LinearConfig::new(self.width, self.width).init(device),
                })
                .collect(),
            mil: MilRegressor::new(self.width, self.mil_hidden, device),
        }
    }
}

/// Attention that adds to softmax attention a fixed distance-kernel branch: per head,
/// `[softmax(q·kᵀ/√d)·v, A·t]` concatenated, then one output projection (the UR-DMU/MSBT
/// block the authors reuse).
#[derive(Module, Debug)]
pub struct LocalGlobalAttention {
    /// `width → 4·heads·head_width`, no bias, split into q, k, v, t in that order.
    pub to_qkvt: Linear,
    /// `2·heads·head_width → width`.
    pub to_out: Linear,
    pub heads: usize,
    pub head_width: usize,
}

impl LocalGlobalAttention {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, snippets, _] = x.dims();
        let (heads, width) = (self.heads, self.head_width);
        let split = |t: Tensor<3>| t.reshape([batch, snippets, heads, width]).swap_dims(1, 2);
        let inner = heads * width;
        let qkvt = self.to_qkvt.forward(x);
        let part = |index: usize| split(qkvt.clone().narrow(2, index * inner, inner));
        let (q, k, v, t) = (part(0), part(1), part(2), part(3));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((width as f32).sqrt());
        let global = softmax(scores, 3).matmul(v);
        let kernel = Tensor::<2>::from_data(
            TensorData::new(distance_kernel(snippets), [snippets, snippets]),
            &t.device(),
        );
        let local = kernel.unsqueeze::<4>().matmul(t);
        // Per head [global | local], heads side by side: the authors' 'b h n d -> b n (h d)'.
        let mixed = Tensor::cat(vec![global, local], 3)
            .swap_dims(1, 2)
            .reshape([batch, snippets, heads * 2 * width]);
        self.to_out.forward(mixed)
    }
}

/// One pre-norm transformer layer: `x + attn(ln(x))`, then `x + ff(ln(x))`, where the
/// feed-forward keeps the width (Linear, GELU, Linear).
#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub attention_norm: LayerNorm,
    pub attention: LocalGlobalAttention,
    pub feed_forward_norm: LayerNorm,
    pub feed_forward1: Linear,
    pub feed_forward2: Linear,
}

impl EncoderLayer {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self
            .attention
            .forward(self.attention_norm.forward(x.clone()))
            + x;
        let hidden = burn::tensor::activation::gelu(
            self.feed_forward1
                .forward(self.feed_forward_norm.forward(x.clone())),
        );
        self.feed_forward2.forward(hidden) + x
    }
}

/// The MIL regressor: Linear, ReLU, Linear to 32, Linear to 1, sigmoid. The authors put no
/// activation between the last two layers.
#[derive(Module, Debug)]
pub struct MilRegressor {
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
}

impl MilRegressor {
    fn new(width: usize, hidden: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(width, hidden).init(device),
            fc2: LinearConfig::new(hidden, 32).init(device),
            fc3: LinearConfig::new(32, 1).init(device),
        }
    }

    /// Per-snippet scores `[batch, snippets]` in (0, 1).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let x = self.fc2.forward(relu(self.fc1.forward(x)));
        sigmoid(self.fc3.forward(x)).squeeze_dim::<2>(2)
    }
}

/// A unimodal encoder (`v_net`, `a_net`, `f_net`): temporal convolution (k = 3) + ReLU, two
/// transformer layers, and a MIL regressor used only in training.
#[derive(Module, Debug)]
pub struct Encoder {
    pub embedding: Conv1d,
    pub layers: Vec<EncoderLayer>,
    pub mil: MilRegressor,
}

impl Encoder {
    /// Snippet features `[batch, snippets, input]` → embeddings `[batch, snippets, width]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = relu(self.embedding.forward(x.swap_dims(1, 2))).swap_dims(1, 2);
        for layer in &self.layers {
            x = layer.forward(x);
        }
        x
    }
}

/// `va_net` / `vf_net`: `depth` × (Linear + ReLU) at constant width; the output ends in a ReLU.
#[derive(Module, Debug)]
pub struct Projection {
    pub layers: Vec<Linear>,
}

impl Projection {
    fn new(width: usize, depth: usize, device: &Device) -> Self {
        Self {
            layers: (0..depth)
                .map(|_| LinearConfig::new(width, width).init(device))
                .collect(),
        }
    }

    pub fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        for layer in &self.layers {
            x = relu(layer.forward(x));
        }
        x
    }
}

/// A weight-normalised causal convolution: `w = g · v / ‖v‖` with the norm per output
/// channel (PyTorch's `weight_norm`, dim 0), padded `(k − 1)·d` on the left only, which is
/// what the authors' symmetric padding followed by a chomp of the right end computes.
#[derive(Module, Debug)]
pub struct CausalConv {
    /// `[out, in, kernel]`.
    pub direction: Param<Tensor<3>>,
    /// `[out]`.
    pub magnitude: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub dilation: usize,
}

impl CausalConv {
    fn new(channels: usize, kernel: usize, dilation: usize, device: &Device) -> Self {
        // The TCN's own initialisation: v ~ N(0, 0.01), g = ‖v‖ so that w = v at the start.
        let direction: Tensor<3> = Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        }
        .init([channels, channels, kernel], device)
        .val();
        // Through host data, so that the norm starts as a leaf of the autodiff graph too (a
        // parameter built from a computed tensor is refused).
        let magnitude = Tensor::from_data(channel_norms(direction.clone()).into_data(), device);
        let bound = 1.0 / ((channels * kernel) as f64).sqrt();
        Self {
            direction: Param::from_tensor(direction),
            magnitude: Param::from_tensor(magnitude),
            bias: Initializer::Uniform {
                min: -bound,
                max: bound,
            }
            .init([channels], device),
            dilation,
        }
    }

    /// The effective kernel `g · v / ‖v‖`.
    pub fn weight(&self) -> Tensor<3> {
        let direction = self.direction.val();
        let [out, _, _] = direction.dims();
        let scale = self.magnitude.val() / channel_norms(direction.clone());
        direction * scale.reshape([out, 1, 1])
    }

    /// `[batch, channels, snippets]` → same shape.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, _, kernel] = self.direction.dims();
        let options = ConvOptions::new_with_padding(
            [1],
            [((kernel - 1) * self.dilation, 0)],
            [self.dilation],
            1,
        );
        conv1d(x, self.weight(), Some(self.bias.val()), options)
    }
}

/// The L2 norm of each output channel's kernel, `[out]`.
fn channel_norms(direction: Tensor<3>) -> Tensor<1> {
    let [out, _, _] = direction.dims();
    direction
        .powi_scalar(2)
        .sum_dim(2)
        .sum_dim(1)
        .sqrt()
        .reshape([out])
}

/// One TCN level: `relu(x + relu(conv2(relu(conv1(x)))))` with identity residual (the
/// widths are equal, so the authors' block has no downsampling convolution).
#[derive(Module, Debug)]
pub struct TemporalBlock {
    pub conv1: CausalConv,
    pub conv2: CausalConv,
}

impl TemporalBlock {
    fn new(channels: usize, kernel: usize, dilation: usize, device: &Device) -> Self {
        Self {
            conv1: CausalConv::new(channels, kernel, dilation, device),
            conv2: CausalConv::new(channels, kernel, dilation, device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let out = relu(self.conv2.forward(relu(self.conv1.forward(x.clone()))));
        relu(out + x)
    }
}

/// `vaf_net`: Linear to half width + ReLU, Linear to the TCN width + ReLU, the TCN, then a MIL
/// regressor.
#[derive(Module, Debug)]
pub struct Fusion {
    pub embed1: Linear,
    pub embed2: Linear,
    pub tcn: Vec<TemporalBlock>,
    pub mil: MilRegressor,
}

impl Fusion {
    /// Fused features `[batch, snippets, tcn width]` (the triplet loss reads these).
    pub fn features(&self, x: Tensor<3>) -> Tensor<3> {
        let x = relu(self.embed2.forward(relu(self.embed1.forward(x))));
        let mut x = x.swap_dims(1, 2);
        for block in &self.tcn {
            x = block.forward(x);
        }
        x.swap_dims(1, 2)
    }
}

/// The six parts of MAVD, named after their roles (the authors' `v_net`, `a_net`, `f_net`,
/// `va_net`, `vf_net`, `vaf_net`).
#[derive(Module, Debug)]
pub struct Mavd {
    pub video: Encoder,
    pub audio: Encoder,
    pub flow: Encoder,
    pub audio_projection: Projection,
    pub flow_projection: Projection,
    pub fusion: Fusion,
}

/// Per-snippet scores of one forward pass, each `[batch, snippets]`.
#[derive(Debug, Clone)]
pub struct MavdScores {
    /// The fused score: what the paper evaluates and vigil alerts on.
    pub fused: Tensor<2>,
    /// The unimodal MIL heads, which tell which modality fired.
    pub video: Tensor<2>,
    pub audio: Tensor<2>,
    pub flow: Tensor<2>,
}

impl Mavd {
    /// The inference path of the authors' `test.py` for one crop: encoders, projections,
    /// fusion. Inputs are `[batch, snippets, features]` with equal snippet counts.
    pub fn forward(&self, video: Tensor<3>, audio: Tensor<3>, flow: Tensor<3>) -> MavdScores {
        let video = self.video.forward(video);
        let audio = self.audio.forward(audio);
        let flow = self.flow.forward(flow);
        let fused_input = Tensor::cat(
            vec![
                video.clone(),
                self.audio_projection.forward(audio.clone()),
                self.flow_projection.forward(flow.clone()),
            ],
            2,
        );
        let fused = self.fusion.mil.forward(self.fusion.features(fused_input));
        MavdScores {
            fused,
            video: self.video.mil.forward(video),
            audio: self.audio.mil.forward(audio),
            flow: self.flow.mil.forward(flow),
        }
    }
}
