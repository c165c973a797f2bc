//! ImageNet's input normalisation, as torchvision's backbones were trained: one place for the
//! runtime's extractors and the training companion.

/// Per-channel mean and standard deviation of ImageNet's RGB, on [0, 1] values.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Packed RGB8 pixels to a normalised planar `[3, pixels]` (CHW) input.
pub fn normalize_chw(rgb: &[u8]) -> Vec<f32> {
    let plane = rgb.len() / 3;
    let mut out = vec![0.0f32; 3 * plane];
    for (pixel, values) in rgb.chunks_exact(3).enumerate() {
        for channel in 0..3 {
            out[channel * plane + pixel] = (f32::from(values[channel]) / 255.0
                - IMAGENET_MEAN[channel])
                / IMAGENET_STD[channel];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pixels_go_to_their_planes_normalised() {
        let chw = super::normalize_chw(&[255, 0, 0, 0, 255, 0]);
        let expected = [
            (1.0 - 0.485) / 0.229,
            -0.485 / 0.229,
            -0.456 / 0.224,
            (1.0 - 0.456) / 0.224,
            -0.406 / 0.225,
            -0.406 / 0.225,
        ];
        for (got, want) in chw.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{chw:?}");
        }
    }
}
