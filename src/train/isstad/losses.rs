//! ISSTAD's two losses (papers.md §3.2): MAE's masked-patch MSE for stage 1, and for stage 2
//! the class-weighted pixel cross-entropy over every head, plus 0.5·MSE and 0.1·(1 − SSIM) of
//! the reconstruction against the clean image.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::model::unpatchify;
use crate::train::ssim::{Border, SsimWindow, ssim_map};

/// Cross-entropy weights of the normal and the anomalous class (`[3.0, 1.0]` in the code):
/// normal pixels dominate each image, yet the code weighs them up, which keeps false positives
/// on normal texture rare.
pub const CLASS_WEIGHTS: [f64; 2] = [3.0, 1.0];

/// pytorch-ssim's window, as the authors' stage 2 uses it.
const SSIM_WINDOW: SsimWindow = SsimWindow {
    size: 11,
    sigma: 1.5,
    border: Border::Zero,
};

/// MAE's loss: per-patch mean squared error, averaged over the hidden patches only.
/// `predicted` and `target` are `[B, N, p·p·3]`, `hidden` is `[B, N]` (1 = hidden).
pub fn masked_patch_mse(predicted: Tensor<3>, target: Tensor<3>, hidden: Tensor<2>) -> Tensor<1> {
    let per_patch: Tensor<2> = (predicted - target).square().mean_dim(2).squeeze_dim(2);
    let hidden_count = hidden.clone().sum().clamp_min(1.0);
    (per_patch * hidden).sum() / hidden_count
}

/// Torch's `CrossEntropyLoss(weight=[3, 1])` over every pixel: `Σ w_y·(−log p_y) / Σ w_y`.
/// `logits` `[B, N, p·p·2]` (pairs per pixel), `labels` `[B, N, p·p]` in {0, 1}.
pub fn weighted_pixel_cross_entropy(logits: Tensor<3>, labels: Tensor<3>) -> Tensor<1> {
    let [b, n, pixels] = labels.dims();
    let log_p: Tensor<4> = log_softmax(logits.reshape([b, n, pixels, 2]), 3);
    let log_normal: Tensor<3> = log_p
        .clone()
        .slice([0..b, 0..n, 0..pixels, 0..1])
        .reshape([b, n, pixels]);
    let log_anomalous: Tensor<3> = log_p
        .slice([0..b, 0..n, 0..pixels, 1..2])
        .reshape([b, n, pixels]);
    let [w_normal, w_anomalous] = CLASS_WEIGHTS;
    let weights = labels.clone() * (w_anomalous - w_normal) + w_normal;
    let nll = -(labels.clone() * log_anomalous + (-labels + 1.0) * log_normal);
    (nll * weights.clone()).sum() / weights.sum()
}

/// Each term of the stage-2 loss, and their weighted sum.
pub struct PixelLoss {
    pub total: Tensor<1>,
    pub cross_entropy: Tensor<1>,
    pub mse: Tensor<1>,
    pub ssim: Tensor<1>,
}

/// `L = mean_h CE_w(logits_h, labels) + 0.5·MSE(recon, clean) + 0.1·(1 − SSIM(recon, clean))`.
/// `head_logits` are `[B, N, p·p·2]` each, `reconstruction` and `clean` `[B, N, p·p·3]`.
pub fn pixel_loss(
    head_logits: Vec<Tensor<3>>,
    labels: Tensor<3>,
    reconstruction: Tensor<3>,
    clean: Tensor<3>,
    patch: usize,
) -> PixelLoss {
    let heads = head_logits.len().max(1) as f64;
    let cross_entropy = head_logits
        .into_iter()
        .map(|logits| weighted_pixel_cross_entropy(logits, labels.clone()))
        .reduce(|a, b| a + b)
        .map(|sum| sum / heads)
        .unwrap_or_else(|| Tensor::zeros([1], &labels.device()));
    let mse = (reconstruction.clone() - clean.clone()).square().mean();
    let ssim = ssim_map(
        unpatchify(reconstruction, patch, 3),
        unpatchify(clean, patch, 3),
        SSIM_WINDOW,
    )
    .mean();
    let dissimilarity = -ssim.clone() + 1.0;
    PixelLoss {
        total: cross_entropy.clone() + mse.clone() * 0.5 + dissimilarity * 0.1,
        cross_entropy,
        mse,
        ssim,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn tensor3(values: Vec<f32>, shape: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(TensorData::new(values, shape), &device())
    }

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_scalar::<f32>())
    }

    #[test]
    fn masked_mse_ignores_shown_patches() {
        let predicted = tensor3(vec![0.0, 0.0, 1.0, 1.0], [1, 2, 2]);
        let target = tensor3(vec![5.0, 5.0, 0.0, 0.0], [1, 2, 2]);
        let hidden = Tensor::from_data(TensorData::new(vec![0.0f32, 1.0], [1, 2]), &device());
        // Only patch 1 counts: its squared error is 1 per value.
        assert!((scalar(masked_patch_mse(predicted, target, hidden)) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weighted_cross_entropy_matches_torch_by_hand() {
        // Two pixels: a normal one with logits (2, 0) and an anomalous one with logits (0, 1).
        let logits = tensor3(vec![2.0, 0.0, 0.0, 1.0], [1, 1, 4]);
        let labels = tensor3(vec![0.0, 1.0], [1, 1, 2]);
        let nll_normal = -(2f64.exp() / (2f64.exp() + 1.0)).ln();
        let nll_anomalous = -(1f64.exp() / (1f64.exp() + 1.0)).ln();
        let expected = (3.0 * nll_normal + 1.0 * nll_anomalous) / 4.0;
        let got = scalar(weighted_pixel_cross_entropy(logits, labels));
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn pixel_loss_is_small_for_a_perfect_prediction_and_sums_its_terms() {
        let patch = 2;
        let clean = tensor3(
            (0..48).map(|i| (i as f32 / 24.0) - 1.0).collect(),
            [1, 4, 12],
        );
        let labels = tensor3(vec![0.0; 16], [1, 4, 4]);
        // Confident "normal" logits for every pixel, from two heads.
        let logits: Vec<f32> = (0..16).flat_map(|_| [20.0, -20.0]).collect();
        let heads = vec![
            tensor3(logits.clone(), [1, 4, 8]),
            tensor3(logits, [1, 4, 8]),
        ];
        let loss = pixel_loss(heads, labels, clean.clone(), clean, patch);
        let (total, ce, mse, ssim) = (
            scalar(loss.total),
            scalar(loss.cross_entropy),
            scalar(loss.mse),
            scalar(loss.ssim),
        );
        assert!(
            ce < 1e-6 && mse < 1e-12 && (ssim - 1.0).abs() < 1e-4,
            "{ce} {mse} {ssim}"
        );
        assert!((total - (ce + 0.5 * mse + 0.1 * (1.0 - ssim))).abs() < 1e-6);
    }
}
