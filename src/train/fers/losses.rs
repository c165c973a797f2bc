//! Stage 2's losses, as FERS's `losses.py` defines them (`papers.md` §1.3). Every input is a
//! channels-last batch `[B, H, W, C]`.

use burn::prelude::*;

use super::model::to_nchw;
use crate::train::ssim::{Border, SsimWindow, ssim_map};

/// Each term of the student's loss, and their weighted sum.
pub struct StudentLoss {
    pub total: Tensor<1>,
    pub decorrelation: Tensor<1>,
    pub orthogonality: Tensor<1>,
    pub variance: Tensor<1>,
    pub reconstruction: Tensor<1>,
}

/// `L = L_cc + 0.1·L_cos + 0.1·L_var + L_rec`, with `L_rec` on the restoration net's output.
pub fn student_loss(
    spectral: Tensor<4>,
    spatial: Tensor<4>,
    restored: Tensor<4>,
    cube: Tensor<4>,
) -> StudentLoss {
    let decorrelation = cross_correlation(spectral.clone(), spatial.clone());
    let orthogonality = orthogonality(spectral, spatial.clone());
    let variance = variance_floor(spatial);
    let mse = (restored.clone() - cube.clone()).square().mean();
    let reconstruction = mse + ssim_loss(to_nchw(restored), to_nchw(cube)) * 0.01;
    let total = decorrelation.clone()
        + orthogonality.clone() * 0.1
        + variance.clone() * 0.1
        + reconstruction.clone();
    StudentLoss {
        total,
        decorrelation,
        orthogonality,
        variance,
        reconstruction,
    }
}

/// `L_cc = Σᵢⱼ Kᵢⱼ²`: the squared Frobenius norm of the channel cross-correlation of the two
/// branches, each channel standardised over batch × pixels.
pub fn cross_correlation(s: Tensor<4>, p: Tensor<4>) -> Tensor<1> {
    let [b, h, w, c] = s.dims();
    let n = b * h * w;
    let standardise = |x: Tensor<4>| {
        let x: Tensor<2> = x.reshape([n, c]);
        let mean = x.clone().mean_dim(0);
        let centred = x - mean;
        // The ε inside the root keeps the gradient finite for a channel that is all zeros (a
        // ReLU branch can switch one off); FERS adds 1e-6 to the root, the same scale.
        let std = (centred.clone().square().mean_dim(0) + 1e-12).sqrt();
        centred / (std + 1e-6)
    };
    let k = standardise(s).transpose().matmul(standardise(p)) / n as f64;
    k.square().sum()
}

/// `L_cos = 1 + mean over pixels of cos(S, P)` along the bands; both are ReLU outputs, so the
/// minimum, 1, is per-pixel orthogonality.
pub fn orthogonality(s: Tensor<4>, p: Tensor<4>) -> Tensor<1> {
    let dot = (s.clone() * p.clone()).sum_dim(3);
    // Roots of sums offset by ε²: at an all-zero pixel the plain root's gradient is infinite.
    let norm_s = (s.square().sum_dim(3) + 1e-16).sqrt().clamp_min(1e-8);
    let norm_p = (p.square().sum_dim(3) + 1e-16).sqrt().clamp_min(1e-8);
    (dot / (norm_s * norm_p)).mean() + 1.0
}

/// `L_var = mean_c ReLU(1 − mean_b Var_hw(P)) + mean|P|`: keeps every spatial channel alive
/// without letting it grow.
pub fn variance_floor(p: Tensor<4>) -> Tensor<1> {
    let [b, h, w, c] = p.dims();
    let flat: Tensor<3> = p.clone().reshape([b, h * w, c]);
    let mean = flat.clone().mean_dim(1);
    // Unbiased, as torch's `var`.
    let var = (flat - mean).square().sum_dim(1) / ((h * w).max(2) - 1) as f64;
    let floor = (-var.mean_dim(0) + 1.0).clamp_min(0.0).mean();
    floor + p.abs().mean()
}

/// Kornia's `SSIMLoss(window_size=5)`: `(1 − SSIM) / 2` averaged, Gaussian window σ = 1.5,
/// `max_val` 1, reflect borders. Inputs NCHW.
pub fn ssim_loss(x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
    let window = SsimWindow {
        size: 5,
        sigma: 1.5,
        border: Border::Reflect,
    };
    ((-ssim_map(x, y, window) + 1.0) / 2.0)
        .clamp(0.0, 1.0)
        .mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn tensor(values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, shape), &device())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| rng.uniform() as f32).collect()
    }

    #[test]
    fn cross_correlation_is_zero_for_independent_and_c_for_identical_channels() {
        let shape = [1, 8, 8, 3];
        let s = tensor(pseudo_random(192, 1), shape);
        // Identical branches: K is the correlation matrix of S, whose diagonal is 1.
        let same = scalar(cross_correlation(s.clone(), s.clone()));
        assert!(same >= 3.0 - 1e-3, "{same}");
        // A branch that is a positive multiple of the other correlates the same way.
        let scaled = scalar(cross_correlation(s.clone(), s.clone() * 5.0));
        assert!((scaled - same).abs() < 1e-3, "{scaled} vs {same}");
        let other = tensor(pseudo_random(192, 2), shape);
        let independent = scalar(cross_correlation(s, other));
        assert!(independent < 0.3 * same, "{independent}");
    }

    #[test]
    fn orthogonality_bottoms_out_at_one() {
        let s = tensor(vec![1.0, 0.0, 1.0, 0.0], [1, 1, 2, 2]);
        let p = tensor(vec![0.0, 2.0, 0.0, 3.0], [1, 1, 2, 2]);
        assert!((scalar(orthogonality(s.clone(), p)) - 1.0).abs() < 1e-6);
        assert!((scalar(orthogonality(s.clone(), s)) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn variance_floor_penalises_flat_channels_only() {
        let flat = tensor(vec![0.0; 32], [1, 4, 4, 2]);
        assert!((scalar(variance_floor(flat)) - 1.0).abs() < 1e-6);
        let lively: Vec<f32> = (0..32).map(|i| if i % 4 < 2 { 0.0 } else { 4.0 }).collect();
        let lively = tensor(lively, [1, 4, 4, 2]);
        // Var ≥ 1 leaves only mean|P| = 2.
        assert!((scalar(variance_floor(lively)) - 2.0).abs() < 1e-5);
    }

    #[test]
    fn ssim_loss_is_zero_for_equal_images_and_grows_with_noise() {
        let shape = [1, 2, 12, 12];
        let x = tensor(pseudo_random(288, 3), shape);
        assert!(scalar(ssim_loss(x.clone(), x.clone())) < 1e-5);
        let noisy = x.clone() + tensor(pseudo_random(288, 4), shape) * 0.5;
        let very_noisy = x.clone() + tensor(pseudo_random(288, 4), shape) * 2.0 - 1.0;
        let a = scalar(ssim_loss(x.clone(), noisy));
        let b = scalar(ssim_loss(x, very_noisy));
        assert!(a > 0.01 && b > a, "{a} {b}");
    }
}
