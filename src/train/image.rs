//! Reading PNG photos (test photos, MVTec AD images) as RGB8.

use std::path::{Path, PathBuf};

/// Why an image could not be read; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path} is not a readable PNG: {detail}")]
    Decode { path: PathBuf, detail: String },
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Decodes a PNG of any colour type and depth into RGB8 (grey is replicated, alpha dropped,
/// 16-bit reduced to 8, palettes expanded).
pub fn read_png(path: &Path) -> Result<Rgb8, ImageError> {
    let decode = |detail: String| ImageError::Decode {
        path: path.to_path_buf(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| ImageError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| decode(e.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| decode("image too large".into()))?;
    let mut buffer = vec![0; size];
    let frame = reader
        .next_frame(&mut buffer)
        .map_err(|e| decode(e.to_string()))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(decode("palette not expanded".into())),
    };
    let data = &buffer[..frame.buffer_size()];
    let mut pixels = Vec::with_capacity(width * height * 3);
    for row in data.chunks(frame.line_size).take(height) {
        for pixel in row.chunks(channels).take(width) {
            match channels {
                1 | 2 => pixels.extend([pixel[0]; 3]),
                _ => pixels.extend(&pixel[..3]),
            }
        }
    }
    if pixels.len() != width * height * 3 || width == 0 || height == 0 {
        return Err(decode(format!(
            "{width}x{height} image with a short pixel buffer"
        )));
    }
    Ok(Rgb8 {
        width,
        height,
        pixels,
    })
}

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
fn bilinear_taps(dst: usize, input: usize, output: usize) -> (usize, usize, f32) {
    let scale = input as f64 / output as f64;
    let src = ((dst as f64 + 0.5) * scale - 0.5).max(0.0);
    let low = (src.floor() as usize).min(input - 1);
    let high = (low + 1).min(input - 1);
    (low, high, (src - low as f64) as f32)
}

/// Resamples `crop` of a row-major plane (`stride` values per row) to `size × size` into
/// `out`, bilinearly as torch's `Resize` on a tensor does, mirrored left-right if `mirror`.
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

/// `crop` of an RGB8 image as `[3, size, size]` values in [−1, 1] (ToTensor, bilinear Resize,
/// Normalize(0.5, 0.5): what ISSTAD's stage 2 and test feed the network).
pub fn normalised_chw(image: &Rgb8, crop: Crop, size: usize, mirror: bool) -> Vec<f32> {
    let pixels = image.width * image.height;
    let mut plane = vec![0.0f32; pixels];
    let mut out = vec![0.0f32; 3 * size * size];
    for (channel, target) in out.chunks_mut(size * size).enumerate() {
        for (value, rgb) in plane.iter_mut().zip(image.pixels.chunks(3)) {
            *value = f32::from(rgb[channel]) / 255.0;
        }
        resample_plane(&plane, image.width, crop, size, mirror, target);
        for value in target.iter_mut() {
            *value = (*value - 0.5) / 0.5;
        }
    }
    out
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

    #[test]
    fn normalisation_maps_black_and_white_to_minus_one_and_one() {
        let image = Rgb8 {
            width: 2,
            height: 1,
            pixels: vec![0, 0, 0, 255, 255, 255],
        };
        let chw = normalised_chw(&image, Crop::whole(2, 1), 2, false);
        assert_eq!(&chw[..4], &[-1.0, 1.0, -1.0, 1.0]);
    }
}
