//! Pixel conversions for V4L2 capture: YUYV and MJPEG to packed RGB24, and a bilinear resize
//! to the model's input size.
//!
//! Everything writes into buffers the caller owns, so the capture loop allocates nothing per
//! frame beyond the frame it hands on (and what jpeg-decoder allocates inside `decode`, which
//! its API gives no way to avoid). Every size disagreement is a [`V4l2Error`]: a camera that
//! delivers a short or corrupt buffer must cost one frame, never a panic or a frame read out of
//! bounds.

use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::V4l2Error;
use super::negotiate::PixelFormat;

/// The luma coefficients that turn Y'CbCr back into R'G'B'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YcbcrMatrix {
    /// ITU-R BT.601 (SDTV): Kr = 0.299, Kb = 0.114. What V4L2 assumes for webcams (sRGB and
    /// SMPTE 170M colorspaces) and what JPEG uses.
    #[default]
    Bt601,
    /// ITU-R BT.709 (HDTV): Kr = 0.2126, Kb = 0.0722.
    Bt709,
    /// ITU-R BT.2020, non-constant luminance: Kr = 0.2627, Kb = 0.0593.
    Bt2020,
    /// SMPTE 240M (early HDTV): Kr = 0.212, Kb = 0.087.
    Smpte240m,
}

impl YcbcrMatrix {
    fn kr_kb(self) -> (f64, f64) {
        match self {
            YcbcrMatrix::Bt601 => (0.299, 0.114),
            YcbcrMatrix::Bt709 => (0.2126, 0.0722),
            YcbcrMatrix::Bt2020 => (0.2627, 0.0593),
            YcbcrMatrix::Smpte240m => (0.212, 0.087),
        }
    }
}

/// Which 8-bit code range the Y'CbCr samples use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// Broadcast ("studio", "TV") range: Y' in 16..=235, Cb/Cr in 16..=240. The V4L2 default
    /// for every Y'CbCr format except the JPEG colorspace.
    #[default]
    Limited,
    /// Y', Cb and Cr all use 0..=255 (JPEG/JFIF).
    Full,
}

/// How to interpret Y'CbCr samples: the matrix and the code range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colorimetry {
    pub matrix: YcbcrMatrix,
    pub range: Quantization,
}

/// V4L2 `enum v4l2_colorspace` values that change the Y'CbCr defaults (videodev2.h).
const V4L2_COLORSPACE_SMPTE240M: u32 = 2;
const V4L2_COLORSPACE_REC709: u32 = 3;
const V4L2_COLORSPACE_JPEG: u32 = 7;
const V4L2_COLORSPACE_BT2020: u32 = 10;
const V4L2_COLORSPACE_DCI_P3: u32 = 12;
/// V4L2 `enum v4l2_quantization` values.
const V4L2_QUANTIZATION_FULL_RANGE: u32 = 1;
const V4L2_QUANTIZATION_LIM_RANGE: u32 = 2;

impl Colorimetry {
    /// BT.601, limited range: what a YUYV webcam sends unless its driver says otherwise.
    pub const BT601_LIMITED: Self = Self {
        matrix: YcbcrMatrix::Bt601,
        range: Quantization::Limited,
    };
    /// BT.709, limited range: HD capture devices.
    pub const BT709_LIMITED: Self = Self {
        matrix: YcbcrMatrix::Bt709,
        range: Quantization::Limited,
    };
    /// BT.601, full range: JPEG/JFIF.
    pub const BT601_FULL: Self = Self {
        matrix: YcbcrMatrix::Bt601,
        range: Quantization::Full,
    };

    /// What a driver means by a Y'CbCr format's `colorspace` and `quantization` fields, following
    /// the defaults of videodev2.h (`V4L2_MAP_YCBCR_ENC_DEFAULT`,
    /// `V4L2_MAP_QUANTIZATION_DEFAULT`). The encoding is derived from the colorspace because the
    /// v4l crate does not expose the `ycbcr_enc` field; drivers that set it explicitly to
    /// something other than their colorspace's default are very rare for YUYV.
    pub fn from_v4l2(colorspace: u32, quantization: u32) -> Self {
        let matrix = match colorspace {
            V4L2_COLORSPACE_REC709 | V4L2_COLORSPACE_DCI_P3 => YcbcrMatrix::Bt709,
            V4L2_COLORSPACE_BT2020 => YcbcrMatrix::Bt2020,
            V4L2_COLORSPACE_SMPTE240M => YcbcrMatrix::Smpte240m,
            _ => YcbcrMatrix::Bt601,
        };
        let range = match quantization {
            V4L2_QUANTIZATION_FULL_RANGE => Quantization::Full,
            V4L2_QUANTIZATION_LIM_RANGE => Quantization::Limited,
            // Default: full range only for the JPEG colorspace.
            _ if colorspace == V4L2_COLORSPACE_JPEG => Quantization::Full,
            _ => Quantization::Limited,
        };
        Self { matrix, range }
    }
}

/// Fixed-point fraction bits of the Y'CbCr → RGB coefficients. 16 bits keep the rounding error
/// far below one code value, and the largest intermediate (about 2^25) fits an i32.
const YUV_FRAC_BITS: u32 = 16;

/// Y'CbCr → RGB coefficients for one [`Colorimetry`], in fixed point.
#[derive(Debug, Clone, Copy)]
struct YuvToRgb {
    y_offset: i32,
    y_mul: i32,
    r_from_v: i32,
    g_from_u: i32,
    g_from_v: i32,
    b_from_u: i32,
}

impl YuvToRgb {
    fn new(colorimetry: Colorimetry) -> Self {
        let (kr, kb) = colorimetry.matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        // Limited range stretches 219 luma and 224 chroma steps onto 255.
        let (y_offset, y_scale, c_scale) = match colorimetry.range {
            Quantization::Limited => (16, 255.0 / 219.0, 255.0 / 224.0),
            Quantization::Full => (0, 1.0, 1.0),
        };
        let fixed = |v: f64| (v * f64::from(1u32 << YUV_FRAC_BITS)).round() as i32;
        Self {
            y_offset,
            y_mul: fixed(y_scale),
            r_from_v: fixed(2.0 * (1.0 - kr) * c_scale),
            g_from_u: fixed(2.0 * kb * (1.0 - kb) / kg * c_scale),
            g_from_v: fixed(2.0 * kr * (1.0 - kr) / kg * c_scale),
            b_from_u: fixed(2.0 * (1.0 - kb) * c_scale),
        }
    }

    /// Converts one YUYV macropixel (two pixels sharing U and V) into six RGB bytes.
    #[inline]
    fn macropixel(&self, yuyv: &[u8], rgb: &mut [u8]) {
        let u = i32::from(yuyv[1]) - 128;
        let v = i32::from(yuyv[3]) - 128;
        let r = self.r_from_v * v;
        let g = -self.g_from_u * u - self.g_from_v * v;
        let b = self.b_from_u * u;
        for (y, out) in [yuyv[0], yuyv[2]].into_iter().zip(rgb.chunks_exact_mut(3)) {
            let luma = (i32::from(y) - self.y_offset) * self.y_mul + (1 << (YUV_FRAC_BITS - 1));
            out[0] = clamp_fixed(luma + r);
            out[1] = clamp_fixed(luma + g);
            out[2] = clamp_fixed(luma + b);
        }
    }
}

#[inline]
fn clamp_fixed(v: i32) -> u8 {
    (v >> YUV_FRAC_BITS).clamp(0, 255) as u8
}

/// Bytes of a packed RGB24 frame, or why there is no such frame.
pub fn rgb_len(width: u32, height: u32) -> Result<usize, V4l2Error> {
    if width == 0 || height == 0 {
        return Err(V4l2Error::ZeroSize { width, height });
    }
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or(V4l2Error::TooLarge { width, height })
}

fn check_output(what: &'static str, dst: &[u8], needed: usize) -> Result<(), V4l2Error> {
    if dst.len() == needed {
        Ok(())
    } else {
        Err(V4l2Error::BufferSize {
            what,
            len: dst.len(),
            needed,
        })
    }
}

/// Converts a YUYV (YUY2, packed 4:2:2: Y0 U Y1 V) frame to packed RGB24.
///
/// `stride` is the driver's `bytesperline`, at least `2 * width`; rows may be padded beyond
/// that and the padding is skipped. `src` must hold `stride * height` bytes (V4L2 buffers are
/// page-rounded, so more is fine); `dst` must be exactly `width * height * 3` bytes.
pub fn yuyv_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    colorimetry: Colorimetry,
    dst: &mut [u8],
) -> Result<(), V4l2Error> {
    let needed_out = rgb_len(width, height)?;
    if !width.is_multiple_of(2) {
        return Err(V4l2Error::OddWidth { width });
    }
    let row_bytes = width as usize * 2;
    if stride < row_bytes {
        return Err(V4l2Error::StrideTooSmall {
            stride,
            min: row_bytes,
        });
    }
    let needed_in = stride
        .checked_mul(height as usize)
        .ok_or(V4l2Error::TooLarge { width, height })?;
    if src.len() < needed_in {
        return Err(V4l2Error::BufferTooShort {
            what: "YUYV frame",
            len: src.len(),
            needed: needed_in,
        });
    }
    check_output("RGB output", dst, needed_out)?;

    let coeffs = YuvToRgb::new(colorimetry);
    let rows_in = src[..needed_in].chunks_exact(stride);
    for (row_in, row_out) in rows_in.zip(dst.chunks_exact_mut(width as usize * 3)) {
        for (yuyv, rgb) in row_in[..row_bytes]
            .chunks_exact(4)
            .zip(row_out.chunks_exact_mut(6))
        {
            coeffs.macropixel(yuyv, rgb);
        }
    }
    Ok(())
}

/// Length of the default DHT segment: marker, length, and four tables (class/id byte, 16 code
/// counts, values).
const DHT_LEN: usize = 4 + (1 + 16 + 12) * 2 + (1 + 16 + 162) * 2;

// The "typical" Huffman tables of ITU-T T.81 Annex K.3 (tables K.3 to K.6). UVC cameras (and
// MJPEG in AVI) leave the DHT segment out of every frame and rely on these, as libjpeg,
// FFmpeg, GStreamer's jpegdec and libv4l all do.
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
#[rustfmt::skip]
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// Appends one table (class/id byte, code counts, values) to a DHT segment being built.
const fn put_table(
    mut out: [u8; DHT_LEN],
    mut at: usize,
    id: u8,
    bits: &[u8; 16],
    values: &[u8],
) -> ([u8; DHT_LEN], usize) {
    out[at] = id;
    at += 1;
    let mut i = 0;
    while i < bits.len() {
        out[at] = bits[i];
        at += 1;
        i += 1;
    }
    let mut i = 0;
    while i < values.len() {
        out[at] = values[i];
        at += 1;
        i += 1;
    }
    (out, at)
}

const fn build_default_dht() -> [u8; DHT_LEN] {
    let mut out = [0u8; DHT_LEN];
    out[0] = 0xff;
    out[1] = 0xc4;
    // The length counts itself but not the marker.
    out[2] = ((DHT_LEN - 2) >> 8) as u8;
    out[3] = ((DHT_LEN - 2) & 0xff) as u8;
    let (out, at) = put_table(out, 4, 0x00, &DC_LUMA_BITS, &DC_VALUES);
    let (out, at) = put_table(out, at, 0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES);
    let (out, at) = put_table(out, at, 0x01, &DC_CHROMA_BITS, &DC_VALUES);
    let (out, at) = put_table(out, at, 0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES);
    assert!(at == DHT_LEN);
    out
}

/// The complete DHT segment (marker included) holding the four Annex K.3 tables.
pub const DEFAULT_DHT: [u8; DHT_LEN] = build_default_dht();

/// Finds where a JPEG lacks Huffman tables: the offset of the first SOS marker when no DHT
/// segment precedes it, `None` when the frame brings its own tables.
///
/// Walks the marker segments of the header only; the entropy-coded data is left to the
/// decoder.
pub fn missing_dht_offset(jpeg: &[u8]) -> Result<Option<usize>, V4l2Error> {
    let truncated = || V4l2Error::JpegTruncated { len: jpeg.len() };
    if jpeg.len() < 2 || jpeg[0] != 0xff || jpeg[1] != 0xd8 {
        let start = jpeg
            .iter()
            .take(2)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(V4l2Error::JpegInvalid {
            detail: format!("no SOI marker (starts with [{start}])"),
        });
    }
    let mut seen_dht = false;
    let mut at = 2;
    loop {
        let byte = *jpeg.get(at).ok_or_else(truncated)?;
        if byte != 0xff {
            return Err(V4l2Error::JpegInvalid {
                detail: format!("expected a marker at byte {at}, found {byte:#04x}"),
            });
        }
        // Any number of 0xFF fill bytes may precede a marker code (T.81 B.1.1.2).
        let mut code_at = at + 1;
        while jpeg.get(code_at) == Some(&0xff) {
            code_at += 1;
        }
        let code = *jpeg.get(code_at).ok_or_else(truncated)?;
        match code {
            0xda => return Ok(if seen_dht { None } else { Some(at) }),
            0xc4 => seen_dht = true,
            // TEM and RSTn stand alone, without a length.
            0x01 | 0xd0..=0xd7 => {
                at = code_at + 1;
                continue;
            }
            0x00 | 0xd8 | 0xd9 => {
                return Err(V4l2Error::JpegInvalid {
                    detail: format!("marker ff {code:02x} at byte {at} before any scan"),
                });
            }
            _ => {}
        }
        let len_bytes = jpeg.get(code_at + 1..code_at + 3).ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len < 2 {
            return Err(V4l2Error::JpegInvalid {
                detail: format!("segment ff {code:02x} at byte {at} has length {len}"),
            });
        }
        at = code_at + 1 + len;
    }
}

/// Decodes a JPEG (an MJPEG frame) of exactly `width` x `height` into packed RGB24.
///
/// Inserts the standard Huffman tables when the frame has none (as UVC cameras send it).
/// Greyscale JPEGs are expanded to grey RGB; CMYK and YCCK (Adobe) JPEGs are converted with the
/// naive formula `R = (255 - C)(255 - K) / 255`, there being no ICC profile to do better; 16-bit
/// (lossless) JPEGs are refused. Only `dst` receives the pixels, but jpeg-decoder allocates its
/// own output on each call.
pub fn mjpeg_to_rgb(jpeg: &[u8], width: u32, height: u32, dst: &mut [u8]) -> Result<(), V4l2Error> {
    let needed = rgb_len(width, height)?;
    check_output("RGB output", dst, needed)?;
    match missing_dht_offset(jpeg)? {
        None => decode_jpeg(jpeg, jpeg.len(), width, height, dst),
        // Chained readers splice the tables in without copying the frame.
        Some(at) => {
            let spliced = jpeg[..at].chain(&DEFAULT_DHT[..]).chain(&jpeg[at..]);
            decode_jpeg(spliced, jpeg.len(), width, height, dst)
        }
    }
}

fn jpeg_error(err: jpeg_decoder::Error, len: usize) -> V4l2Error {
    match err {
        jpeg_decoder::Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            V4l2Error::JpegTruncated { len }
        }
        jpeg_decoder::Error::Unsupported(feature) => V4l2Error::JpegUnsupported {
            detail: format!("{feature:?}"),
        },
        other => V4l2Error::JpegInvalid {
            detail: other.to_string(),
        },
    }
}

fn decode_jpeg<R: Read>(
    reader: R,
    len: usize,
    width: u32,
    height: u32,
    dst: &mut [u8],
) -> Result<(), V4l2Error> {
    let mut decoder = jpeg_decoder::Decoder::new(reader);
    // The header is read first so that a corrupt frame claiming a huge size is refused before
    // the decoder allocates for it.
    let decoded = catch_unwind(AssertUnwindSafe(|| -> Result<_, V4l2Error> {
        decoder.read_info().map_err(|e| jpeg_error(e, len))?;
        let info = decoder.info().ok_or_else(|| V4l2Error::JpegInvalid {
            detail: "no frame header".into(),
        })?;
        if (u32::from(info.width), u32::from(info.height)) != (width, height) {
            return Err(V4l2Error::JpegSizeMismatch {
                width: u32::from(info.width),
                height: u32::from(info.height),
                expected_width: width,
                expected_height: height,
            });
        }
        if info.pixel_format == jpeg_decoder::PixelFormat::L16 {
            return Err(V4l2Error::JpegUnsupported {
                detail: "16-bit greyscale (lossless JPEG)".into(),
            });
        }
        let pixels = decoder.decode().map_err(|e| jpeg_error(e, len))?;
        Ok((info.pixel_format, pixels))
    }));
    // jpeg-decoder has asserts on malformed input paths; a garbage frame from a camera must
    // not take the capture thread down with it.
    let (format, pixels) = decoded.map_err(|_| V4l2Error::JpegInvalid {
        detail: "decoder panicked".into(),
    })??;

    let count = dst.len() / 3;
    let bpp = format.pixel_bytes();
    if pixels.len() != count * bpp {
        return Err(V4l2Error::JpegInvalid {
            detail: format!(
                "decoder returned {} bytes for {count} pixels of {bpp} bytes",
                pixels.len()
            ),
        });
    }
    match format {
        jpeg_decoder::PixelFormat::RGB24 => dst.copy_from_slice(&pixels),
        jpeg_decoder::PixelFormat::L8 => {
            for (rgb, &l) in dst.chunks_exact_mut(3).zip(&pixels) {
                rgb.fill(l);
            }
        }
        // jpeg-decoder hands out CMYK as ink amounts (0 = no ink), Adobe inversion undone.
        jpeg_decoder::PixelFormat::CMYK32 => {
            for (rgb, cmyk) in dst.chunks_exact_mut(3).zip(pixels.chunks_exact(4)) {
                let white = 255 - u32::from(cmyk[3]);
                for (out, &ink) in rgb.iter_mut().zip(&cmyk[..3]) {
                    *out = (((255 - u32::from(ink)) * white + 127) / 255) as u8;
                }
            }
        }
        jpeg_decoder::PixelFormat::L16 => {
            return Err(V4l2Error::JpegUnsupported {
                detail: "16-bit greyscale (lossless JPEG)".into(),
            });
        }
    }
    Ok(())
}

/// Fraction bits of the resize weights, as in OpenCV (`INTER_RESIZE_COEF_BITS`). Two passes of
/// 11 bits on 8-bit samples stay below 2^30, so u32 arithmetic cannot overflow.
const WEIGHT_BITS: u32 = 11;
const WEIGHT_ONE: u32 = 1 << WEIGHT_BITS;

/// One output coordinate's two source samples and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    first: usize,
    second: usize,
    weight: u32,
}

/// Bilinear resize of packed RGB24 between two fixed sizes.
///
/// Convention: half-pixel centres with edge clamping, as OpenCV's `INTER_LINEAR`
/// (`cv::resize`), PyTorch's `interpolate(mode="bilinear", align_corners=False,
/// antialias=False)` and TensorFlow's `resize_bilinear(half_pixel_centers=True)`: output pixel
/// `d` samples the source at `(d + 0.5) * src / dst - 0.5`, from the two nearest samples on
/// each axis. It does NOT widen the filter when downscaling, unlike PIL's `BILINEAR`,
/// torchvision's default antialiased resize and GStreamer's videoscale, so shrinking by more
/// than 2x aliases; preprocessing at training time should match. Values may differ from
/// OpenCV's own fixed-point rounding by one code value.
///
/// The sampling tables are computed once, so the per-frame [`Resizer::resize`] does not
/// allocate.
#[derive(Debug, Clone)]
pub struct Resizer {
    src_width: u32,
    src_height: u32,
    dst_width: u32,
    dst_height: u32,
    /// Byte offsets within a source row.
    columns: Vec<Tap>,
    /// Source row indices.
    rows: Vec<Tap>,
}

fn taps(src: u32, dst: u32, scale_index: usize) -> Vec<Tap> {
    let last = src as usize - 1;
    let ratio = f64::from(src) / f64::from(dst);
    (0..dst)
        .map(|d| {
            let pos = ((f64::from(d) + 0.5) * ratio - 0.5).max(0.0);
            let mut first = pos.floor() as usize;
            let mut frac = pos - pos.floor();
            if first >= last {
                first = last;
                frac = 0.0;
            }
            let second = (first + 1).min(last);
            let weight = (frac * f64::from(WEIGHT_ONE)).round() as u32;
            Tap {
                first: first * scale_index,
                second: second * scale_index,
                weight,
            }
        })
        .collect()
}

impl Resizer {
    pub fn new(
        src_width: u32,
        src_height: u32,
        dst_width: u32,
        dst_height: u32,
    ) -> Result<Self, V4l2Error> {
        rgb_len(src_width, src_height)?;
        rgb_len(dst_width, dst_height)?;
        Ok(Self {
            src_width,
            src_height,
            dst_width,
            dst_height,
            columns: taps(src_width, dst_width, 3),
            rows: taps(src_height, dst_height, 1),
        })
    }

    pub fn src_size(&self) -> (u32, u32) {
        (self.src_width, self.src_height)
    }

    pub fn dst_size(&self) -> (u32, u32) {
        (self.dst_width, self.dst_height)
    }

    /// Resizes `src` (exactly `src_width * src_height * 3` bytes) into `dst` (exactly
    /// `dst_width * dst_height * 3` bytes).
    pub fn resize(&self, src: &[u8], dst: &mut [u8]) -> Result<(), V4l2Error> {
        let src_len = rgb_len(self.src_width, self.src_height)?;
        let dst_len = rgb_len(self.dst_width, self.dst_height)?;
        check_output("resize input", src, src_len)?;
        check_output("resize output", dst, dst_len)?;
        if (self.src_width, self.src_height) == (self.dst_width, self.dst_height) {
            dst.copy_from_slice(src);
            return Ok(());
        }
        let src_row = self.src_width as usize * 3;
        let half = 1u32 << (2 * WEIGHT_BITS - 1);
        for (row, out_row) in self
            .rows
            .iter()
            .zip(dst.chunks_exact_mut(self.dst_width as usize * 3))
        {
            let top = &src[row.first * src_row..][..src_row];
            let bottom = &src[row.second * src_row..][..src_row];
            let (w_top, w_bottom) = (WEIGHT_ONE - row.weight, row.weight);
            for (col, out) in self.columns.iter().zip(out_row.chunks_exact_mut(3)) {
                let (w_left, w_right) = (WEIGHT_ONE - col.weight, col.weight);
                for (c, out) in out.iter_mut().enumerate() {
                    let upper = u32::from(top[col.first + c]) * w_left
                        + u32::from(top[col.second + c]) * w_right;
                    let lower = u32::from(bottom[col.first + c]) * w_left
                        + u32::from(bottom[col.second + c]) * w_right;
                    *out = ((upper * w_top + lower * w_bottom + half) >> (2 * WEIGHT_BITS)) as u8;
                }
            }
        }
        Ok(())
    }
}

/// Bilinear resize with a one-off [`Resizer`] (allocates its tables; for tests and tools).
pub fn resize_rgb_bilinear(
    src: &[u8],
    src_width: u32,
    src_height: u32,
    dst: &mut [u8],
    dst_width: u32,
    dst_height: u32,
) -> Result<(), V4l2Error> {
    Resizer::new(src_width, src_height, dst_width, dst_height)?.resize(src, dst)
}

/// Turns the camera's frames into RGB frames of the wanted size: decodes at the camera's size
/// into a scratch buffer kept between frames, then resizes.
#[derive(Debug, Clone)]
pub struct FrameConverter {
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    colorimetry: Colorimetry,
    out_width: u32,
    out_height: u32,
    /// `None` when the camera already delivers the wanted size.
    resizer: Option<Resizer>,
    scratch: Vec<u8>,
}

impl FrameConverter {
    /// `stride` is the driver's `bytesperline` (ignored for MJPEG); `colorimetry` applies to
    /// YUYV only, JPEG always being full-range BT.601.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
        colorimetry: Colorimetry,
        out_width: u32,
        out_height: u32,
    ) -> Result<Self, V4l2Error> {
        let camera_len = rgb_len(width, height)?;
        rgb_len(out_width, out_height)?;
        if format == PixelFormat::Yuyv {
            if !width.is_multiple_of(2) {
                return Err(V4l2Error::OddWidth { width });
            }
            if stride < width as usize * 2 {
                return Err(V4l2Error::StrideTooSmall {
                    stride,
                    min: width as usize * 2,
                });
            }
        }
        let (resizer, scratch) = if (width, height) == (out_width, out_height) {
            (None, Vec::new())
        } else {
            (
                Some(Resizer::new(width, height, out_width, out_height)?),
                vec![0; camera_len],
            )
        };
        Ok(Self {
            format,
            width,
            height,
            stride,
            colorimetry,
            out_width,
            out_height,
            resizer,
            scratch,
        })
    }

    pub fn out_size(&self) -> (u32, u32) {
        (self.out_width, self.out_height)
    }

    /// Bytes of one output frame.
    pub fn out_len(&self) -> usize {
        self.out_width as usize * self.out_height as usize * 3
    }

    /// Converts one captured buffer (`bytesused` bytes of it) into `out`, exactly
    /// [`FrameConverter::out_len`] bytes.
    pub fn convert(&mut self, data: &[u8], out: &mut [u8]) -> Result<(), V4l2Error> {
        check_output("RGB output", out, self.out_len())?;
        let target: &mut [u8] = if self.resizer.is_some() {
            &mut self.scratch
        } else {
            out
        };
        match self.format {
            PixelFormat::Yuyv => yuyv_to_rgb(
                data,
                self.width,
                self.height,
                self.stride,
                self.colorimetry,
                target,
            )?,
            PixelFormat::Mjpeg => mjpeg_to_rgb(data, self.width, self.height, target)?,
        }
        if let Some(resizer) = &self.resizer {
            resizer.resize(&self.scratch, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BT.601 forward transform, limited range, in floating point: the reference the
    /// fixed-point inverse is checked against.
    fn rgb_to_yuv_601_limited(r: f64, g: f64, b: f64) -> (u8, u8, u8) {
        let (kr, kb) = (0.299, 0.114);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let pb = (b - y) / (2.0 * (1.0 - kb));
        let pr = (r - y) / (2.0 * (1.0 - kr));
        let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        (
            q(16.0 + 219.0 / 255.0 * y),
            q(128.0 + 224.0 / 255.0 * pb),
            q(128.0 + 224.0 / 255.0 * pr),
        )
    }

    fn rgb_to_yuv_709_full(r: f64, g: f64, b: f64) -> (u8, u8, u8) {
        let (kr, kb) = (0.2126, 0.0722);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let pb = (b - y) / (2.0 * (1.0 - kb));
        let pr = (r - y) / (2.0 * (1.0 - kr));
        let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        (q(y), q(128.0 + pb), q(128.0 + pr))
    }

    const BARS: [(&str, [u8; 3]); 8] = [
        ("white", [255, 255, 255]),
        ("yellow", [255, 255, 0]),
        ("cyan", [0, 255, 255]),
        ("green", [0, 255, 0]),
        ("magenta", [255, 0, 255]),
        ("red", [255, 0, 0]),
        ("blue", [0, 0, 255]),
        ("black", [0, 0, 0]),
    ];

    fn assert_close(got: &[u8], want: &[u8], tolerance: u8, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                g.abs_diff(*w) <= tolerance,
                "{what}: byte {i}: got {g}, want {w} (±{tolerance})"
            );
        }
    }

    /// A YUYV frame of `width`-pixel-wide bars of the given colours, `stride` bytes per row.
    fn yuyv_bars(
        colours: &[[u8; 3]],
        height: u32,
        stride: usize,
        encode: fn(f64, f64, f64) -> (u8, u8, u8),
    ) -> Vec<u8> {
        let mut frame = vec![0xee; stride * height as usize];
        for row in frame.chunks_exact_mut(stride) {
            for (macropixel, rgb) in row.chunks_exact_mut(4).zip(colours) {
                let (y, u, v) = encode(f64::from(rgb[0]), f64::from(rgb[1]), f64::from(rgb[2]));
                macropixel.copy_from_slice(&[y, u, y, v]);
            }
        }
        frame
    }

    #[test]
    fn yuyv_colour_bars_bt601_limited() {
        let colours: Vec<[u8; 3]> = BARS.iter().map(|(_, c)| *c).collect();
        let width = colours.len() as u32 * 2;
        let src = yuyv_bars(&colours, 2, width as usize * 2, rgb_to_yuv_601_limited);
        let mut rgb = vec![0; rgb_len(width, 2).unwrap()];
        yuyv_to_rgb(
            &src,
            width,
            2,
            width as usize * 2,
            Colorimetry::BT601_LIMITED,
            &mut rgb,
        )
        .unwrap();
        for (i, (name, colour)) in BARS.iter().enumerate() {
            for row in 0..2 {
                let at = (row * width as usize + i * 2) * 3;
                assert_close(&rgb[at..at + 6], &[*colour, *colour].concat(), 2, name);
            }
        }
    }

    #[test]
    fn yuyv_known_limited_range_codes() {
        // Textbook BT.601 values: black is Y=16, white Y=235, mid-grey Y=126, chroma neutral
        // at 128, and pure red is (81, 90, 240).
        let cases: [([u8; 3], [u8; 3]); 5] = [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([126, 128, 128], [128, 128, 128]),
            ([81, 90, 240], [255, 0, 0]),
            ([41, 240, 110], [0, 0, 255]),
        ];
        for ([y, u, v], want) in cases {
            let mut rgb = [0; 6];
            yuyv_to_rgb(&[y, u, y, v], 2, 1, 4, Colorimetry::BT601_LIMITED, &mut rgb).unwrap();
            assert_close(&rgb, &[want, want].concat(), 2, &format!("YUV {y},{u},{v}"));
        }
    }

    /// The inverse transform in floating point, straight from the definitions (Kr, Kb and the
    /// code ranges), clamped to 0..=255.
    fn yuv_to_rgb_reference(y: u8, u: u8, v: u8, colorimetry: Colorimetry) -> [u8; 3] {
        let (kr, kb) = colorimetry.matrix.kr_kb();
        let (y, pb, pr) = match colorimetry.range {
            Quantization::Limited => (
                (f64::from(y) - 16.0) * 255.0 / 219.0,
                (f64::from(u) - 128.0) * 255.0 / 224.0,
                (f64::from(v) - 128.0) * 255.0 / 224.0,
            ),
            Quantization::Full => (f64::from(y), f64::from(u) - 128.0, f64::from(v) - 128.0),
        };
        let r = y + 2.0 * (1.0 - kr) * pr;
        let b = y + 2.0 * (1.0 - kb) * pb;
        let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
        [r, g, b].map(|c| c.round().clamp(0.0, 255.0) as u8)
    }

    #[test]
    fn yuyv_matches_float_reference_over_all_codes() {
        // Every colorimetry over a grid of codes, super-black, super-white and chroma beyond
        // 16..=240 included: those occur in real cameras and must clamp, not wrap.
        let codes: Vec<u8> = (0..=255)
            .step_by(7)
            .chain([1, 16, 235, 240, 254, 255])
            .collect();
        for matrix in [
            YcbcrMatrix::Bt601,
            YcbcrMatrix::Bt709,
            YcbcrMatrix::Bt2020,
            YcbcrMatrix::Smpte240m,
        ] {
            for range in [Quantization::Limited, Quantization::Full] {
                let colorimetry = Colorimetry { matrix, range };
                for &y in &codes {
                    for &u in &codes {
                        for &v in &codes {
                            let mut rgb = [0; 6];
                            yuyv_to_rgb(&[y, u, y, v], 2, 1, 4, colorimetry, &mut rgb).unwrap();
                            let want = yuv_to_rgb_reference(y, u, v, colorimetry);
                            assert_close(
                                &rgb,
                                &[want, want].concat(),
                                1,
                                &format!("{colorimetry:?} {y},{u},{v}"),
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn yuyv_bt709_full_range() {
        let colours: Vec<[u8; 3]> = BARS.iter().map(|(_, c)| *c).collect();
        let width = colours.len() as u32 * 2;
        let src = yuyv_bars(&colours, 1, width as usize * 2, rgb_to_yuv_709_full);
        let colorimetry = Colorimetry {
            matrix: YcbcrMatrix::Bt709,
            range: Quantization::Full,
        };
        let mut rgb = vec![0; rgb_len(width, 1).unwrap()];
        yuyv_to_rgb(&src, width, 1, width as usize * 2, colorimetry, &mut rgb).unwrap();
        let want: Vec<u8> = colours.iter().flat_map(|c| [*c, *c]).flatten().collect();
        assert_close(&rgb, &want, 2, "BT.709 full-range bars");
        // The same bytes read as BT.601 come out visibly different: the parameter matters.
        let mut wrong = vec![0; rgb.len()];
        yuyv_to_rgb(
            &src,
            width,
            1,
            width as usize * 2,
            Colorimetry::BT601_FULL,
            &mut wrong,
        )
        .unwrap();
        assert!(wrong.iter().zip(&want).any(|(a, b)| a.abs_diff(*b) > 10));
    }

    #[test]
    fn yuyv_stride_padding_is_skipped() {
        let colours = [[255, 0, 0], [0, 0, 255]];
        let (width, height, stride) = (4u32, 3u32, 16usize);
        // Padding bytes are 0xee, which would read as a bright colour if used.
        let src = yuyv_bars(&colours, height, stride, rgb_to_yuv_601_limited);
        let mut padded = vec![0; rgb_len(width, height).unwrap()];
        yuyv_to_rgb(
            &src,
            width,
            height,
            stride,
            Colorimetry::BT601_LIMITED,
            &mut padded,
        )
        .unwrap();
        let packed_src = yuyv_bars(&colours, height, 8, rgb_to_yuv_601_limited);
        let mut packed = vec![0; padded.len()];
        yuyv_to_rgb(
            &packed_src,
            width,
            height,
            8,
            Colorimetry::BT601_LIMITED,
            &mut packed,
        )
        .unwrap();
        assert_eq!(padded, packed);
        assert_close(&padded[..6], &[255, 0, 0, 255, 0, 0], 2, "red");
        assert_close(&padded[6..12], &[0, 0, 255, 0, 0, 255], 2, "blue");
    }

    #[test]
    fn yuyv_bad_sizes_are_errors() {
        let cm = Colorimetry::BT601_LIMITED;
        let mut rgb = vec![0; 4 * 2 * 3];
        // One byte short of stride * height.
        let err = yuyv_to_rgb(&[0; 4 * 2 * 2 - 1], 4, 2, 8, cm, &mut rgb).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::BufferTooShort {
                    len: 15,
                    needed: 16,
                    ..
                }
            ),
            "{err}"
        );
        // Padded rows need the padding of the last row too.
        let err = yuyv_to_rgb(&[0; 10 * 2 - 2], 4, 2, 10, cm, &mut rgb).unwrap_err();
        assert!(
            matches!(err, V4l2Error::BufferTooShort { needed: 20, .. }),
            "{err}"
        );
        let mut odd = vec![0; 3 * 2 * 3];
        let err = yuyv_to_rgb(&[0; 64], 3, 2, 6, cm, &mut odd).unwrap_err();
        assert!(matches!(err, V4l2Error::OddWidth { width: 3 }), "{err}");
        let err = yuyv_to_rgb(&[0; 64], 4, 2, 6, cm, &mut rgb).unwrap_err();
        assert!(
            matches!(err, V4l2Error::StrideTooSmall { stride: 6, min: 8 }),
            "{err}"
        );
        let err = yuyv_to_rgb(&[0; 64], 4, 2, 8, cm, &mut rgb[..23]).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::BufferSize {
                    len: 23,
                    needed: 24,
                    ..
                }
            ),
            "{err}"
        );
        let err = yuyv_to_rgb(&[0; 64], 0, 2, 8, cm, &mut rgb).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::ZeroSize {
                    width: 0,
                    height: 2
                }
            ),
            "{err}"
        );
        // Longer input (page-rounded mmap buffers) is fine.
        yuyv_to_rgb(&[128; 4096], 4, 2, 8, cm, &mut rgb).unwrap();
    }

    #[test]
    fn colorimetry_follows_v4l2_defaults() {
        // sRGB (uvcvideo's usual answer), SMPTE 170M and "default": BT.601 limited.
        for colorspace in [0, 1, 8] {
            assert_eq!(
                Colorimetry::from_v4l2(colorspace, 0),
                Colorimetry::BT601_LIMITED
            );
        }
        assert_eq!(Colorimetry::from_v4l2(3, 0), Colorimetry::BT709_LIMITED);
        assert_eq!(Colorimetry::from_v4l2(7, 0), Colorimetry::BT601_FULL);
        assert_eq!(Colorimetry::from_v4l2(8, 1), Colorimetry::BT601_FULL);
        assert_eq!(Colorimetry::from_v4l2(7, 2), Colorimetry::BT601_LIMITED);
        assert_eq!(Colorimetry::from_v4l2(10, 0).matrix, YcbcrMatrix::Bt2020);
    }

    const BARS422: &[u8] = include_bytes!("testdata/bars422.jpg");
    const BARS422_NO_DHT: &[u8] = include_bytes!("testdata/bars422_nodht.jpg");
    const RB444: &[u8] = include_bytes!("testdata/rb444.jpg");
    const GRAY: &[u8] = include_bytes!("testdata/gray.jpg");
    const CMYK: &[u8] = include_bytes!("testdata/cmyk.jpg");

    fn pixel(rgb: &[u8], width: u32, x: u32, y: u32) -> &[u8] {
        let at = ((y * width + x) * 3) as usize;
        &rgb[at..at + 3]
    }

    #[test]
    fn mjpeg_422_colour_bars() {
        let mut rgb = vec![0; rgb_len(32, 16).unwrap()];
        mjpeg_to_rgb(BARS422, 32, 16, &mut rgb).unwrap();
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
        for (bar, colour) in colours.iter().enumerate() {
            // Away from the bar edges, where 4:2:2 chroma and the DCT blur colours together.
            for x in [bar as u32 * 8 + 3, bar as u32 * 8 + 4] {
                for y in [1, 8, 14] {
                    assert_close(
                        pixel(&rgb, 32, x, y),
                        colour,
                        8,
                        &format!("bar {bar} at ({x},{y})"),
                    );
                }
            }
        }
    }

    #[test]
    fn mjpeg_444_blocks() {
        let mut rgb = vec![0; rgb_len(16, 8).unwrap()];
        mjpeg_to_rgb(RB444, 16, 8, &mut rgb).unwrap();
        for y in 0..8 {
            for x in 0..8 {
                assert_close(pixel(&rgb, 16, x, y), &[255, 0, 0], 6, "red block");
                assert_close(pixel(&rgb, 16, x + 8, y), &[0, 0, 255], 6, "blue block");
            }
        }
    }

    #[test]
    fn mjpeg_without_dht_gets_default_tables() {
        assert_eq!(missing_dht_offset(BARS422).unwrap(), None);
        let at = missing_dht_offset(BARS422_NO_DHT)
            .unwrap()
            .expect("fixture has no DHT");
        assert_eq!(&BARS422_NO_DHT[at..at + 2], &[0xff, 0xda]);
        // Proof that the fixture needs the fix: jpeg-decoder alone refuses it.
        assert!(jpeg_decoder::Decoder::new(BARS422_NO_DHT).decode().is_err());

        let mut with_tables = vec![0; rgb_len(32, 16).unwrap()];
        let mut without = vec![0; with_tables.len()];
        mjpeg_to_rgb(BARS422, 32, 16, &mut with_tables).unwrap();
        mjpeg_to_rgb(BARS422_NO_DHT, 32, 16, &mut without).unwrap();
        assert_eq!(with_tables, without);
    }

    #[test]
    fn default_dht_matches_libjpeg_standard_tables() {
        // Pillow wrote bars422.jpg with libjpeg's standard tables, one table per DHT segment.
        // Their payloads in order (DC0, AC0, DC1, AC1) must equal ours.
        let mut payload = Vec::new();
        let mut at = 2;
        while BARS422[at + 1] != 0xda {
            let len = usize::from(u16::from_be_bytes([BARS422[at + 2], BARS422[at + 3]]));
            if BARS422[at + 1] == 0xc4 {
                payload.extend_from_slice(&BARS422[at + 4..at + 2 + len]);
            }
            at += 2 + len;
        }
        assert_eq!(payload, &DEFAULT_DHT[4..]);
        for (bits, values) in [
            (&DC_LUMA_BITS, &DC_VALUES[..]),
            (&DC_CHROMA_BITS, &DC_VALUES[..]),
            (&AC_LUMA_BITS, &AC_LUMA_VALUES[..]),
            (&AC_CHROMA_BITS, &AC_CHROMA_VALUES[..]),
        ] {
            assert_eq!(
                bits.iter().map(|&b| usize::from(b)).sum::<usize>(),
                values.len()
            );
        }
    }

    #[test]
    fn mjpeg_greyscale_expands_to_grey_rgb() {
        let mut rgb = vec![0; rgb_len(16, 8).unwrap()];
        mjpeg_to_rgb(GRAY, 16, 8, &mut rgb).unwrap();
        for y in 0..8 {
            for x in 0..8 {
                assert_close(pixel(&rgb, 16, x, y), &[64, 64, 64], 3, "dark half");
                assert_close(pixel(&rgb, 16, x + 8, y), &[192, 192, 192], 3, "light half");
            }
        }
    }

    #[test]
    fn mjpeg_cmyk_converts_to_rgb() {
        let mut rgb = vec![0; rgb_len(16, 8).unwrap()];
        mjpeg_to_rgb(CMYK, 16, 8, &mut rgb).unwrap();
        for y in 0..8 {
            for x in 0..8 {
                // C=0 M=255 Y=255 K=0 is red; K=128 alone is grey 127.
                assert_close(pixel(&rgb, 16, x, y), &[255, 0, 0], 4, "red ink");
                assert_close(pixel(&rgb, 16, x + 8, y), &[127, 127, 127], 4, "half black");
            }
        }
    }

    #[test]
    fn mjpeg_bad_inputs_are_errors() {
        let mut rgb = vec![0; rgb_len(32, 16).unwrap()];
        // Cut inside the entropy-coded data, and inside the header.
        for cut in [BARS422.len() - 40, BARS422.len() / 2, 100, 3] {
            let err = mjpeg_to_rgb(&BARS422[..cut], 32, 16, &mut rgb).unwrap_err();
            assert!(
                matches!(err, V4l2Error::JpegTruncated { len } if len == cut),
                "cut at {cut}: {err}"
            );
        }
        let err = mjpeg_to_rgb(
            &BARS422_NO_DHT[..BARS422_NO_DHT.len() - 30],
            32,
            16,
            &mut rgb,
        )
        .unwrap_err();
        assert!(matches!(err, V4l2Error::JpegTruncated { .. }), "{err}");

        let garbage: Vec<u8> = (0..500u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let err = mjpeg_to_rgb(&garbage, 32, 16, &mut rgb).unwrap_err();
        assert!(matches!(err, V4l2Error::JpegInvalid { .. }), "{err}");
        let err = mjpeg_to_rgb(&[], 32, 16, &mut rgb).unwrap_err();
        assert!(matches!(err, V4l2Error::JpegInvalid { .. }), "{err}");

        // A valid header followed by garbage instead of a segment.
        let mut corrupt = BARS422[..20].to_vec();
        corrupt.extend_from_slice(&[0x12; 64]);
        let err = mjpeg_to_rgb(&corrupt, 32, 16, &mut rgb).unwrap_err();
        assert!(matches!(err, V4l2Error::JpegInvalid { .. }), "{err}");

        // Entropy-coded data overwritten with noise: an error, never a panic.
        let mut noisy = BARS422.to_vec();
        let sos = noisy.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        for (i, b) in noisy[sos + 20..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) | 0x01;
        }
        assert!(mjpeg_to_rgb(&noisy, 32, 16, &mut rgb).is_err());

        let err = mjpeg_to_rgb(BARS422, 16, 8, &mut vec![0; 16 * 8 * 3]).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::JpegSizeMismatch {
                    width: 32,
                    height: 16,
                    expected_width: 16,
                    expected_height: 8
                }
            ),
            "{err}"
        );
        let err = mjpeg_to_rgb(BARS422, 32, 16, &mut rgb[1..]).unwrap_err();
        assert!(matches!(err, V4l2Error::BufferSize { .. }), "{err}");
    }

    /// Floating-point reference for the half-pixel-centre bilinear resize.
    fn reference_resize(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Vec<u8> {
        let sample = |x: usize, y: usize, c: usize| f64::from(src[(y * sw as usize + x) * 3 + c]);
        let coord = |d: u32, s: u32, n: u32| {
            let pos = ((f64::from(d) + 0.5) * f64::from(s) / f64::from(n) - 0.5)
                .clamp(0.0, f64::from(s - 1));
            let first = pos.floor() as usize;
            (first, (first + 1).min(s as usize - 1), pos - pos.floor())
        };
        let mut out = Vec::new();
        for dy in 0..dh {
            let (y0, y1, fy) = coord(dy, sh, dh);
            for dx in 0..dw {
                let (x0, x1, fx) = coord(dx, sw, dw);
                for c in 0..3 {
                    let top = sample(x0, y0, c) * (1.0 - fx) + sample(x1, y0, c) * fx;
                    let bottom = sample(x0, y1, c) * (1.0 - fx) + sample(x1, y1, c) * fx;
                    out.push((top * (1.0 - fy) + bottom * fy).round() as u8);
                }
            }
        }
        out
    }

    fn test_image(width: u32, height: u32) -> Vec<u8> {
        (0..width * height * 3)
            .map(|i| (i.wrapping_mul(7919) ^ (i / 3).wrapping_mul(31)) as u8)
            .collect()
    }

    #[test]
    fn resize_matches_half_pixel_reference() {
        for (sw, sh, dw, dh) in [
            (8, 6, 4, 3),
            (4, 4, 9, 7),
            (640, 480, 224, 224),
            (5, 3, 3, 5),
            (7, 1, 3, 1),
        ] {
            let src = test_image(sw, sh);
            let mut dst = vec![0; rgb_len(dw, dh).unwrap()];
            resize_rgb_bilinear(&src, sw, sh, &mut dst, dw, dh).unwrap();
            assert_close(
                &dst,
                &reference_resize(&src, sw, sh, dw, dh),
                1,
                &format!("{sw}x{sh} -> {dw}x{dh}"),
            );
        }
    }

    #[test]
    fn resize_halving_averages_pixel_pairs() {
        // Half-pixel centres: a 2x downscale samples exactly between two source pixels, so each
        // output is the mean of a 2x2 block (corner-aligned sampling would not give this).
        let src: Vec<u8> = [10u8, 30, 50, 70].iter().flat_map(|&v| [v, v, v]).collect();
        let mut dst = vec![0; 6];
        resize_rgb_bilinear(&src, 4, 1, &mut dst, 2, 1).unwrap();
        assert_eq!(dst, [20, 20, 20, 60, 60, 60]);
        // Upscaling 2 -> 4 puts samples at -0.25, 0.25, 0.75, 1.25: edges clamp, inner blend.
        let src = [0u8, 0, 0, 200, 200, 200];
        let mut dst = vec![0; 12];
        resize_rgb_bilinear(&src, 2, 1, &mut dst, 4, 1).unwrap();
        assert_eq!(dst, [0, 0, 0, 50, 50, 50, 150, 150, 150, 200, 200, 200]);
    }

    #[test]
    fn resize_identity_and_bad_sizes() {
        let src = test_image(6, 4);
        let mut dst = vec![0; src.len()];
        resize_rgb_bilinear(&src, 6, 4, &mut dst, 6, 4).unwrap();
        assert_eq!(src, dst);
        let resizer = Resizer::new(6, 4, 3, 2).unwrap();
        let err = resizer.resize(&src[1..], &mut [0; 18]).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::BufferSize {
                    what: "resize input",
                    ..
                }
            ),
            "{err}"
        );
        let err = resizer.resize(&src, &mut [0; 19]).unwrap_err();
        assert!(
            matches!(
                err,
                V4l2Error::BufferSize {
                    what: "resize output",
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            Resizer::new(0, 4, 3, 2),
            Err(V4l2Error::ZeroSize { .. })
        ));
        assert!(matches!(
            Resizer::new(6, 4, 3, 0),
            Err(V4l2Error::ZeroSize { .. })
        ));
    }

    #[test]
    fn frame_converter_decodes_then_resizes() {
        // A 4x2 YUYV frame of red then blue, padded rows, resized to 2x1.
        let src = yuyv_bars(&[[255, 0, 0], [0, 0, 255]], 2, 12, rgb_to_yuv_601_limited);
        let mut conv = FrameConverter::new(
            PixelFormat::Yuyv,
            4,
            2,
            12,
            Colorimetry::BT601_LIMITED,
            2,
            1,
        )
        .unwrap();
        assert_eq!(conv.out_len(), 6);
        let mut out = vec![0; conv.out_len()];
        conv.convert(&src, &mut out).unwrap();
        assert_close(&out, &[255, 0, 0, 0, 0, 255], 2, "resized bars");

        // Same size: no resize step.
        let mut conv = FrameConverter::new(
            PixelFormat::Mjpeg,
            32,
            16,
            0,
            Colorimetry::BT601_FULL,
            32,
            16,
        )
        .unwrap();
        let mut out = vec![0; conv.out_len()];
        conv.convert(BARS422_NO_DHT, &mut out).unwrap();
        let mut direct = vec![0; out.len()];
        mjpeg_to_rgb(BARS422, 32, 16, &mut direct).unwrap();
        assert_eq!(out, direct);

        let mut conv =
            FrameConverter::new(PixelFormat::Mjpeg, 32, 16, 0, Colorimetry::BT601_FULL, 8, 4)
                .unwrap();
        let mut small = vec![0; conv.out_len()];
        conv.convert(BARS422, &mut small).unwrap();
        assert!(matches!(
            conv.convert(&BARS422[..200], &mut small),
            Err(V4l2Error::JpegTruncated { .. })
        ));

        assert!(matches!(
            FrameConverter::new(
                PixelFormat::Yuyv,
                5,
                2,
                10,
                Colorimetry::BT601_LIMITED,
                2,
                2
            ),
            Err(V4l2Error::OddWidth { width: 5 })
        ));
        assert!(matches!(
            FrameConverter::new(PixelFormat::Yuyv, 4, 2, 7, Colorimetry::BT601_LIMITED, 2, 2),
            Err(V4l2Error::StrideTooSmall { stride: 7, min: 8 })
        ));
    }
}
