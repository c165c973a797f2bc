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
}
