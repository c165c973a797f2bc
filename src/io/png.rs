//! PNG images vigil writes: anomaly maps and ground-truth masks.

use std::path::Path;

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
