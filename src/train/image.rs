//! Images for training: PNG reading ([`crate::io::png`]) and torch's bilinear resize
//! ([`crate::prepare::resize`], shared with the factory-line runtime), re-exported here, and the
//! normalisation ISSTAD-edge is trained with.

pub use crate::io::png::{ImageError, Rgb8, read_png};
pub use crate::prepare::resize::{Crop, resample_plane};

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
    fn normalisation_maps_black_and_white_to_minus_one_and_one() {
        let image = Rgb8 {
            width: 2,
            height: 1,
            pixels: vec![0, 0, 0, 255, 255, 255],
        };
        let chw = normalised_chw(&image, Crop::whole(2, 1), 2, false);
        assert_eq!(&chw[..4], &[-1.0, 1.0, -1.0, 1.0]);
    }

    /// Writes a 3×2 PNG of the given colour type and depth from raw sample bytes (16-bit
    /// samples big-endian, as PNG stores them); `palette` for indexed images.
    fn write_png(
        path: &std::path::Path,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        palette: Option<&[u8]>,
    ) {
        let file = std::fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), 3, 2);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if let Some(palette) = palette {
            encoder.set_palette(palette.to_vec());
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
    }

    /// The 6 grey levels every test image below holds, in row-major order.
    const GREYS: [u8; 6] = [0, 51, 102, 153, 204, 255];

    fn expected_grey() -> Vec<u8> {
        GREYS.iter().flat_map(|&g| [g; 3]).collect()
    }

    fn expected_rgb() -> Vec<u8> {
        GREYS.iter().flat_map(|&g| [g, 255 - g, g / 3]).collect()
    }

    #[test]
    fn every_colour_type_and_depth_reads_as_rgb8() {
        use png::{BitDepth, ColorType};
        let dir = tempfile::tempdir().unwrap();
        let rgb: Vec<u8> = expected_rgb();
        // 16-bit samples of v·257 are exactly v in 8 bits; the low byte must not leak in.
        let wide = |bytes: &[u8]| -> Vec<u8> {
            bytes
                .iter()
                .flat_map(|&v| (u16::from(v) * 257).to_be_bytes())
                .collect()
        };
        let with_alpha = |samples: &[u8], channels: usize| -> Vec<u8> {
            samples
                .chunks(channels)
                .zip([0u8, 40, 80, 120, 200, 255])
                .flat_map(|(pixel, alpha)| pixel.iter().copied().chain([alpha]))
                .collect()
        };
        let grey_alpha = with_alpha(&GREYS, 1);
        let rgba = with_alpha(&rgb, 3);
        let cases = vec![
            (
                "grey8",
                ColorType::Grayscale,
                BitDepth::Eight,
                GREYS.to_vec(),
                expected_grey(),
            ),
            (
                "grey16",
                ColorType::Grayscale,
                BitDepth::Sixteen,
                wide(&GREYS),
                expected_grey(),
            ),
            (
                "grey_alpha8",
                ColorType::GrayscaleAlpha,
                BitDepth::Eight,
                grey_alpha.clone(),
                expected_grey(),
            ),
            (
                "grey_alpha16",
                ColorType::GrayscaleAlpha,
                BitDepth::Sixteen,
                wide(&grey_alpha),
                expected_grey(),
            ),
            (
                "rgb8",
                ColorType::Rgb,
                BitDepth::Eight,
                rgb.clone(),
                expected_rgb(),
            ),
            (
                "rgb16",
                ColorType::Rgb,
                BitDepth::Sixteen,
                wide(&rgb),
                expected_rgb(),
            ),
            (
                "rgba8",
                ColorType::Rgba,
                BitDepth::Eight,
                rgba.clone(),
                expected_rgb(),
            ),
            (
                "rgba16",
                ColorType::Rgba,
                BitDepth::Sixteen,
                wide(&rgba),
                expected_rgb(),
            ),
        ];
        for (name, color, depth, data, expected) in cases {
            let path = dir.path().join(format!("{name}.png"));
            write_png(&path, color, depth, &data, None);
            let image = read_png(&path).unwrap();
            assert_eq!((image.width, image.height), (3, 2), "{name}");
            assert_eq!(image.pixels, expected, "{name}");
        }
    }

    #[test]
    fn sixteen_bit_samples_scale_down_to_their_high_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grey16.png");
        // 0x0000, 0x00FF, 0x7FFF, 0x8000, 0xFF00, 0xFFFF.
        let samples: [u16; 6] = [0, 0x00ff, 0x7fff, 0x8000, 0xff00, 0xffff];
        let data: Vec<u8> = samples.iter().flat_map(|v| v.to_be_bytes()).collect();
        write_png(
            &path,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            &data,
            None,
        );
        let image = read_png(&path).unwrap();
        let firsts: Vec<u8> = image.pixels.iter().step_by(3).copied().collect();
        // v / 257 rounded would give 0, 1, 127, 128, 254, 255: the high byte is within one.
        assert_eq!(firsts, [0, 0, 127, 128, 255, 255]);
    }

    #[test]
    fn low_depth_grey_and_palettes_expand() {
        let dir = tempfile::tempdir().unwrap();
        // 1-bit grey: rows 101 and 010 (each row padded to a byte).
        let path = dir.path().join("grey1.png");
        write_png(
            &path,
            png::ColorType::Grayscale,
            png::BitDepth::One,
            &[0b1010_0000, 0b0100_0000],
            None,
        );
        let firsts: Vec<u8> = read_png(&path)
            .unwrap()
            .pixels
            .into_iter()
            .step_by(3)
            .collect();
        assert_eq!(firsts, [255, 0, 255, 0, 255, 0]);
        // 8-bit palette: indices into three colours.
        let path = dir.path().join("palette.png");
        let palette = [10, 20, 30, 200, 100, 0, 0, 0, 255];
        write_png(
            &path,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            &[0, 1, 2, 2, 1, 0],
            Some(&palette),
        );
        let image = read_png(&path).unwrap();
        assert_eq!(
            image.pixels,
            [
                10, 20, 30, 200, 100, 0, 0, 0, 255, 0, 0, 255, 200, 100, 0, 10, 20, 30
            ]
        );
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.png");
        write_png(
            &good,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &expected_rgb(),
            None,
        );
        let bytes = std::fs::read(&good).unwrap();
        assert!(read_png(&good).is_ok());
        // The IDAT chunk's CRC, the last 4 bytes before IEND's 12.
        let crc_at = bytes.len() - 12 - 4;
        let mut bad_crc = bytes.clone();
        bad_crc[crc_at] ^= 0xff;
        // A byte of the compressed pixel data: the zlib stream no longer checks out.
        let mut bad_data = bytes.clone();
        bad_data[crc_at - 3] ^= 0x5a;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty.png", Vec::new()),
            ("not-a-png.png", b"GIF89a not a png at all".to_vec()),
            ("signature-only.png", bytes[..8].to_vec()),
            ("header-cut.png", bytes[..20].to_vec()),
            ("no-pixels.png", bytes[..33].to_vec()),
            ("half.png", bytes[..bytes.len() / 2].to_vec()),
            ("no-end.png", bytes[..bytes.len() - 12].to_vec()),
            ("bad-crc.png", bad_crc),
            ("bad-data.png", bad_data),
        ];
        for (name, content) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, &content).unwrap();
            match read_png(&path) {
                Err(error) => assert!(error.to_string().contains(name), "{name}: {error}"),
                Ok(image) => panic!("{name} read as a {}x{} image", image.width, image.height),
            }
        }
        let missing = dir.path().join("missing.png");
        let error = read_png(&missing).unwrap_err();
        assert!(matches!(error, ImageError::Io { .. }), "{error}");
        assert!(error.to_string().contains("missing.png"), "{error}");
    }
}
