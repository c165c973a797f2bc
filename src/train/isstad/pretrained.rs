//! ISSTAD's encoder as the paper uses it: pretrained on ImageNet and frozen. Here it is
//! torchvision's MobileNetV2 cut after its stride-16 stage, whose 14×14 map on a 224² image
//! is exactly the ViT-16 token grid the decoder works on.
//!
//! A token is the stride-16 feature (96 channels, `features.13`) beside the stride-8 feature
//! (32 channels, `features.6`) folded 2×2 into its four sub-positions (128 channels): the two
//! layers PatchCore reads, and the finer one keeps where inside the 16×16 patch a defect sits,
//! which the pixel classifier needs. Tokens are standardised per channel with the mean and
//! standard deviation of the good training images (fixed, like a batch norm in evaluation
//! mode), and a class token is their average, so the decoder receives `[B, 1 + N, 224]` as it
//! would from the MAE.

use burn::module::{Module, Param};
use burn::prelude::*;

use crate::train::mobilenet::{
    ConvNorm, IMAGENET_MEAN, IMAGENET_STD, InvertedResidual, MobileNetV2,
};
use crate::train::onnx::{ExportError, ExportOnnx, OnnxGraph, Value, parameter};

/// The blocks kept: through block 12, the end of the stride-16 stage.
pub const LAST_BLOCK: usize = 12;
/// The block whose output is the stride-8 half of a token (torchvision's `features.6`).
pub const FINE_BLOCK: usize = 5;
const FINE_CHANNELS: usize = 32;
const COARSE_CHANNELS: usize = 96;
/// Width of a token: 32 × 2 × 2 folded stride-8 values and 96 stride-16 values.
pub const TOKEN_WIDTH: usize = FINE_CHANNELS * 4 + COARSE_CHANNELS;
/// Pixels per token side.
pub const STRIDE: usize = 16;

/// The frozen MobileNetV2 stages and the fixed token standardisation.
#[derive(Module, Debug)]
pub struct PretrainedEncoder {
    pub stem: ConvNorm,
    pub blocks: Vec<InvertedResidual>,
    /// Per token channel, the good images' mean and 1 / standard deviation.
    pub token_mean: Param<Tensor<1>>,
    pub token_inverse_std: Param<Tensor<1>>,
    pub grid: usize,
}

/// Per channel, the affine map from ISSTAD's [−1, 1] input to ImageNet's normalisation:
/// `((x + 1) / 2 − mean) / std = x · 0.5 / std + (0.5 − mean) / std`.
fn input_affine() -> ([f32; 3], [f32; 3]) {
    let mut scale = [0.0; 3];
    let mut shift = [0.0; 3];
    for c in 0..3 {
        scale[c] = 0.5 / IMAGENET_STD[c];
        shift[c] = (0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
    }
    (scale, shift)
}

impl PretrainedEncoder {
    /// The first stages of `net` for `image_size`² inputs, with an identity standardisation
    /// until [`Self::standardise_on`] fits it.
    pub fn from_mobilenet(net: MobileNetV2, image_size: usize, device: &Device) -> Self {
        let blocks = net.blocks.into_iter().take(LAST_BLOCK + 1).collect();
        Self {
            stem: net.stem,
            blocks,
            token_mean: Param::from_tensor(Tensor::zeros([TOKEN_WIDTH], device)),
            token_inverse_std: Param::from_tensor(Tensor::ones([TOKEN_WIDTH], device)),
            grid: image_size / STRIDE,
        }
    }

    /// A randomly initialised skeleton a saved record is loaded into.
    pub fn skeleton(image_size: usize, device: &Device) -> Self {
        Self::from_mobilenet(MobileNetV2::new(device), image_size, device)
    }

    /// Unstandardised tokens `[B, N, 224]` of images in [−1, 1].
    fn raw_tokens(&self, images: Tensor<4>) -> Tensor<3> {
        let device = images.device();
        let (scale, shift) = input_affine();
        let scale = Tensor::<1>::from_floats(scale, &device).reshape([1, 3, 1, 1]);
        let shift = Tensor::<1>::from_floats(shift, &device).reshape([1, 3, 1, 1]);
        let mut x = self.stem.forward(images * scale + shift);
        let mut fine = None;
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if index == FINE_BLOCK {
                fine = Some(x.clone());
            }
        }
        let [b, _, g, _] = x.dims();
        // Only a network built with fewer blocks than FINE_BLOCK lacks the fine map; the
        // constructor keeps LAST_BLOCK + 1 blocks, so it is always there.
        let fine = fine.unwrap_or_else(|| Tensor::zeros([b, FINE_CHANNELS, 2 * g, 2 * g], &device));
        let folded = fold_2x2(fine);
        Tensor::cat(vec![folded, x], 1)
            .reshape([b, TOKEN_WIDTH, g * g])
            .swap_dims(1, 2)
    }

    /// Encoded tokens `[B, 1 + N, 224]`: the class token (the tokens' mean), then the patches.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let tokens = self.raw_tokens(images);
        let mean = self.token_mean.val().reshape([1, 1, TOKEN_WIDTH]);
        let inverse_std = self.token_inverse_std.val().reshape([1, 1, TOKEN_WIDTH]);
        let tokens = (tokens - mean) * inverse_std;
        let cls = tokens.clone().mean_dim(1);
        Tensor::cat(vec![cls, tokens], 1)
    }

    /// Fits the standardisation on `images` (`[B, 3, S, S]` batches of good images).
    pub fn standardise_on(mut self, batches: impl IntoIterator<Item = Tensor<4>>) -> Self {
        let mut sum: Option<Tensor<1>> = None;
        let mut square_sum: Option<Tensor<1>> = None;
        let mut count = 0usize;
        for images in batches {
            let tokens = self.raw_tokens(images);
            let [b, n, _] = tokens.dims();
            let flat = tokens.reshape([b * n, TOKEN_WIDTH]);
            let s = flat.clone().sum_dim(0).reshape([TOKEN_WIDTH]);
            let q = flat.square().sum_dim(0).reshape([TOKEN_WIDTH]);
            sum = Some(sum.map_or(s.clone(), |t| t + s));
            square_sum = Some(square_sum.map_or(q.clone(), |t| t + q));
            count += b * n;
        }
        if let (Some(sum), Some(square_sum)) = (sum, square_sum) {
            let n = count.max(1) as f64;
            let mean = sum / n;
            let variance = (square_sum / n - mean.clone().square()).clamp_min(0.0);
            // A channel that never varies on good parts is left unscaled, not blown up.
            let inverse_std = (variance + 1e-6).sqrt().recip();
            self.token_mean = Param::from_tensor(mean);
            self.token_inverse_std = Param::from_tensor(inverse_std);
        }
        self
    }

    /// The same computation in an ONNX graph: image `[1, 3, S, S]` → tokens `[1, 1 + N, 224]`.
    pub fn export_tokens(
        &self,
        graph: &mut OnnxGraph,
        image: &Value,
        scope: &str,
    ) -> Result<Value, ExportError> {
        let (scale, shift) = input_affine();
        let scale = graph.constant_f32(&format!("{scope}.input_scale"), &[1, 3, 1, 1], &scale)?;
        let shift = graph.constant_f32(&format!("{scope}.input_shift"), &[1, 3, 1, 1], &shift)?;
        let x = graph.mul(image, &scale)?;
        let x = graph.add(&x, &shift)?;
        let mut x = self.stem.export_onnx(graph, &x, &format!("{scope}.stem"))?;
        let mut fine = None;
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.export_onnx(graph, &x, &format!("{scope}.blocks.{index}"))?;
            if index == FINE_BLOCK {
                fine = Some(x.clone());
            }
        }
        let fine = fine.ok_or_else(|| ExportError::Weights {
            name: format!("{scope}.blocks"),
            reason: format!(
                "{} blocks, the fine tap is block {FINE_BLOCK}",
                self.blocks.len()
            ),
        })?;
        let g = self.grid;
        let split = graph.reshape(&fine, &[1, FINE_CHANNELS, g, 2, g, 2])?;
        let ordered = graph.transpose(&split, &[0, 1, 3, 5, 2, 4])?;
        let folded = graph.reshape(&ordered, &[1, FINE_CHANNELS * 4, g, g])?;
        let joined = graph.concat(&[&folded, &x], 1)?;
        let flat = graph.reshape(&joined, &[1, TOKEN_WIDTH, g * g])?;
        let tokens = graph.transpose(&flat, &[0, 2, 1])?;
        let mean = parameter(graph, scope, "token_mean", self.token_mean.val())?;
        let inverse_std = parameter(
            graph,
            scope,
            "token_inverse_std",
            self.token_inverse_std.val(),
        )?;
        let centred = graph.binary("Sub", &tokens, &mean)?;
        let tokens = graph.mul(&centred, &inverse_std)?;
        let cls = graph.reduce_mean(&tokens, &[1], true)?;
        graph.concat(&[&cls, &tokens], 1)
    }
}

/// `[B, C, 2g, 2g]` → `[B, 4C, g, g]`: each 2×2 cell's values as channels, ordered
/// (channel, row in cell, column in cell).
fn fold_2x2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let (g, gw) = (h / 2, w / 2);
    x.reshape([b, c, g, 2, gw, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, c * 4, g, gw])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::train::parity::{plan, relative_difference, run_plan_outputs};

    fn images(batch: usize, side: usize, seed: u64) -> Tensor<4> {
        let mut rng = SplitMix64::new(seed);
        let values: Vec<f32> = (0..batch * 3 * side * side)
            .map(|_| rng.range(-1.0, 1.0) as f32)
            .collect();
        Tensor::from_data(
            TensorData::new(values, [batch, 3, side, side]),
            &Device::flex(),
        )
    }

    #[test]
    fn folding_puts_each_cell_in_channels_in_order() {
        let values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 1, 4, 4]), &Device::flex());
        let folded = fold_2x2(x).into_data().try_to_vec::<f32>().unwrap();
        // Channel (row 1, column 0) of cell (0, 1) is pixel (1, 2) = 6.
        assert_eq!(folded[2 * 4 + 1], 6.0);
        assert_eq!(&folded[..4], &[0.0, 2.0, 8.0, 10.0]);
    }

    #[test]
    fn standardised_tokens_have_zero_mean_and_unit_spread_on_the_fitting_images() {
        let device = Device::flex();
        let encoder = PretrainedEncoder::skeleton(64, &device).standardise_on([images(2, 64, 3)]);
        let tokens = encoder.forward(images(2, 64, 3));
        assert_eq!(tokens.dims(), [2, 1 + 16, TOKEN_WIDTH]);
        let patches = tokens.slice([0..2, 1..17]).reshape([32, TOKEN_WIDTH]);
        let values = patches.into_data().try_to_vec::<f32>().unwrap();
        for channel in 0..TOKEN_WIDTH {
            let column: Vec<f64> = values
                .iter()
                .skip(channel)
                .step_by(TOKEN_WIDTH)
                .map(|&v| f64::from(v))
                .collect();
            let mean = column.iter().sum::<f64>() / column.len() as f64;
            let spread = column.iter().map(|v| v * v).sum::<f64>() / column.len() as f64;
            assert!(mean.abs() < 1e-3, "channel {channel}: mean {mean}");
            // A channel constant on these images stays near zero rather than unit spread.
            assert!(spread < 1.01, "channel {channel}: mean square {spread}");
        }
    }

    #[test]
    fn tract_runs_the_exported_tokens_as_burn_computes_them() {
        let device = Device::flex();
        let encoder = PretrainedEncoder::skeleton(64, &device).standardise_on([images(2, 64, 4)]);
        let probe = images(1, 64, 5);
        let burn = encoder
            .forward(probe.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let mut graph = OnnxGraph::new("tokens");
        let input = graph.input("image", &[1, 3, 64, 64]).unwrap();
        let tokens = encoder
            .export_tokens(&mut graph, &input, "encoder")
            .unwrap();
        graph.output(&tokens, "tokens").unwrap();
        let model = graph.finish();
        let image = probe.into_data().try_to_vec::<f32>().unwrap();
        let tract = run_plan_outputs(&plan(&model).unwrap(), &[1, 3, 64, 64], &image).unwrap();
        let gap = relative_difference(&burn, &tract[0]).unwrap();
        assert!(gap < 1e-4, "relative gap {gap}");
    }
}
