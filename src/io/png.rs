//! PNG images vigil reads (photos, textures, MVTec AD images) and writes (anomaly maps,
//! heatmap snapshots, ground-truth masks).

use std::path::{Path, PathBuf};

/// Writes 8-bit RGB pixels (`width·height·3` bytes, row-major) as a PNG.
pub fn write_rgb(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| failed(&e))?;
    writer.write_image_data(rgb).map_err(|e| failed(&e))?;
    writer.finish().map_err(|e| failed(&e))
}

/// Writes 8-bit grey pixels (`width·height` bytes, row-major) as a PNG: ground-truth masks,
/// which MVTec AD stores as single-channel 0/255 images.
pub fn write_grey(path: &Path, width: usize, height: usize, grey: &[u8]) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| failed(&e))?;
    writer.write_image_data(grey).map_err(|e| failed(&e))?;
    writer.finish().map_err(|e| failed(&e))
}

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
