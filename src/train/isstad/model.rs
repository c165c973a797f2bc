//! The ISSTAD networks: an MAE ViT encoder and a decoder whose every block feeds one shared
//! pixel classifier, with a reconstruction head after the last block (papers.md §3.1).
//!
//! Images are `[B, 3, S, S]` in [−1, 1]. Tokens are the `(S/p)²` patches in row-major order,
//! each flattened as (row, column, channel), MAE's `patchify` order; the patch embedding is a
//! Linear on those flattened patches (the same map as MAE's stride-p convolution), which keeps
//! it a matrix product the int8 export can quantize.

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::pretrained::PretrainedEncoder;
use crate::train::nn::{LayerNorm, LayerNormConfig, TransformerBlock, TransformerBlockConfig};

/// Sizes of an ISSTAD network. [`IsstadConfig::paper`] is the authors' ViT-L/16 with a
/// 12-block decoder; the defaults are ISSTAD-edge, sized for 2-core CPUs.
#[derive(Config, Debug)]
pub struct IsstadConfig {
    /// Side of the square input image.
    #[config(default = 224)]
    pub image_size: usize,
    #[config(default = 16)]
    pub patch_size: usize,
    #[config(default = 192)]
    pub encoder_dim: usize,
    #[config(default = 6)]
    pub encoder_depth: usize,
    #[config(default = 3)]
    pub encoder_heads: usize,
    #[config(default = 128)]
    pub decoder_dim: usize,
    /// Decoder blocks of the stage-1 MAE; stage 2 reuses them as its first blocks.
    #[config(default = 2)]
    pub decoder_depth_stage1: usize,
    /// Decoder blocks of stage 2, each followed by the shared pixel classifier.
    #[config(default = 4)]
    pub decoder_depth: usize,
    #[config(default = 4)]
    pub decoder_heads: usize,
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Share of patches hidden from the stage-1 encoder.
    #[config(default = 0.75)]
    pub mask_ratio: f64,
    /// The scratch MAE of stage 1, or a frozen ImageNet network (no stage 1).
    #[config(default = "EncoderKind::Mae")]
    pub encoder: EncoderKind,
}

/// Which encoder stage 2 freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EncoderKind {
    /// A ViT masked autoencoder trained from scratch on the good images (stage 1).
    Mae,
    /// torchvision's ImageNet MobileNetV2 through its stride-16 stage
    /// ([`super::pretrained`]), as the paper freezes a pretrained MAE.
    MobileNetV2,
}

/// timm's ViT blocks use layer-norm epsilon 1e-6.
const LAYER_NORM_EPSILON: f64 = 1e-6;

impl IsstadConfig {
    /// The paper's model: ViT-L/16 (1024 wide, 24 blocks, 16 heads), decoder 512 wide with 16
    /// heads, 6 blocks in stage 1 (what its stage-1 MAE defines) and 12 in stage 2.
    pub fn paper() -> Self {
        Self::new()
            .with_encoder_dim(1024)
            .with_encoder_depth(24)
            .with_encoder_heads(16)
            .with_decoder_dim(512)
            .with_decoder_depth_stage1(6)
            .with_decoder_depth(12)
            .with_decoder_heads(16)
    }

    /// Stage 2 on the frozen ImageNet MobileNetV2: 224² images, 16-pixel tokens of its
    /// features, and ISSTAD-edge's decoder (all of whose blocks are new, there being no
    /// stage 1).
    pub fn pretrained() -> Self {
        Self::new()
            .with_encoder(EncoderKind::MobileNetV2)
            .with_encoder_dim(super::pretrained::TOKEN_WIDTH)
    }

    /// The smallest useful network, for tests and CI: a 64×64 image in 8×8 patches.
    pub fn tiny() -> Self {
        Self::new()
            .with_image_size(64)
            .with_patch_size(8)
            .with_encoder_dim(32)
            .with_encoder_depth(2)
            .with_encoder_heads(2)
            .with_decoder_dim(32)
            .with_decoder_depth_stage1(1)
            .with_decoder_depth(2)
            .with_decoder_heads(2)
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Patches per image.
    pub fn patches(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Patches the stage-1 encoder sees (at least one).
    pub fn visible_patches(&self) -> usize {
        let kept = (self.patches() as f64 * (1.0 - self.mask_ratio)).round() as usize;
        kept.clamp(1, self.patches())
    }

    /// Refuses sizes that cannot build a network, naming the field.
    pub fn check(&self) -> Result<(), String> {
        let p = self.patch_size;
        if p == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(p) {
            return Err(format!(
                "image_size {} is not a positive multiple of patch_size {p}",
                self.image_size
            ));
        }
        // A pretrained encoder has no attention heads of its own; its width is checked below.
        let vit_encoder = (self.encoder == EncoderKind::Mae).then_some((
            "encoder",
            self.encoder_dim,
            self.encoder_heads,
        ));
        let decoder = ("decoder", self.decoder_dim, self.decoder_heads);
        for (name, dim, heads) in vit_encoder.into_iter().chain([decoder]) {
            // The 2-D sin-cos embedding splits the width in four (sin and cos of rows, columns).
            if dim == 0 || !dim.is_multiple_of(4) {
                return Err(format!("{name}_dim {dim} is not a positive multiple of 4"));
            }
            if heads == 0 || !dim.is_multiple_of(heads) {
                return Err(format!(
                    "{name}_dim {dim} does not split into {heads} heads"
                ));
            }
        }
        if self.encoder == EncoderKind::MobileNetV2
            && (p != super::pretrained::STRIDE
                || self.encoder_dim != super::pretrained::TOKEN_WIDTH)
        {
            return Err(format!(
                "the MobileNetV2 encoder gives {}-wide tokens of {s}×{s} pixels: patch_size {p} and encoder_dim {} must match",
                super::pretrained::TOKEN_WIDTH,
                self.encoder_dim,
                s = super::pretrained::STRIDE
            ));
        }
        if self.encoder_depth == 0 || self.decoder_depth == 0 || self.mlp_ratio == 0 {
            return Err("depths and mlp_ratio must be at least 1".into());
        }
        if self.decoder_depth_stage1 == 0 || self.decoder_depth_stage1 > self.decoder_depth {
            return Err(format!(
                "decoder_depth_stage1 {} must be between 1 and decoder_depth {}",
                self.decoder_depth_stage1, self.decoder_depth
            ));
        }
        if !(self.mask_ratio > 0.0 && self.mask_ratio < 1.0) {
            return Err(format!("mask_ratio {} is not in (0, 1)", self.mask_ratio));
        }
        Ok(())
    }

    fn block(&self, dim: usize, heads: usize, device: &Device) -> TransformerBlock {
        TransformerBlockConfig::new(dim, heads)
            .with_mlp_ratio(self.mlp_ratio)
            .with_layer_norm_epsilon(LAYER_NORM_EPSILON)
            .init(device)
    }

    fn linear(&self, d_input: usize, d_output: usize, device: &Device) -> Linear {
        // MAE initialises every linear layer Xavier-uniform with zero bias.
        LinearConfig::new(d_input, d_output)
            .with_initializer(Initializer::XavierUniform { gain: 1.0 })
            .init(device)
    }

    pub fn init_encoder(&self, device: &Device) -> MaeEncoder {
        let p = self.patch_size;
        MaeEncoder {
            patch_embed: self.linear(p * p * 3, self.encoder_dim, device),
            cls_token: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([1, 1, self.encoder_dim], device),
            blocks: (0..self.encoder_depth)
                .map(|_| self.block(self.encoder_dim, self.encoder_heads, device))
                .collect(),
            norm: LayerNormConfig::new(self.encoder_dim)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            grid: self.grid(),
            patch: p,
        }
    }

    /// A decoder with `depth` blocks.
    pub fn init_decoder(&self, depth: usize, device: &Device) -> PixelDecoder {
        let p = self.patch_size;
        PixelDecoder {
            embed: self.linear(self.encoder_dim, self.decoder_dim, device),
            mask_token: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([1, 1, self.decoder_dim], device),
            blocks: (0..depth)
                .map(|_| self.block(self.decoder_dim, self.decoder_heads, device))
                .collect(),
            norm: LayerNormConfig::new(self.decoder_dim)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            reconstruction: self.linear(self.decoder_dim, p * p * 3, device),
            pixel_classifier: self.linear(self.decoder_dim, p * p * 2, device),
            grid: self.grid(),
            patch: p,
        }
    }

    /// Stage 1: the MAE with a `decoder_depth_stage1`-block decoder.
    pub fn init_mae(&self, device: &Device) -> Mae {
        Mae {
            encoder: self.init_encoder(device),
            decoder: self.init_decoder(self.decoder_depth_stage1, device),
        }
    }

    /// Stage 2 from a trained MAE, as the authors load it (`strict=False`): the encoder, the
    /// decoder's embedding, norm, reconstruction head and first blocks carry over; the later
    /// blocks and the pixel classifier are new.
    pub fn init_isstad(&self, mae: Mae, device: &Device) -> Isstad {
        let mut decoder = self.init_decoder(self.decoder_depth, device);
        let fresh = decoder
            .blocks
            .split_off(mae.decoder.blocks.len().min(self.decoder_depth));
        decoder = PixelDecoder {
            blocks: mae.decoder.blocks.into_iter().chain(fresh).collect(),
            embed: mae.decoder.embed,
            mask_token: mae.decoder.mask_token,
            norm: mae.decoder.norm,
            reconstruction: mae.decoder.reconstruction,
            ..decoder
        };
        Isstad {
            encoder: IsstadEncoder::Mae(mae.encoder),
            decoder,
        }
    }

    /// Stage 2 on a pretrained encoder: every decoder block and head is new.
    pub fn init_isstad_pretrained(&self, encoder: PretrainedEncoder, device: &Device) -> Isstad {
        Isstad {
            encoder: IsstadEncoder::MobileNetV2(encoder),
            decoder: self.init_decoder(self.decoder_depth, device),
        }
    }

    /// An untrained stage-2 network of this configuration, for loading a saved record into.
    pub fn isstad_skeleton(&self, device: &Device) -> Isstad {
        match self.encoder {
            EncoderKind::Mae => self.init_isstad(self.init_mae(device), device),
            EncoderKind::MobileNetV2 => self.init_isstad_pretrained(
                PretrainedEncoder::skeleton(self.image_size, device),
                device,
            ),
        }
    }
}

/// MAE's fixed 2-D sin-cos position embedding, `[1 + grid², dim]`, row 0 (the class token)
/// zero. The first half of each row encodes the patch's column, the second half its row, as
/// MAE's `get_2d_sincos_pos_embed` does (its meshgrid puts the width coordinate first).
pub fn sincos_position_embedding(dim: usize, grid: usize) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|i| 1.0 / 10_000f64.powf(i as f64 / quarter as f64))
        .collect();
    let mut table = vec![0.0f32; (1 + grid * grid) * dim];
    for row in 0..grid {
        for col in 0..grid {
            let out = &mut table[(1 + row * grid + col) * dim..][..dim];
            for (half, position) in [(0, col), (1, row)] {
                for (i, w) in omega.iter().enumerate() {
                    let angle = position as f64 * w;
                    out[half * 2 * quarter + i] = angle.sin() as f32;
                    out[half * 2 * quarter + quarter + i] = angle.cos() as f32;
                }
            }
        }
    }
    table
}

fn position_embedding(dim: usize, grid: usize, device: &Device) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(
            sincos_position_embedding(dim, grid),
            [1, 1 + grid * grid, dim],
        ),
        device,
    )
}

/// `[B, 3, S, S]` → `[B, (S/p)², p·p·3]`, MAE's `patchify`.
pub fn patchify(images: Tensor<4>, patch: usize) -> Tensor<3> {
    let [b, c, h, w] = images.dims();
    let (gh, gw) = (h / patch, w / patch);
    images
        .reshape([b, c, gh, patch, gw * patch])
        .reshape([b * c * gh, patch, gw, patch])
        .permute([0, 2, 1, 3])
        .reshape([b, c, gh * gw, patch * patch])
        .permute([0, 2, 3, 1])
        .reshape([b, gh * gw, patch * patch * c])
}

/// `[B, N, p·p·C]` → `[B, C, S, S]`, the inverse of [`patchify`].
pub fn unpatchify(tokens: Tensor<3>, patch: usize, channels: usize) -> Tensor<4> {
    let [b, n, _] = tokens.dims();
    let grid = (n as f64).sqrt().round() as usize;
    tokens
        .reshape([b, n, patch * patch, channels])
        .permute([0, 3, 1, 2])
        .reshape([b * channels * grid, grid, patch, patch])
        .permute([0, 2, 1, 3])
        .reshape([b, channels, grid * patch, grid * patch])
}

/// Which patches each image of a stage-1 batch shows its encoder, drawn on the host.
#[derive(Debug, Clone)]
pub struct PatchMask {
    /// Per image, the shown patch indices, in MAE's shuffled order.
    pub visible: Vec<Vec<usize>>,
    pub patches: usize,
}

impl PatchMask {
    /// MAE's `random_masking`: a random permutation per image, the first `visible` kept.
    pub fn random(
        batch: usize,
        patches: usize,
        visible: usize,
        rng: &mut crate::rng::SplitMix64,
    ) -> Self {
        let visible = (0..batch)
            .map(|_| {
                let mut order: Vec<usize> = (0..patches).collect();
                rng.shuffle(&mut order);
                order.truncate(visible);
                order
            })
            .collect();
        Self { visible, patches }
    }

    /// Flat row indices into `[B·N, ·]` of the shown patches, image by image.
    fn visible_rows(&self) -> Vec<i64> {
        let n = self.patches;
        self.visible
            .iter()
            .enumerate()
            .flat_map(|(b, shown)| shown.iter().map(move |&i| (b * n + i) as i64))
            .collect()
    }

    /// For `[shown…, hidden…]` rows per image, the row that holds each patch in original order
    /// (MAE's `ids_restore`), flat over the batch.
    fn restore_rows(&self) -> Vec<i64> {
        let n = self.patches;
        let mut rows = vec![0i64; self.visible.len() * n];
        for (b, shown) in self.visible.iter().enumerate() {
            let mut is_shown = vec![false; n];
            let mut slot = 0;
            for &i in shown {
                is_shown[i] = true;
                rows[b * n + i] = (b * n + slot) as i64;
                slot += 1;
            }
            for (i, shown) in is_shown.iter().enumerate() {
                if !shown {
                    rows[b * n + i] = (b * n + slot) as i64;
                    slot += 1;
                }
            }
        }
        rows
    }

    /// `[B, N]`, 1 where a patch was hidden: where the stage-1 loss is taken.
    pub fn hidden(&self, device: &Device) -> Tensor<2> {
        let n = self.patches;
        let mut values = vec![1.0f32; self.visible.len() * n];
        for (b, shown) in self.visible.iter().enumerate() {
            for &i in shown {
                values[b * n + i] = 0.0;
            }
        }
        Tensor::from_data(TensorData::new(values, [self.visible.len(), n]), device)
    }
}

fn rows(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The ViT encoder: patch embedding + sin-cos positions, a class token, pre-norm blocks, norm.
#[derive(Module, Debug)]
pub struct MaeEncoder {
    pub patch_embed: Linear,
    pub cls_token: Param<Tensor<3>>,
    pub blocks: Vec<TransformerBlock>,
    pub norm: LayerNorm,
    pub grid: usize,
    pub patch: usize,
}

impl MaeEncoder {
    fn dim(&self) -> usize {
        self.cls_token.dims()[2]
    }

    /// Patch tokens with their positions, `[B, N, D]`, and the class token's, `[B, 1, D]`.
    fn embed(&self, images: Tensor<4>) -> (Tensor<3>, Tensor<3>) {
        let device = images.device();
        let [b, ..] = images.dims();
        let tokens = self.patch_embed.forward(patchify(images, self.patch));
        let positions = position_embedding(self.dim(), self.grid, &device);
        let n = self.grid * self.grid;
        let tokens = tokens + positions.clone().slice([0..1, 1..1 + n]);
        // The class token's position row is zero, so it is the token alone.
        let cls = self.cls_token.val().expand([b as i64, 1, -1]);
        (tokens, cls)
    }

    fn encode(&self, tokens: Tensor<3>) -> Tensor<3> {
        let mut x = tokens;
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.norm.forward(x)
    }

    /// All patches: `[B, 1 + N, D]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let (tokens, cls) = self.embed(images);
        self.encode(Tensor::cat(vec![cls, tokens], 1))
    }

    /// Only the patches `mask` shows: `[B, 1 + visible, D]`.
    pub fn forward_visible(&self, images: Tensor<4>, mask: &PatchMask) -> Tensor<3> {
        let device = images.device();
        let (tokens, cls) = self.embed(images);
        let [b, n, d] = tokens.dims();
        let shown = mask.visible.first().map_or(0, Vec::len);
        let tokens = tokens
            .reshape([b * n, d])
            .select(0, rows(mask.visible_rows(), &device))
            .reshape([b, shown, d]);
        self.encode(Tensor::cat(vec![cls, tokens], 1))
    }
}

/// The decoder: embedding to its width, pre-norm blocks with the shared pixel classifier after
/// each, then norm and the reconstruction head.
#[derive(Module, Debug)]
pub struct PixelDecoder {
    pub embed: Linear,
    pub mask_token: Param<Tensor<3>>,
    pub blocks: Vec<TransformerBlock>,
    pub norm: LayerNorm,
    /// Per patch, p·p·3 pixel values (MAE's `decoder_pred`).
    pub reconstruction: Linear,
    /// Per patch, p·p pixels × 2 class logits (ISSTAD's `mask_pred`), shared by every block.
    pub pixel_classifier: Linear,
    pub grid: usize,
    pub patch: usize,
}

impl PixelDecoder {
    fn dim(&self) -> usize {
        self.mask_token.dims()[2]
    }

    fn with_positions(&self, x: Tensor<3>) -> Tensor<3> {
        let positions = position_embedding(self.dim(), self.grid, &x.device());
        x + positions
    }

    fn reconstruct(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, _] = x.dims();
        self.reconstruction
            .forward(self.norm.forward(x))
            .slice([0..b, 1..n])
    }

    /// Stage 1: encoder tokens of the shown patches → reconstructed patches `[B, N, p·p·3]`.
    pub fn forward_masked(&self, encoded: Tensor<3>, mask: &PatchMask) -> Tensor<3> {
        let device = encoded.device();
        let x = self.embed.forward(encoded);
        let [b, shown_plus_one, d] = x.dims();
        let n = mask.patches;
        let cls = x.clone().slice([0..b, 0..1]);
        let shown = x.slice([0..b, 1..shown_plus_one]);
        let hidden_count = n + 1 - shown_plus_one;
        let mut parts = vec![shown];
        if hidden_count > 0 {
            let hidden = self
                .mask_token
                .val()
                .expand([b as i64, hidden_count as i64, -1]);
            parts.push(hidden);
        }
        let patches = Tensor::cat(parts, 1)
            .reshape([b * n, d])
            .select(0, rows(mask.restore_rows(), &device))
            .reshape([b, n, d]);
        let mut x = self.with_positions(Tensor::cat(vec![cls, patches], 1));
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.reconstruct(x)
    }

    /// Stage 2 and inference: every block's pixel logits `[B, N, p·p·2]` and the reconstruction
    /// `[B, N, p·p·3]`, from all encoder tokens.
    pub fn forward_full(&self, encoded: Tensor<3>) -> (Vec<Tensor<3>>, Tensor<3>) {
        let mut x = self.with_positions(self.embed.forward(encoded));
        let mut logits = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = block.forward(x);
            let [b, n, _] = x.dims();
            logits.push(self.pixel_classifier.forward(x.clone().slice([0..b, 1..n])));
        }
        (logits, self.reconstruct(x))
    }
}

/// Stage 1: the masked autoencoder.
#[derive(Module, Debug)]
pub struct Mae {
    pub encoder: MaeEncoder,
    pub decoder: PixelDecoder,
}

impl Mae {
    /// Reconstructed patches `[B, N, p·p·3]` from the patches `mask` shows.
    pub fn forward(&self, images: Tensor<4>, mask: &PatchMask) -> Tensor<3> {
        let encoded = self.encoder.forward_visible(images, mask);
        self.decoder.forward_masked(encoded, mask)
    }
}

/// The frozen encoder of stage 2. One lives per model, so the variants' sizes do not matter.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum IsstadEncoder {
    Mae(MaeEncoder),
    MobileNetV2(PretrainedEncoder),
}

impl IsstadEncoder {
    /// Encoded tokens `[B, 1 + N, D]`, the class token first.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        match self {
            Self::Mae(encoder) => encoder.forward(images),
            Self::MobileNetV2(encoder) => encoder.forward(images),
        }
    }
}

/// Stage 2 and inference: the frozen encoder and the pixel decoder.
#[derive(Module, Debug)]
pub struct Isstad {
    pub encoder: IsstadEncoder,
    pub decoder: PixelDecoder,
}

/// What the exported graph outputs per image, as the runtime reads them.
pub struct PixelOutputs {
    /// P: the anomaly probability averaged over the heads, `[B, S, S]`.
    pub probability: Tensor<3>,
    /// R: per-pixel mean over RGB of (reconstruction − input)², `[B, S, S]`.
    pub reconstruction_error: Tensor<3>,
}

impl Isstad {
    /// Every head's pixel logits and the reconstruction, token-wise.
    pub fn forward(&self, images: Tensor<4>) -> (Vec<Tensor<3>>, Tensor<3>) {
        self.decoder.forward_full(self.encoder.forward(images))
    }

    /// P and R, the paper's scoring inputs.
    pub fn pixel_outputs(&self, images: Tensor<4>) -> PixelOutputs {
        let patch = self.decoder.patch;
        let input_patches = patchify(images.clone(), patch);
        let (logits, reconstruction) = self.forward(images);
        let heads = logits.len().max(1);
        let [b, n, _] = reconstruction.dims();
        let mut probability_sum: Option<Tensor<3>> = None;
        for head in logits {
            // softmax over two classes, class 1, is sigmoid(l₁ − l₀).
            let pairs: Tensor<4> = head.reshape([b, n, patch * patch, 2]);
            let difference = pairs.clone().slice([0..b, 0..n, 0..patch * patch, 1..2])
                - pairs.slice([0..b, 0..n, 0..patch * patch, 0..1]);
            let p: Tensor<3> = sigmoid(difference).reshape([b, n, patch * patch]);
            probability_sum = Some(match probability_sum {
                Some(sum) => sum + p,
                None => p,
            });
        }
        let probability = probability_sum
            .map(|sum| sum / heads as f64)
            .unwrap_or_else(|| Tensor::zeros([b, n, patch * patch], &reconstruction.device()));
        let error: Tensor<3> = (reconstruction - input_patches)
            .square()
            .reshape([b, n, patch * patch, 3])
            .mean_dim(3)
            .reshape([b, n, patch * patch]);
        PixelOutputs {
            probability: image_of(probability, patch),
            reconstruction_error: image_of(error, patch),
        }
    }
}

/// `[B, N, p·p]` → `[B, S, S]`.
fn image_of(tokens: Tensor<3>, patch: usize) -> Tensor<3> {
    let image = unpatchify(tokens, patch, 1);
    let [b, _, s, _] = image.dims();
    image.reshape([b, s, s])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn tiny() -> IsstadConfig {
        IsstadConfig::new()
            .with_image_size(32)
            .with_patch_size(8)
            .with_encoder_dim(16)
            .with_encoder_depth(1)
            .with_encoder_heads(2)
            .with_decoder_dim(8)
            .with_decoder_depth_stage1(1)
            .with_decoder_depth(2)
            .with_decoder_heads(2)
    }

    fn images(batch: usize, side: usize, seed: u64) -> Tensor<4> {
        let mut rng = SplitMix64::new(seed);
        let n = batch * 3 * side * side;
        let values: Vec<f32> = (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        Tensor::from_data(
            TensorData::new(values, [batch, 3, side, side]),
            &Device::flex(),
        )
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn patchify_orders_row_column_channel_and_unpatchify_inverts_it() {
        let x = images(2, 8, 1);
        let tokens = patchify(x.clone(), 4);
        assert_eq!(tokens.dims(), [2, 4, 48]);
        let image = values(x.clone());
        let flat = values(tokens.clone());
        // Image 1, patch 3 (second row, second column), pixel (row 2, col 1), channel 2.
        let (b, patch, r, c, ch) = (1, 3, 2, 1, 2);
        let (y, x_) = (4 + r, 4 + c);
        let from_image = image[((b * 3 + ch) * 8 + y) * 8 + x_];
        let from_tokens = flat[(b * 4 + patch) * 48 + (r * 4 + c) * 3 + ch];
        assert_eq!(from_image, from_tokens);
        assert_eq!(values(unpatchify(tokens, 4, 3)), image);
    }

    #[test]
    fn position_embedding_follows_mae() {
        let table = sincos_position_embedding(8, 3);
        assert!(table[..8].iter().all(|&v| v == 0.0), "class token row");
        // Patch (row 2, column 1): first half encodes the column, second half the row; ω = 1, 0.01.
        let row = &table[(1 + 2 * 3 + 1) * 8..][..8];
        let expect = [
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
        ];
        for (got, want) in row.iter().zip(expect) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{row:?}");
        }
    }

    #[test]
    fn a_mask_that_shows_every_patch_in_any_order_reconstructs_as_the_identity_order() {
        let config = tiny();
        let device = Device::flex();
        let mae = config.init_mae(&device);
        let x = images(2, 32, 2);
        let n = config.patches();
        let identity = PatchMask {
            visible: vec![(0..n).collect(); 2],
            patches: n,
        };
        let shuffled = PatchMask::random(2, n, n, &mut SplitMix64::new(3));
        assert_ne!(shuffled.visible, identity.visible);
        let a = values(mae.forward(x.clone(), &identity));
        let b = values(mae.forward(x, &shuffled));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }

    #[test]
    fn random_masks_hide_the_configured_share_and_stage2_keeps_stage1_blocks() {
        let config = tiny();
        assert_eq!(config.visible_patches(), 4);
        let mask = PatchMask::random(3, 16, 4, &mut SplitMix64::new(4));
        let hidden = values(mask.hidden(&Device::flex()));
        assert_eq!(hidden.iter().sum::<f32>(), 36.0);
        let device = Device::flex();
        let mae = config.init_mae(&device);
        let first_block = values(mae.decoder.blocks[0].mlp.fc1.weight.val());
        let isstad = config.init_isstad(mae, &device);
        assert_eq!(isstad.decoder.blocks.len(), 2);
        assert_eq!(
            values(isstad.decoder.blocks[0].mlp.fc1.weight.val()),
            first_block
        );
        let outputs = isstad.pixel_outputs(images(1, 32, 5));
        assert_eq!(outputs.probability.dims(), [1, 32, 32]);
        assert_eq!(outputs.reconstruction_error.dims(), [1, 32, 32]);
    }

    #[test]
    fn impossible_sizes_are_refused_with_the_field_named() {
        let bad = tiny().with_image_size(30);
        assert!(bad.check().unwrap_err().contains("image_size 30"));
        let bad = tiny().with_encoder_heads(3);
        assert!(bad.check().unwrap_err().contains("encoder_dim 16"));
        let bad = tiny().with_decoder_depth_stage1(3);
        assert!(bad.check().unwrap_err().contains("decoder_depth_stage1"));
        assert!(tiny().check().is_ok() && IsstadConfig::paper().check().is_ok());
        // The MobileNetV2 tokens fix the patch and the width; its absent heads are not checked.
        assert!(IsstadConfig::pretrained().check().is_ok());
        let bad = IsstadConfig::pretrained().with_patch_size(8);
        assert!(bad.check().unwrap_err().contains("patch_size 8"));
    }
}
