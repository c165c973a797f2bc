//! Bilinear resampling as torch's `interpolate(mode="bilinear", align_corners=False,
//! antialias=False)` computes it (half-pixel centres, no antialiasing): the resize ISSTAD-edge
//! was trained with. Training (`crate::train::image`) and the factory-line runtime
//! ([`FrameResizer`]) share these taps, so a camera frame reaches the model exactly as the
//! training images did.

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Crop {
    pub fn whole(width: usize, height: usize) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// Source position and weights of one output coordinate under torch's bilinear
/// `interpolate(align_corners=False, antialias=False)`: `src = (dst + ½)·in/out − ½`, clamped
/// at the first and last sample.
pub(crate) fn bilinear_taps(dst: usize, input: usize, output: usize) -> (usize, usize, f32) {
    let scale = input as f64 / output as f64;
    let src = ((dst as f64 + 0.5) * scale - 0.5).max(0.0);
    let low = (src.floor() as usize).min(input - 1);
    let high = (low + 1).min(input - 1);
    (low, high, (src - low as f64) as f32)
}

/// Resamples `crop` of a row-major plane (`stride` values per row) to `size × size` into
/// `out`, bilinearly as torch's `Resize` on a tensor does, mirrored left-right if `mirror`.
///
/// For training, which cuts `crop` from the same image `plane` holds and sizes `out` itself;
/// data from outside (camera frames) goes through [`FrameResizer`], which checks its sizes.
pub fn resample_plane(
    plane: &[f32],
    stride: usize,
    crop: Crop,
    size: usize,
    mirror: bool,
    out: &mut [f32],
) {
    if crop.width == 0 || crop.height == 0 {
        return;
    }
    let columns: Vec<(usize, usize, f32)> = (0..size)
        .map(|x| bilinear_taps(x, crop.width, size))
        .collect();
    for y in 0..size {
        let (top, bottom, fy) = bilinear_taps(y, crop.height, size);
        let row = |r: usize| &plane[(crop.y + r) * stride + crop.x..][..crop.width];
        let (top, bottom) = (row(top), row(bottom));
        for x in 0..size {
            let (left, right, fx) = columns[if mirror { size - 1 - x } else { x }];
            let upper = top[left] + (top[right] - top[left]) * fx;
            let lower = bottom[left] + (bottom[right] - bottom[left]) * fx;
            out[y * size + x] = upper + (lower - upper) * fy;
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResizeError {
    #[error("frame size {width}×{height} is not usable: each side must be at least 1")]
    EmptyFrame { width: usize, height: usize },
    #[error("frame holds {got} bytes, expected {expected} for {width}×{height} RGB24")]
    FrameLength {
        width: usize,
        height: usize,
        expected: usize,
        got: usize,
    },
    #[error(
        "region {}×{} at ({}, {}) does not lie inside the {width}×{height} frame",
        region.width, region.height, region.x, region.y
    )]
    RegionOutside {
        region: Crop,
        width: usize,
        height: usize,
    },
    #[error("model input side {side} is not usable: it must be at least 1")]
    InvalidSide { side: usize },
    #[error("output holds {got} values, expected {expected} for [3, {side}, {side}]")]
    OutputLength {
        side: usize,
        expected: usize,
        got: usize,
    },
}

/// One output coordinate's two source samples and the weight of the second.
type Tap = (usize, usize, f32);

/// Resizes whole RGB24 frames to the model's `[3, S, S]` input in [−1, 1], as training's
/// `normalised_chw` does to the same image, bit for bit: each sample is `v / 255` before it is
/// interpolated, interpolation runs in the same order, then `(x − 0.5) / 0.5`.
///
/// The taps are computed once per frame size, so a stream of same-sized frames is resized
/// without allocating.
#[derive(Debug, Clone)]
pub struct FrameResizer {
    side: usize,
    /// Per-channel mean and standard deviation the resampled `[0, 1]` values are normalised by.
    mean: [f32; 3],
    std: [f32; 3],
    /// The frame size and region `columns` and `rows` were computed for.
    frame: (usize, usize, Crop),
    columns: Vec<Tap>,
    rows: Vec<Tap>,
}

impl FrameResizer {
    /// A resizer to `[3, side, side]` values in [−1, 1] (mean and std 0.5), ISSTAD's input.
    pub fn new(side: usize) -> Result<Self, ResizeError> {
        Self::with_normalisation(side, [0.5; 3], [0.5; 3])
    }

    /// A resizer whose output is `(v − mean[c]) / std[c]` of the resampled `[0, 1]` value `v`
    /// (ImageNet's statistics for a pretrained backbone).
    pub fn with_normalisation(
        side: usize,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Result<Self, ResizeError> {
        if side == 0 {
            return Err(ResizeError::InvalidSide { side });
        }
        Ok(Self {
            side,
            mean,
            std,
            frame: (0, 0, Crop::whole(0, 0)),
            columns: Vec::new(),
            rows: Vec::new(),
        })
    }

    pub fn side(&self) -> usize {
        self.side
    }

    /// Values the output holds: `3·S·S`.
    pub fn output_len(&self) -> usize {
        3 * self.side * self.side
    }

    /// Writes the `width`×`height` RGB24 frame `rgb` (row-major, no padding) as `[3, S, S]`
    /// normalised values into `out`.
    pub fn normalised_chw(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<(), ResizeError> {
        self.normalised_region_chw(rgb, width, height, Crop::whole(width, height), out)
    }

    /// As [`Self::normalised_chw`], on the rectangle `region` of the frame only.
    pub fn normalised_region_chw(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
        region: Crop,
        out: &mut [f32],
    ) -> Result<(), ResizeError> {
        if width == 0 || height == 0 {
            return Err(ResizeError::EmptyFrame { width, height });
        }
        let expected = width
            .checked_mul(height)
            .and_then(|pixels| pixels.checked_mul(3));
        if expected != Some(rgb.len()) {
            return Err(ResizeError::FrameLength {
                width,
                height,
                expected: expected.unwrap_or(usize::MAX),
                got: rgb.len(),
            });
        }
        if region.width == 0
            || region.height == 0
            || region
                .x
                .checked_add(region.width)
                .is_none_or(|right| right > width)
            || region
                .y
                .checked_add(region.height)
                .is_none_or(|bottom| bottom > height)
        {
            return Err(ResizeError::RegionOutside {
                region,
                width,
                height,
            });
        }
        let side = self.side;
        let plane = side * side;
        if out.len() != 3 * plane {
            return Err(ResizeError::OutputLength {
                side,
                expected: 3 * plane,
                got: out.len(),
            });
        }
        if self.frame != (width, height, region) {
            let offset = |(low, high, weight): Tap, by: usize| (low + by, high + by, weight);
            self.columns.clear();
            self.columns
                .extend((0..side).map(|x| offset(bilinear_taps(x, region.width, side), region.x)));
            self.rows.clear();
            self.rows
                .extend((0..side).map(|y| offset(bilinear_taps(y, region.height, side), region.y)));
            self.frame = (width, height, region);
        }
        let (mean, std) = (self.mean, self.std);
        let stride = width * 3;
        for (channel, target) in out.chunks_exact_mut(plane).enumerate() {
            // Taps are clamped to the frame and every row holds `stride` bytes (checked above),
            // so each index below is in bounds.
            let sample = |row: &[u8], column: usize| f32::from(row[column * 3 + channel]) / 255.0;
            for (&(top, bottom, fy), out_row) in self.rows.iter().zip(target.chunks_exact_mut(side))
            {
                let top = &rgb[top * stride..(top + 1) * stride];
                let bottom = &rgb[bottom * stride..(bottom + 1) * stride];
                for (&(left, right, fx), value) in self.columns.iter().zip(out_row.iter_mut()) {
                    let (tl, tr) = (sample(top, left), sample(top, right));
                    let (bl, br) = (sample(bottom, left), sample(bottom, right));
                    let upper = tl + (tr - tl) * fx;
                    let lower = bl + (br - bl) * fx;
                    let resampled = upper + (lower - upper) * fy;
                    *value = (resampled - mean[channel]) / std[channel];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_matches_torch_bilinear_without_antialias() {
        // torch.nn.functional.interpolate(torch.arange(16.).view(1,1,4,4), size=(2,2),
        // mode="bilinear", align_corners=False) → [[2.5, 4.5], [10.5, 12.5]]; to 6×6 the first
        // row starts 0, 0.1667, 0.8333 (src = (x + ½)·⅔ − ½, clamped at 0).
        let plane: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut down = vec![0.0; 4];
        resample_plane(&plane, 4, Crop::whole(4, 4), 2, false, &mut down);
        assert_eq!(down, vec![2.5, 4.5, 10.5, 12.5]);
        let mut up = vec![0.0; 36];
        resample_plane(&plane, 4, Crop::whole(4, 4), 6, false, &mut up);
        for (got, want) in up[..3].iter().zip([0.0, 0.5, 7.0 / 6.0]) {
            assert!((got - want).abs() < 1e-6, "{:?}", &up[..6]);
        }
        let mut mirrored = vec![0.0; 4];
        resample_plane(&plane, 4, Crop::whole(4, 4), 2, true, &mut mirrored);
        assert_eq!(mirrored, vec![4.5, 2.5, 12.5, 10.5]);
        // A crop reads only its own pixels.
        let crop = Crop {
            x: 2,
            y: 2,
            width: 2,
            height: 2,
        };
        let mut same = vec![0.0; 4];
        resample_plane(&plane, 4, crop, 2, false, &mut same);
        assert_eq!(same, vec![10.0, 11.0, 14.0, 15.0]);
    }

    /// The plane-by-plane path training uses, for comparison.
    fn planes(rgb: &[u8], width: usize, height: usize, side: usize) -> Vec<f32> {
        let mut out = vec![0.0; 3 * side * side];
        for (channel, target) in out.chunks_mut(side * side).enumerate() {
            let plane: Vec<f32> = rgb
                .chunks(3)
                .map(|p| f32::from(p[channel]) / 255.0)
                .collect();
            resample_plane(
                &plane,
                width,
                Crop::whole(width, height),
                side,
                false,
                target,
            );
            for v in target.iter_mut() {
                *v = (*v - 0.5) / 0.5;
            }
        }
        out
    }

    #[test]
    fn frames_resize_exactly_as_training_planes_do() {
        let mut resizer = FrameResizer::new(8).unwrap();
        for (width, height) in [(13, 7), (8, 8), (3, 20)] {
            let rgb: Vec<u8> = (0..width * height * 3)
                .map(|i| (i * 37 % 251) as u8)
                .collect();
            let mut out = vec![0.0; resizer.output_len()];
            resizer
                .normalised_chw(&rgb, width, height, &mut out)
                .unwrap();
            assert_eq!(out, planes(&rgb, width, height, 8), "{width}×{height}");
        }
    }

    #[test]
    fn frames_that_do_not_match_their_size_are_refused() {
        let mut resizer = FrameResizer::new(4).unwrap();
        let mut out = vec![0.0; 48];
        let err = resizer
            .normalised_chw(&[0; 10], 2, 2, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10 bytes, expected 12 for 2×2"), "{err}");
        assert!(resizer.normalised_chw(&[], 0, 2, &mut out).is_err());
        assert!(
            resizer
                .normalised_chw(&[0; 12], 2, 2, &mut out[..47])
                .unwrap_err()
                .to_string()
                .contains("47 values, expected 48")
        );
        assert!(FrameResizer::new(0).is_err());
    }
}
