//! Structural similarity with a Gaussian window, the form both FERS's restoration loss (kornia,
//! 5×5, reflect borders) and ISSTAD's stage-2 loss (pytorch-ssim, 11×11, zero borders) use.

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

/// How the window sees past the image edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// Mirror without repeating the edge pixel (kornia).
    Reflect,
    /// Zeros, as `F.conv2d(padding=window // 2)` (pytorch-ssim).
    Zero,
}

/// A square Gaussian window.
#[derive(Debug, Clone, Copy)]
pub struct SsimWindow {
    pub size: usize,
    pub sigma: f64,
    pub border: Border,
}

/// The per-pixel SSIM map of two NCHW batches, with C1 = 0.01², C2 = 0.03² and no data-range
/// scaling (both papers' code).
pub fn ssim_map(x: Tensor<4>, y: Tensor<4>, window: SsimWindow) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let device = x.device();
    let half = window.size / 2;
    let taps: Vec<f64> = (0..window.size)
        .map(|i| {
            let d = i as f64 - half as f64;
            (-d * d / (2.0 * window.sigma * window.sigma)).exp()
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    let mut kernel = Vec::with_capacity(c * window.size * window.size);
    for _ in 0..c {
        for a in &taps {
            for b in &taps {
                kernel.push((a * b / (sum * sum)) as f32);
            }
        }
    }
    let kernel = Tensor::<4>::from_data(
        TensorData::new(kernel, [c, 1, window.size, window.size]),
        &device,
    );
    let blur = |t: Tensor<4>| match window.border {
        Border::Reflect => conv2d(
            t.pad((half, half, half, half), PadMode::Reflect),
            kernel.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], c),
        ),
        Border::Zero => conv2d(
            t,
            kernel.clone(),
            None,
            ConvOptions::new([1, 1], [half, half], [1, 1], c),
        ),
    };
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let mu_x = blur(x.clone());
    let mu_y = blur(y.clone());
    let var_x = blur(x.clone().square()) - mu_x.clone().square();
    let var_y = blur(y.clone().square()) - mu_y.clone().square();
    let cov = blur(x * y) - mu_x.clone() * mu_y.clone();
    let numerator = (mu_x.clone() * mu_y.clone() * 2.0 + c1) * (cov * 2.0 + c2);
    let denominator = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2);
    numerator / denominator
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| rng.uniform() as f32).collect()
    }

    #[test]
    fn ssim_is_one_for_equal_images_and_falls_with_noise_for_both_borders() {
        let device = Device::flex();
        let shape = [1, 3, 16, 16];
        let x = Tensor::<4>::from_data(TensorData::new(noise(768, 1), shape), &device);
        let n = Tensor::<4>::from_data(TensorData::new(noise(768, 2), shape), &device);
        for border in [Border::Reflect, Border::Zero] {
            let window = SsimWindow {
                size: 11,
                sigma: 1.5,
                border,
            };
            let same: f32 = ssim_map(x.clone(), x.clone(), window).mean().into_scalar();
            let noisy: f32 = ssim_map(x.clone(), x.clone() + n.clone() * 0.5, window)
                .mean()
                .into_scalar();
            assert!((same - 1.0).abs() < 1e-4, "{border:?}: {same}");
            assert!(noisy < 0.9, "{border:?}: {noisy}");
        }
    }
}
