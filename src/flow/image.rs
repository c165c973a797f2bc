//! Grey images in f32 for the flow search: bilinear sampling, a Gaussian pyramid, gradients.

/// Why a frame cannot be used for flow.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("a {width}×{height} frame needs {expected} bytes, got {got}")]
    Size {
        width: usize,
        height: usize,
        expected: usize,
        got: usize,
    },
    #[error("a frame of {width}×{height} pixels is empty")]
    Empty { width: usize, height: usize },
}

/// A frame of `width × height` pixels of `channels` bytes must be non-empty and `got` long.
fn check_size(width: usize, height: usize, channels: usize, got: usize) -> Result<(), ImageError> {
    let expected = width * height * channels;
    if expected == 0 {
        return Err(ImageError::Empty { width, height });
    }
    if got != expected {
        return Err(ImageError::Size {
            width,
            height,
            expected,
            got,
        });
    }
    Ok(())
}

/// A grey image, values in [0, 1], row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl GrayImage {
    pub(crate) fn from_values(width: usize, height: usize, data: Vec<f32>) -> Self {
        Self {
            width,
            height,
            data,
        }
    }

    /// From 8-bit grey pixels.
    pub fn from_gray8(width: usize, height: usize, pixels: &[u8]) -> Result<Self, ImageError> {
        check_size(width, height, 1, pixels.len())?;
        Ok(Self::from_values(
            width,
            height,
            pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        ))
    }

    /// From packed RGB8, as ITU-R BT.601 luma (OpenCV's `COLOR_RGB2GRAY`).
    pub fn from_rgb8(width: usize, height: usize, pixels: &[u8]) -> Result<Self, ImageError> {
        check_size(width, height, 3, pixels.len())?;
        let data = pixels
            .chunks_exact(3)
            .map(|rgb| {
                (0.299 * f32::from(rgb[0]) + 0.587 * f32::from(rgb[1]) + 0.114 * f32::from(rgb[2]))
                    / 255.0
            })
            .collect();
        Ok(Self::from_values(width, height, data))
    }

    /// The pixel at `(x, y)`, the border repeated outside.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        let x = x.min(self.width - 1);
        let y = y.min(self.height - 1);
        self.data[y * self.width + x]
    }

    /// Bilinear value at a real position, the border repeated outside.
    #[inline]
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let max_x = (self.width - 1) as f32;
        let max_y = (self.height - 1) as f32;
        let x = x.clamp(0.0, max_x);
        let y = y.clamp(0.0, max_y);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let row0 = y0 * self.width;
        let row1 = y1 * self.width;
        let top = self.data[row0 + x0] * (1.0 - fx) + self.data[row0 + x1] * fx;
        let bottom = self.data[row1 + x0] * (1.0 - fx) + self.data[row1 + x1] * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Blur with the 5-tap binomial kernel [1 4 6 4 1]/16 and keep every other pixel.
    fn half(&self) -> GrayImage {
        const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let (w, h) = (self.width, self.height);
        let (half_w, half_h) = (w.div_ceil(2), h.div_ceil(2));
        // Horizontal pass on the kept columns only, then vertical on the kept rows.
        let mut rows = vec![0.0f32; half_w * h];
        for y in 0..h {
            for hx in 0..half_w {
                let x = 2 * hx;
                let mut sum = 0.0;
                for (k, tap) in TAPS.iter().enumerate() {
                    let sx = (x + k).saturating_sub(2).min(w - 1);
                    sum += tap * self.data[y * w + sx];
                }
                rows[y * half_w + hx] = sum;
            }
        }
        let mut data = vec![0.0f32; half_w * half_h];
        for hy in 0..half_h {
            let y = 2 * hy;
            for hx in 0..half_w {
                let mut sum = 0.0;
                for (k, tap) in TAPS.iter().enumerate() {
                    let sy = (y + k).saturating_sub(2).min(h - 1);
                    sum += tap * rows[sy * half_w + hx];
                }
                data[hy * half_w + hx] = sum;
            }
        }
        GrayImage::from_values(half_w, half_h, data)
    }

    /// `levels` images, full size first, each half the previous.
    pub fn pyramid(&self, levels: usize) -> Vec<GrayImage> {
        let mut pyramid = vec![self.clone()];
        for _ in 1..levels {
            let next = pyramid[pyramid.len() - 1].half();
            pyramid.push(next);
        }
        pyramid
    }

    /// Sobel gradients (divided by 8, so a unit ramp gives 1), the border repeated.
    pub fn gradients(&self) -> (GrayImage, GrayImage) {
        let (w, h) = (self.width, self.height);
        let mut gx = vec![0.0f32; w * h];
        let mut gy = vec![0.0f32; w * h];
        for y in 0..h {
            let (up, down) = (y.saturating_sub(1), (y + 1).min(h - 1));
            for x in 0..w {
                let (left, right) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let p = |xx: usize, yy: usize| self.data[yy * w + xx];
                gx[y * w + x] = ((p(right, up) - p(left, up))
                    + 2.0 * (p(right, y) - p(left, y))
                    + (p(right, down) - p(left, down)))
                    / 8.0;
                gy[y * w + x] = ((p(left, down) - p(left, up))
                    + 2.0 * (p(x, down) - p(x, up))
                    + (p(right, down) - p(right, up)))
                    / 8.0;
            }
        }
        (
            GrayImage::from_values(w, h, gx),
            GrayImage::from_values(w, h, gy),
        )
    }
}
