//! The FERS-edge networks in burn: stage 1 (FERD reverse distillation, whose pruned encoder is
//! the spectral feature network) and stage 2 (the rebellious student, the spatial one).
//!
//! The layout follows FERS/FERD (`../shared/reference/papers.md` §1) with ImageNet MobileNetV2
//! in place of the Wide-ResNet-101-2 bank and the ResNet-34 trunk, whose weights are not
//! obtainable here:
//!
//! * FERD's ConvH (C→64) fed WRN layer 1, skipping its stem; here ConvH (C→32) feeds
//!   MobileNetV2's first inverted residual, skipping its stem, at full resolution. The bank's
//!   three levels are MobileNetV2 features 1, 2–3 and 4–6 (16, 24 and 32 channels at strides
//!   1, 2 and 4 of the 4-pixel reflect-padded tile), as WRN layers 1–3 were.
//! * The student's trunk is MobileNetV2 features 0–13 (96 channels at stride 16), where FERS
//!   used ResNet-34 up to layer 3 (256 channels at stride 16): a 64×64 tile gives 4×4 in both.
//!
//! Every pixel-wise (1×1) layer is a [`Linear`] over the last axis of a channels-last tensor:
//! `[batch, rows, cols, bands]` is the cube's own BIP order, no reshape depends on the tile
//! size, and the exporter writes each as the `MatMul` the int8 quantizer rewrites.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::norm::{BatchNorm, BatchNormConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::{adaptive_avg_pool2d, interpolate};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, PadMode};

use crate::train::mobilenet::{
    ConvNorm, IMAGENET_MEAN, IMAGENET_STD, InvertedResidual, MobileNetV2,
};

/// Pixels of reflect padding around a tile before the bank (FERD pads 64 to 72), so that the
/// bank's 3×3 convolutions and the bottleneck's strides see a border that is not zeros.
pub const BANK_PAD: usize = 4;
/// The student's pyramid pooling sizes (FERS's `pool_sizes=[1, 2, 4]`).
pub const POOL_SIZES: [usize; 3] = [1, 2, 4];
/// Channels of MobileNetV2's stem output, which ConvH stands in for.
pub const BANK_INPUT: usize = 32;
/// Channels of the three bank levels (MobileNetV2 features 1, 3 and 6).
pub const BANK_LEVELS: [usize; 3] = [16, 24, 32];
/// Channels of the student's trunk output (MobileNetV2 feature 13).
pub const TRUNK_CHANNELS: usize = 96;
/// MobileNetV2 blocks (0-based, after the stem) in each bank level and in the trunk.
const LEVEL_BLOCKS: [std::ops::Range<usize>; 3] = [0..1, 1..3, 3..6];
const TRUNK_BLOCKS: std::ops::Range<usize> = 0..13;

/// Hyper-parameters of both stages (the band count picks the checkpoint set).
#[derive(Config, Debug)]
pub struct FersEdgeConfig {
    /// How many of the first bands the model reads (the paper ships 50, 100 and 200).
    pub bands: usize,
    /// Channels of the bottleneck embedding (FERD's is 2048 wide; the bank here is 16× narrower).
    #[config(default = 128)]
    pub embedding: usize,
    /// Width of the false-RGB projection's hidden layer (FERS: 256).
    #[config(default = 256)]
    pub rgb_hidden: usize,
    /// Width of LightSPP's hidden 1×1 layer (FERS: 128).
    #[config(default = 128)]
    pub spp_hidden: usize,
    /// Width of the training-only restoration net (FERS runs it at the band count; 32 keeps
    /// stage 2 trainable on a CPU, and the net is dropped after training).
    #[config(default = 32)]
    pub restoration_width: usize,
}

impl FersEdgeConfig {
    /// FERD's projection width: 256 above 128 bands, else 128.
    pub fn projection_hidden(&self) -> usize {
        if self.bands > 128 { 256 } else { 128 }
    }
}

/// Linear → ReLU → Linear → ReLU over the last axis (FERD's `Pixel_Classifier` conv1/conv2,
/// FERS's LightSPP 1×1 pair), or with a sigmoid last ([`Self::gate`]: `Conv2RGB`, SE and
/// channel attention).
#[derive(Module, Debug)]
pub struct PixelMlp {
    pub first: Linear,
    pub second: Linear,
}

impl PixelMlp {
    fn new(device: &Device, sizes: [usize; 3], bias: bool) -> Self {
        Self {
            first: LinearConfig::new(sizes[0], sizes[1])
                .with_bias(bias)
                .init(device),
            second: LinearConfig::new(sizes[1], sizes[2])
                .with_bias(bias)
                .init(device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.second.forward(relu(self.first.forward(x))))
    }

    /// Linear → ReLU → Linear → sigmoid.
    pub fn gate(&self, x: Tensor<4>) -> Tensor<4> {
        sigmoid(self.second.forward(relu(self.first.forward(x))))
    }
}

/// A frozen run of MobileNetV2 blocks (eval-mode batch norm, no gradients to its weights).
#[derive(Module, Debug)]
pub struct FrozenBlocks {
    pub blocks: Vec<InvertedResidual>,
}

impl FrozenBlocks {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        x
    }
}

/// `[B, H, W, C]` ⇄ `[B, C, H, W]`.
pub fn to_nchw(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

pub fn to_nhwc(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

/// Crops [`BANK_PAD`] pixels off each side of an NCHW map.
fn crop(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.slice([0..b, 0..c, BANK_PAD..h - BANK_PAD, BANK_PAD..w - BANK_PAD])
}

/// The spectral feature network FERS keeps from FERD: ConvH → frozen bank level 1 →
/// projection. Output `spe_f`, `[B, H, W, C]`, non-negative.
#[derive(Module, Debug)]
pub struct SpectralFen {
    pub conv_h: Linear,
    pub level1: FrozenBlocks,
    pub projection: PixelMlp,
}

impl SpectralFen {
    /// Bank level 1 on the padded tile, still padded: `[B, 16, H+8, W+8]`.
    fn level1_padded(&self, cube: Tensor<4>) -> Tensor<4> {
        // ConvH is pixel-wise, so padding after it equals FERD's padding before it.
        let x = to_nchw(self.conv_h.forward(cube));
        let x = x.pad((BANK_PAD, BANK_PAD, BANK_PAD, BANK_PAD), PadMode::Reflect);
        self.level1.forward(x)
    }

    pub fn forward(&self, cube: Tensor<4>) -> Tensor<4> {
        let f1 = to_nhwc(crop(self.level1_padded(cube)));
        self.projection.forward(f1)
    }
}

/// Conv 3×3 → BN → ReLU, trainable.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub norm: BatchNorm,
}

impl ConvBnRelu {
    fn new(device: &Device, channels: [usize; 2], stride: usize) -> Self {
        Self {
            conv: Conv2dConfig::new(channels, [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(channels[1]).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.norm.forward(self.conv.forward(x)))
    }
}

/// RD4AD's one-class bottleneck (FERD's MFFM): levels 1 and 2 strided down to level 3's
/// resolution, concatenated with it, and squeezed into one embedding at half that resolution.
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub level1_down: Vec<ConvBnRelu>,
    pub level2_down: ConvBnRelu,
    pub squeeze: ConvBnRelu,
    pub mix: ConvBnRelu,
}

impl Bottleneck {
    fn new(device: &Device, embedding: usize) -> Self {
        let [c1, c2, c3] = BANK_LEVELS;
        Self {
            level1_down: vec![
                ConvBnRelu::new(device, [c1, c2], 2),
                ConvBnRelu::new(device, [c2, c3], 2),
            ],
            level2_down: ConvBnRelu::new(device, [c2, c3], 2),
            squeeze: ConvBnRelu::new(device, [3 * c3, embedding], 2),
            mix: ConvBnRelu::new(device, [embedding, embedding], 1),
        }
    }

    fn forward(&self, f1: Tensor<4>, f2: Tensor<4>, f3: Tensor<4>) -> Tensor<4> {
        let mut a = f1;
        for down in &self.level1_down {
            a = down.forward(a);
        }
        let b = self.level2_down.forward(f2);
        let x = Tensor::cat(vec![a, b, f3], 1);
        self.mix.forward(self.squeeze.forward(x))
    }
}

/// One decoder stage: 2×2 transposed conv (×2 upsampling) → BN → ReLU → 3×3 conv whose linear
/// output is compared with the encoder's level (MobileNetV2's block outputs are linear too).
#[derive(Module, Debug)]
pub struct DecoderStage {
    pub up: ConvTranspose2d,
    pub norm: BatchNorm,
    pub out: Conv2d,
}

impl DecoderStage {
    fn new(device: &Device, channels: [usize; 2]) -> Self {
        Self {
            up: ConvTranspose2dConfig::new(channels, [2, 2])
                .with_stride([2, 2])
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(channels[1]).init(device),
            out: Conv2dConfig::new([channels[1], channels[1]], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.out
            .forward(relu(self.norm.forward(self.up.forward(x))))
    }
}

/// Stage 1, the whole training graph of FERD.
#[derive(Module, Debug)]
pub struct Ferd {
    pub fen: SpectralFen,
    pub level2: FrozenBlocks,
    pub level3: FrozenBlocks,
    pub bottleneck: Bottleneck,
    /// Decoder stages from the embedding to levels 3, 2 and 1.
    pub decoder: Vec<DecoderStage>,
    /// `de_ConvH`: level-1 decoder features back to the bands.
    pub restore: Linear,
    /// SFAM's `conv3` (C→1) on the projected feature difference.
    pub alignment: Linear,
}

/// The parts of FERD's loss, each a scalar tensor.
pub struct FerdLoss {
    pub total: Tensor<1>,
    pub cosine: Tensor<1>,
    pub reconstruction: Tensor<1>,
    pub alignment: Tensor<1>,
}

impl Ferd {
    /// The stage-1 loss for a batch of normalised tiles `[B, H, W, C]` (H, W multiples of 8).
    pub fn loss(&self, cube: Tensor<4>) -> FerdLoss {
        let f1 = self.fen.level1_padded(cube.clone());
        let f2 = self.level2.forward(f1.clone());
        let f3 = self.level3.forward(f2.clone());
        let embedding = self.bottleneck.forward(f1.clone(), f2.clone(), f3.clone());
        let g3 = self.decoder[0].forward(embedding);
        let g2 = self.decoder[1].forward(g3.clone());
        let g1 = self.decoder[2].forward(g2.clone());
        let cosine = cosine_distance(f1.clone(), g1.clone())
            + cosine_distance(f2, g2)
            + cosine_distance(f3, g3);
        let (f1, g1) = (to_nhwc(crop(f1)), to_nhwc(crop(g1)));
        let reconstruction = (self.restore.forward(g1.clone()) - cube).square().mean();
        let difference = (self.fen.projection.forward(g1) - self.fen.projection.forward(f1)).abs();
        // FERD's zero-centring term, as coded: BCE-with-logits against 0 of an already
        // sigmoid-ed map, i.e. softplus(sigmoid(·)).
        let squashed = sigmoid(self.alignment.forward(difference));
        let alignment = softplus(squashed).mean();
        let total = alignment.clone() * 0.1 + reconstruction.clone() * 0.1 + cosine.clone();
        FerdLoss {
            total,
            cosine,
            reconstruction,
            alignment,
        }
    }
}

/// `ln(1 + eˣ)`, stable for the inputs here (x ∈ (0, 1)).
fn softplus(x: Tensor<4>) -> Tensor<4> {
    (x.exp() + 1.0).log()
}

/// RD4AD's per-sample `1 − cos(vec f, vec g)`, averaged over the batch.
fn cosine_distance(f: Tensor<4>, g: Tensor<4>) -> Tensor<1> {
    let [b, ..] = f.dims();
    let f: Tensor<2> = f.reshape([b as i32, -1]);
    let g: Tensor<2> = g.reshape([b as i32, -1]);
    let dot = (f.clone() * g.clone()).sum_dim(1);
    let norms = (f.square().sum_dim(1) * g.square().sum_dim(1) + 1e-16)
        .sqrt()
        .clamp_min(1e-8);
    (-(dot / norms) + 1.0).mean()
}

impl FersEdgeConfig {
    /// Stage 1 around the frozen bank cut from `mobilenet` (its blocks 0–5).
    pub fn init_ferd(&self, mobilenet: &MobileNetV2, device: &Device) -> Ferd {
        let c = self.bands;
        let [c1, c2, c3] = BANK_LEVELS;
        let level = |index: usize| {
            FrozenBlocks {
                blocks: mobilenet.blocks[LEVEL_BLOCKS[index].clone()].to_vec(),
            }
            .freeze()
        };
        Ferd {
            fen: SpectralFen {
                conv_h: LinearConfig::new(c, BANK_INPUT)
                    .with_bias(false)
                    .init(device),
                level1: level(0),
                projection: PixelMlp::new(device, [c1, self.projection_hidden(), c], true),
            },
            level2: level(1),
            level3: level(2),
            bottleneck: Bottleneck::new(device, self.embedding),
            decoder: vec![
                DecoderStage::new(device, [self.embedding, c3]),
                DecoderStage::new(device, [c3, c2]),
                DecoderStage::new(device, [c2, c1]),
            ],
            restore: LinearConfig::new(c1, c).init(device),
            alignment: LinearConfig::new(c, 1).init(device),
        }
    }

    /// Stage 2's student around the frozen trunk cut from `mobilenet` (stem and blocks 0–12).
    pub fn init_student(&self, mobilenet: &MobileNetV2, device: &Device) -> RebelliousStudent {
        let c = self.bands;
        let squeezed = (c / 8).max(1);
        RebelliousStudent {
            to_rgb: PixelMlp::new(device, [c, self.rgb_hidden, 3], true),
            stem: mobilenet.stem.clone().freeze(),
            trunk: FrozenBlocks {
                blocks: mobilenet.blocks[TRUNK_BLOCKS].to_vec(),
            }
            .freeze(),
            spp: PixelMlp::new(
                device,
                [POOL_SIZES.len() * TRUNK_CHANNELS, self.spp_hidden, c],
                false,
            ),
            se: PixelMlp::new(device, [c, squeezed, c], false),
        }
    }

    pub fn init_restoration(&self, device: &Device) -> RestorationNet {
        let (c, w) = (self.bands, self.restoration_width);
        RestorationNet {
            entry: LinearConfig::new(c, w).init(device),
            blocks: (0..3).map(|_| ResidualAttention::new(device, w)).collect(),
            exit: LinearConfig::new(w, c).init(device),
        }
    }
}

/// Stage 2, FERS's `HyperSpatialResNet` on MobileNetV2: false RGB → frozen trunk → LightSPP →
/// SE. Output `spa_f`, `[B, H, W, C]`, non-negative and smooth (at most 4×4 degrees of freedom
/// per tile before upsampling, as in the paper).
#[derive(Module, Debug)]
pub struct RebelliousStudent {
    /// `Conv2RGB`: C → hidden → 3, sigmoid.
    pub to_rgb: PixelMlp,
    pub stem: ConvNorm,
    pub trunk: FrozenBlocks,
    pub spp: PixelMlp,
    /// Squeeze-and-excitation: C → C/8 → C, sigmoid.
    pub se: PixelMlp,
}

impl RebelliousStudent {
    /// The false-RGB image in [0, 1], `[B, H, W, 3]`.
    pub fn false_rgb(&self, cube: Tensor<4>) -> Tensor<4> {
        self.to_rgb.gate(cube)
    }

    pub fn forward(&self, cube: Tensor<4>) -> Tensor<4> {
        let [_, rows, cols, _] = cube.dims();
        let device = cube.device();
        let rgb = self.false_rgb(cube);
        // The trunk's batch norms carry ImageNet statistics (frozen, not re-estimated as the
        // paper's code did), so its input is normalised as ImageNet's was.
        let mean = Tensor::<1>::from_floats(IMAGENET_MEAN, &device).reshape([1, 1, 1, 3]);
        let std = Tensor::<1>::from_floats(IMAGENET_STD, &device).reshape([1, 1, 1, 3]);
        let image = to_nchw((rgb - mean) / std);
        let trunk = self.trunk.forward(self.stem.forward(image));
        let pyramid: Vec<Tensor<4>> = POOL_SIZES
            .iter()
            .map(|&size| {
                let pooled = adaptive_avg_pool2d(trunk.clone(), [size, size]);
                interpolate(
                    pooled,
                    // burn's default aligns corners; FERS's upsampling does not.
                    InterpolateOptions::new(InterpolateMode::Bilinear)
                        .with_align_corners(false)
                        .with_output_size([rows, cols]),
                )
            })
            .collect();
        let features = self.spp.forward(to_nhwc(Tensor::cat(pyramid, 1)));
        let context = features.clone().mean_dim(1).mean_dim(2);
        features * self.se.gate(context)
    }
}

/// One restoration block: a residual pair of 3×3 convs, then channel attention.
#[derive(Module, Debug)]
pub struct ResidualAttention {
    pub conv_a: Conv2d,
    pub norm_a: BatchNorm,
    pub conv_b: Conv2d,
    pub norm_b: BatchNorm,
    pub attention: PixelMlp,
}

impl ResidualAttention {
    fn new(device: &Device, width: usize) -> Self {
        let conv = || {
            Conv2dConfig::new([width, width], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        Self {
            conv_a: conv(),
            norm_a: BatchNormConfig::new(width).init(device),
            conv_b: conv(),
            norm_b: BatchNormConfig::new(width).init(device),
            attention: PixelMlp::new(device, [width, (width / 8).max(1), width], false),
        }
    }

    /// On NCHW maps.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.norm_a.forward(self.conv_a.forward(x.clone())));
        let y = relu(self.norm_b.forward(self.conv_b.forward(y)) + x);
        let context = to_nhwc(y.clone().mean_dim(2).mean_dim(3));
        y * to_nchw(self.attention.gate(context))
    }
}

/// FERS's training-only `FeatureRestorationNet`: reconstructs the cube from `spe_f + spa_f`.
#[derive(Module, Debug)]
pub struct RestorationNet {
    pub entry: Linear,
    pub blocks: Vec<ResidualAttention>,
    pub exit: Linear,
}

impl RestorationNet {
    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        let mut x = to_nchw(self.entry.forward(features));
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.exit.forward(to_nhwc(x))
    }
}
