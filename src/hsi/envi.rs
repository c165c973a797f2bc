//! ENVI raster files: a text header `x.hdr` beside a headerless binary data file.
//!
//! Every real ENVI data type is read (1 u8, 2 i16, 3 i32, 4 f32, 5 f64, 12 u16, 13 u32, 14 i64,
//! 15 u64), in either byte order and any interleave (BSQ and BIL are transposed to BIP once);
//! values become `f32`, as a [`Cube`] holds them. The complex types 6 and 9 are refused by name:
//! a radiance cube is real, and silently dropping the imaginary part would hide a wrong file.
//!
//! The header is checked strictly, since a header that does not describe its data file reads
//! as plausible-looking garbage: the data file must be exactly `header offset` plus
//! `samples × lines × bands × bytes per value` bytes long.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{Cube, HsiError, MapInfo};

/// Extensions ENVI and the tools around it give data files, tried after the bare name.
const DATA_EXTENSIONS: [&str; 6] = ["img", "dat", "raw", "bsq", "bil", "bip"];

/// A header is a few kilobytes; anything this large is a data file given by mistake.
const MAX_HEADER_BYTES: u64 = 16 << 20;

const VALID_DATA_TYPES: &str = "1 (u8), 2 (i16), 3 (i32), 4 (f32), 5 (f64), 6 (complex f32), \
                                9 (complex f64), 12 (u16), 13 (u32), 14 (i64), 15 (u64)";

/// ENVI's `data type` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    U8,
    I16,
    I32,
    F32,
    F64,
    Complex32,
    Complex64,
    U16,
    U32,
    I64,
    U64,
}

impl DataType {
    /// The type for ENVI's code, `None` for codes ENVI does not define for raster data.
    pub fn from_code(code: u32) -> Option<DataType> {
        Some(match code {
            1 => DataType::U8,
            2 => DataType::I16,
            3 => DataType::I32,
            4 => DataType::F32,
            5 => DataType::F64,
            6 => DataType::Complex32,
            9 => DataType::Complex64,
            12 => DataType::U16,
            13 => DataType::U32,
            14 => DataType::I64,
            15 => DataType::U64,
            _ => return None,
        })
    }

    pub fn code(self) -> u32 {
        match self {
            DataType::U8 => 1,
            DataType::I16 => 2,
            DataType::I32 => 3,
            DataType::F32 => 4,
            DataType::F64 => 5,
            DataType::Complex32 => 6,
            DataType::Complex64 => 9,
            DataType::U16 => 12,
            DataType::U32 => 13,
            DataType::I64 => 14,
            DataType::U64 => 15,
        }
    }

    /// Bytes one value takes in the data file (a complex value is two floats).
    pub fn size(self) -> usize {
        match self {
            DataType::U8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::F64 | DataType::I64 | DataType::U64 | DataType::Complex32 => 8,
            DataType::Complex64 => 16,
        }
    }

    pub fn is_complex(self) -> bool {
        matches!(self, DataType::Complex32 | DataType::Complex64)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DataType::U8 => "u8",
            DataType::I16 => "i16",
            DataType::I32 => "i32",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::Complex32 => "complex f32",
            DataType::Complex64 => "complex f64",
            DataType::U16 => "u16",
            DataType::U32 => "u32",
            DataType::I64 => "i64",
            DataType::U64 => "u64",
        };
        write!(f, "{} ({name})", self.code())
    }
}

/// How the three axes are ordered in the data file, slowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interleave {
    /// Band, line, sample.
    Bsq,
    /// Line, band, sample.
    Bil,
    /// Line, sample, band: a [`Cube`]'s own layout.
    Bip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// ENVI `byte order = 0`.
    Little,
    /// ENVI `byte order = 1`.
    Big,
}

/// What an ENVI header says, with the fields a reader needs parsed and every field kept raw.
#[derive(Debug, Clone, PartialEq)]
pub struct EnviHeader {
    /// Columns.
    pub samples: usize,
    /// Rows.
    pub lines: usize,
    pub bands: usize,
    /// Bytes to skip at the start of the data file (0 when the header does not say).
    pub header_offset: usize,
    pub data_type: DataType,
    /// BSQ when the header does not say, as ENVI assumes.
    pub interleave: Interleave,
    /// Little-endian when the header does not say (single-byte files often leave it out).
    pub byte_order: ByteOrder,
    /// One centre per band (per sample in a spectral library); a count that differs is refused.
    pub wavelength: Option<Vec<f64>>,
    pub wavelength_units: Option<String>,
    pub band_names: Option<Vec<String>>,
    /// The value that marks pixels without data.
    pub data_ignore_value: Option<f64>,
    pub map_info: Option<MapInfo>,
    pub description: Option<String>,
    /// Every `key = value` in file order, keys lower-cased with single spaces, braces removed.
    pub fields: Vec<(String, String)>,
}

impl EnviHeader {
    /// The raw value of `key` (lower case, single spaces), the last one when it repeats.
    /// `file type = ENVI Spectral Library`: one spectrum per line, wavelengths along samples.
    pub fn is_spectral_library(&self) -> bool {
        self.field("file type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("spectral library"))
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Bytes of pixel data the header describes (without `header offset`); `None` on overflow.
    pub fn data_bytes(&self) -> Option<usize> {
        self.samples
            .checked_mul(self.lines)?
            .checked_mul(self.bands)?
            .checked_mul(self.data_type.size())
    }
}

/// Reads the cube that `path` names: an ENVI header (`x.hdr`, `x.img.hdr`) or the data file
/// beside one (`x`, `x.img`, `x.dat`, `x.raw`, `x.bsq`, `x.bil`, `x.bip`).
pub fn read(path: &Path) -> Result<Cube, HsiError> {
    let (header_path, data_path) = if is_header(path) {
        (path.to_path_buf(), find_data(path)?)
    } else {
        (find_header(path)?, path.to_path_buf())
    };
    let header = read_header_file(&header_path)?;
    let format_error = |detail: String| HsiError::Format {
        path: data_path.clone(),
        detail,
    };
    if header.data_type.is_complex() {
        return Err(HsiError::Format {
            path: header_path.clone(),
            detail: format!(
                "data type {} is complex; a radiance cube is real, so convert the file to a \
                 real type (e.g. the magnitude) first",
                header.data_type
            ),
        });
    }
    let needed = header
        .data_bytes()
        .and_then(|n| n.checked_add(header.header_offset))
        .ok_or_else(|| format_error("the header describes more bytes than memory holds".into()))?;
    let actual = std::fs::metadata(&data_path)
        .map_err(|source| io_error(&data_path, source))?
        .len();
    check_size(&header, needed, actual).map_err(format_error)?;

    let bytes = std::fs::read(&data_path).map_err(|source| io_error(&data_path, source))?;
    // The file may have changed between the size check and the read.
    let raw = bytes
        .get(header.header_offset..needed)
        .filter(|_| bytes.len() == needed)
        .ok_or_else(|| {
            format_error(format!(
                "changed size while being read ({needed} bytes expected)"
            ))
        })?;
    let mut cube = Cube::from_bip(
        header.lines,
        header.samples,
        header.bands,
        to_bip(&header, raw),
    )
    .map_err(|e| e.in_file(&data_path))?;
    cube.map_info = header.map_info.clone();
    if !header.is_spectral_library() {
        cube.wavelengths = header.wavelength;
    }
    Ok(cube)
}

/// Reads the header that `path` names, or the one beside the data file `path`.
pub fn read_header(path: &Path) -> Result<EnviHeader, HsiError> {
    if is_header(path) {
        read_header_file(path)
    } else {
        read_header_file(&find_header(path)?)
    }
}

fn read_header_file(path: &Path) -> Result<EnviHeader, HsiError> {
    let format_error = |detail: String| HsiError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let metadata = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    if metadata.len() > MAX_HEADER_BYTES {
        return Err(format_error(format!(
            "is {} bytes long, too large for an ENVI header (is it the data file?)",
            metadata.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    parse_header(&String::from_utf8_lossy(&bytes)).map_err(format_error)
}

fn io_error(path: &Path, source: std::io::Error) -> HsiError {
    HsiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_size(header: &EnviHeader, needed: usize, actual: u64) -> Result<(), String> {
    let needed_u64 = needed as u64;
    if actual == needed_u64 {
        return Ok(());
    }
    let (difference, verdict) = if actual < needed_u64 {
        (needed_u64 - actual, "short")
    } else {
        (actual - needed_u64, "too many")
    };
    Err(format!(
        "holds {actual} bytes but the header describes {needed}: header offset {} + {} lines × \
         {} samples × {} bands × {} bytes of data type {}; {difference} bytes {verdict}, so the \
         header does not describe this file",
        header.header_offset,
        header.lines,
        header.samples,
        header.bands,
        header.data_type.size(),
        header.data_type,
    ))
}

fn is_header(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("hdr"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn first_existing(candidates: Vec<PathBuf>, what: &str, path: &Path) -> Result<PathBuf, HsiError> {
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(HsiError::Format {
        path: path.to_path_buf(),
        detail: format!("no {what} found; tried {}", tried.join(", ")),
    })
}

/// `x.hdr` → `x`, `x.img`, …; `x.img.hdr` → `x.img` first.
fn find_data(header: &Path) -> Result<PathBuf, HsiError> {
    if !header.is_file() {
        return Err(HsiError::Format {
            path: header.to_path_buf(),
            detail: "the ENVI header does not exist".into(),
        });
    }
    let stem = header.with_extension("");
    let mut candidates = vec![stem.clone()];
    for ext in DATA_EXTENSIONS {
        candidates.push(with_suffix(&stem, &format!(".{ext}")));
        candidates.push(with_suffix(
            &stem,
            &format!(".{}", ext.to_ascii_uppercase()),
        ));
    }
    first_existing(candidates, "ENVI data file beside the header", header)
}

/// `x.img` → `x.img.hdr`, then `x.hdr`.
fn find_header(data: &Path) -> Result<PathBuf, HsiError> {
    if !data.is_file() {
        return Err(HsiError::Format {
            path: data.to_path_buf(),
            detail: "the ENVI data file does not exist".into(),
        });
    }
    let mut candidates = vec![with_suffix(data, ".hdr"), with_suffix(data, ".HDR")];
    if data.extension().is_some() {
        candidates.push(data.with_extension("hdr"));
        candidates.push(data.with_extension("HDR"));
    }
    first_existing(candidates, "ENVI header (.hdr) beside the data file", data)
}

/// Parses header text; errors name the line or key at fault.
fn parse_header(text: &str) -> Result<EnviHeader, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim() == "ENVI" => {}
        first => {
            let start: String = first.map_or("", |(_, l)| l).chars().take(40).collect();
            return Err(format!(
                "is not an ENVI header: the first line must be `ENVI`, it is {start:?}"
            ));
        }
    }

    let mut fields = Vec::new();
    while let Some((index, line)) = lines.next() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {number} ({line:?}) is not `key = value`"));
        };
        let key = key
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if key.is_empty() {
            return Err(format!("line {number} ({line:?}) has no key before `=`"));
        }
        let value = value.trim();
        let value = match value.strip_prefix('{') {
            Some(first_part) => {
                // A braced value runs until the first `}`, possibly many lines on.
                let mut collected = first_part.to_string();
                let close = loop {
                    if let Some(close) = collected.find('}') {
                        break close;
                    }
                    let Some((_, more)) = lines.next() else {
                        return Err(format!(
                            "unbalanced braces: the `{{` of `{key}` on line {number} is never \
                             closed with `}}`"
                        ));
                    };
                    collected.push('\n');
                    collected.push_str(more);
                };
                let (inside, after) = collected.split_at(close);
                if inside.contains('{') {
                    return Err(format!(
                        "unbalanced braces: `{key}` (line {number}) opens a second `{{` before \
                         its `}}`"
                    ));
                }
                if after.get(1..).is_some_and(|rest| !rest.trim().is_empty()) {
                    return Err(format!(
                        "`{key}` (line {number}) has text after its closing `}}`"
                    ));
                }
                inside.trim().to_string()
            }
            None if value.contains('}') => {
                return Err(format!(
                    "unbalanced braces: `{key}` on line {number} has a `}}` without a `{{`"
                ));
            }
            None => value.to_string(),
        };
        fields.push((key, value));
    }
    interpret(fields)
}

fn interpret(fields: Vec<(String, String)>) -> Result<EnviHeader, String> {
    let get = |key: &str| {
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let required = |key: &str| get(key).ok_or_else(|| format!("the header has no `{key}`"));
    let dimension = |key: &str| -> Result<usize, String> {
        let n = parse_whole(key, required(key)?)?;
        if n == 0 {
            return Err(format!("`{key} = 0`: the image is empty"));
        }
        Ok(n)
    };
    let samples = dimension("samples")?;
    let lines = dimension("lines")?;
    let bands = dimension("bands")?;
    let header_offset = get("header offset").map_or(Ok(0), |v| parse_whole("header offset", v))?;

    let code = required("data type")?;
    let data_type = code
        .parse::<u32>()
        .ok()
        .and_then(DataType::from_code)
        .ok_or_else(|| {
            format!("unknown data type `{code}`; ENVI's data types are {VALID_DATA_TYPES}")
        })?;

    let interleave = match get("interleave").map(str::to_ascii_lowercase).as_deref() {
        None | Some("bsq") => Interleave::Bsq,
        Some("bil") => Interleave::Bil,
        Some("bip") => Interleave::Bip,
        Some(other) => {
            return Err(format!(
                "unknown interleave `{other}`; ENVI's are bsq, bil and bip"
            ));
        }
    };
    let byte_order = match get("byte order") {
        None | Some("0") => ByteOrder::Little,
        Some("1") => ByteOrder::Big,
        Some(other) => {
            return Err(format!(
                "unknown byte order `{other}`; ENVI's are 0 (little-endian) and 1 (big-endian)"
            ));
        }
    };

    let wavelength = get("wavelength")
        .map(|v| parse_numbers("wavelength", v))
        .transpose()?;
    // A spectral library stores one spectrum per line, so its wavelengths run along samples.
    let library =
        get("file type").is_some_and(|t| t.to_ascii_lowercase().contains("spectral library"));
    let (axis, axis_len) = if library {
        ("samples", samples)
    } else {
        ("bands", bands)
    };
    if let Some(w) = &wavelength
        && w.len() != axis_len
    {
        return Err(format!(
            "the header lists {} wavelengths for {axis_len} {axis}",
            w.len()
        ));
    }
    let data_ignore_value = get("data ignore value")
        .map(|v| parse_number("data ignore value", v))
        .transpose()?;
    let map_info = get("map info").map(parse_map_info).transpose()?;
    let band_names = get("band names").map(|v| split_list(v).map(str::to_string).collect());

    Ok(EnviHeader {
        samples,
        lines,
        bands,
        header_offset,
        data_type,
        interleave,
        byte_order,
        wavelength,
        wavelength_units: get("wavelength units").map(str::to_string),
        band_names,
        data_ignore_value,
        map_info,
        description: get("description").map(str::to_string),
        fields,
    })
}

fn parse_whole(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("`{key} = {value}` is not a whole number"))
}

fn parse_number(key: &str, value: &str) -> Result<f64, String> {
    value
        .parse()
        .map_err(|_| format!("`{key} = {value}` is not a number"))
}

pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim)
}

fn parse_numbers(key: &str, value: &str) -> Result<Vec<f64>, String> {
    split_list(value)
        .enumerate()
        .map(|(i, item)| {
            item.parse()
                .map_err(|_| format!("item {} of `{key}`, {item:?}, is not a number", i + 1))
        })
        .collect()
}

/// `{projection, ref x, ref y, easting, northing, pixel x, pixel y, zone, …}`.
fn parse_map_info(value: &str) -> Result<MapInfo, String> {
    let items: Vec<&str> = split_list(value).collect();
    let [projection, numbers @ ..] = items.as_slice() else {
        return Err("`map info` is empty".into());
    };
    let Some((numbers, rest)) = numbers.split_first_chunk::<6>() else {
        return Err(format!(
            "`map info` has {} items; it needs at least 7 (projection, reference pixel x and \
             y, easting, northing, pixel size x and y)",
            items.len()
        ));
    };
    let mut parsed = [0.0; 6];
    for (i, (slot, item)) in parsed.iter_mut().zip(numbers).enumerate() {
        *slot = item
            .parse()
            .map_err(|_| format!("item {} of `map info`, {item:?}, is not a number", i + 2))?;
    }
    let [x, y, easting, northing, size_x, size_y] = parsed;
    Ok(MapInfo {
        projection: projection.to_string(),
        reference_pixel: (x, y),
        reference_easting_northing: (easting, northing),
        pixel_size: (size_x, size_y),
        rest: rest.iter().map(|s| s.to_string()).collect(),
    })
}

/// The data file's values as BIP `f32`; `raw` is exactly the pixel data (length checked).
fn to_bip(header: &EnviHeader, raw: &[u8]) -> Vec<f32> {
    decode_to_bip(
        header.data_type,
        header.byte_order,
        header.interleave,
        (header.lines, header.samples, header.bands),
        raw,
    )
}

/// Decodes `raw` — `lines × samples × bands` values of `data_type` in `byte_order`, stored in
/// `interleave` order — into BIP `f32`. Shared by ENVI files and raw push-broom lines (one
/// line at a time). `raw` must hold exactly that many values; complex types give zeros (they
/// are refused before anything is read).
pub(crate) fn decode_to_bip(
    data_type: DataType,
    byte_order: ByteOrder,
    interleave: Interleave,
    shape: (usize, usize, usize),
    raw: &[u8],
) -> Vec<f32> {
    let (lines, samples, bands) = shape;
    let mut out = vec![0.0f32; lines * samples * bands];
    macro_rules! convert {
        ($ty:ty) => {
            match byte_order {
                ByteOrder::Little => scatter(raw, &mut out, shape, interleave, |b| {
                    <$ty>::from_le_bytes(b) as f32
                }),
                ByteOrder::Big => scatter(raw, &mut out, shape, interleave, |b| {
                    <$ty>::from_be_bytes(b) as f32
                }),
            }
        };
    }
    match data_type {
        DataType::U8 => scatter(raw, &mut out, shape, interleave, |[b]: [u8; 1]| {
            f32::from(b)
        }),
        DataType::I16 => convert!(i16),
        DataType::U16 => convert!(u16),
        DataType::I32 => convert!(i32),
        DataType::U32 => convert!(u32),
        DataType::I64 => convert!(i64),
        DataType::U64 => convert!(u64),
        DataType::F64 => convert!(f64),
        DataType::F32 => match byte_order {
            ByteOrder::Little => scatter(raw, &mut out, shape, interleave, f32::from_le_bytes),
            ByteOrder::Big => scatter(raw, &mut out, shape, interleave, f32::from_be_bytes),
        },
        // Refused before the data is read.
        DataType::Complex32 | DataType::Complex64 => {}
    }
    out
}

/// Decodes `raw`, stored in `interleave` order, into `out` in BIP order.
fn scatter<const N: usize>(
    raw: &[u8],
    out: &mut [f32],
    (lines, samples, bands): (usize, usize, usize),
    interleave: Interleave,
    decode: impl Fn([u8; N]) -> f32,
) {
    let (values, _) = raw.as_chunks::<N>();
    if lines == 0 || samples == 0 || bands == 0 {
        return;
    }
    match interleave {
        Interleave::Bip => {
            for (dst, v) in out.iter_mut().zip(values) {
                *dst = decode(*v);
            }
        }
        // Spectrum by spectrum, so the output is written in order while the reads advance
        // through one stream per band whose cache lines neighbouring pixels share. (Band by
        // band instead writes each output cache line once per band: 3× slower.)
        Interleave::Bsq => {
            let pixels = lines * samples;
            for (pixel, spectrum) in out.chunks_exact_mut(bands).enumerate() {
                let src = values.iter().skip(pixel).step_by(pixels);
                for (dst, v) in spectrum.iter_mut().zip(src) {
                    *dst = decode(*v);
                }
            }
        }
        Interleave::Bil => {
            let line_len = samples * bands;
            for (out_line, in_line) in out
                .chunks_exact_mut(line_len)
                .zip(values.chunks_exact(line_len))
            {
                for (sample, spectrum) in out_line.chunks_exact_mut(bands).enumerate() {
                    let src = in_line.iter().skip(sample).step_by(samples);
                    for (dst, v) in spectrum.iter_mut().zip(src) {
                        *dst = decode(*v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "ENVI\nsamples = 2\nlines = 3\nbands = 4\ndata type = 2\n";

    fn header(extra: &str) -> Result<EnviHeader, String> {
        parse_header(&format!("{MINIMAL}{extra}"))
    }

    #[test]
    fn defaults_when_optional_keys_are_missing() {
        let h = header("").unwrap();
        assert_eq!((h.samples, h.lines, h.bands), (2, 3, 4));
        assert_eq!(h.header_offset, 0);
        assert_eq!(h.data_type, DataType::I16);
        assert_eq!(h.interleave, Interleave::Bsq);
        assert_eq!(h.byte_order, ByteOrder::Little);
        assert_eq!(h.wavelength, None);
        assert_eq!(h.data_bytes(), Some(2 * 3 * 4 * 2));
    }

    #[test]
    fn keys_are_case_and_space_insensitive_and_comments_skipped() {
        let h = parse_header(
            "ENVI\r\n; comment = {not a field\r\nSAMPLES=2\r\n  Lines   =  3\r\nBands = 4\r\n\
             Data   Type = 12\r\nInterleave = BiL\r\nBYTE ORDER = 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.samples, h.lines, h.bands), (2, 3, 4));
        assert_eq!(h.data_type, DataType::U16);
        assert_eq!(h.interleave, Interleave::Bil);
        assert_eq!(h.byte_order, ByteOrder::Big);
        assert_eq!(h.field("data type"), Some("12"));
    }

    #[test]
    fn braced_values_span_lines() {
        let h = header(
            "description = {\n  first line,\n  second line }\n\
             wavelength = {\n 400.0, 500.5,\n 600, 7e2\n}\nwavelength units = Nanometers\n\
             band names = {red, green,\n blue, nir}\ndata ignore value = -9999\n",
        )
        .unwrap();
        assert_eq!(h.description.as_deref(), Some("first line,\n  second line"));
        assert_eq!(h.wavelength, Some(vec![400.0, 500.5, 600.0, 700.0]));
        assert_eq!(h.wavelength_units.as_deref(), Some("Nanometers"));
        assert_eq!(
            h.band_names,
            Some(vec![
                "red".into(),
                "green".into(),
                "blue".into(),
                "nir".into()
            ])
        );
        assert_eq!(h.data_ignore_value, Some(-9999.0));
    }

    #[test]
    fn map_info_is_parsed() {
        let h = header(
            "map info = {UTM, 1.000, 1.000, 500000.0, 4000000.0, 30.0, 30.0, 13, North, \
             WGS-84, units=Meters}\n",
        )
        .unwrap();
        let m = h.map_info.unwrap();
        assert_eq!(m.projection, "UTM");
        assert_eq!(m.reference_pixel, (1.0, 1.0));
        assert_eq!(m.reference_easting_northing, (500000.0, 4000000.0));
        assert_eq!(m.pixel_size, (30.0, 30.0));
        assert_eq!(m.rest, ["13", "North", "WGS-84", "units=Meters"]);
        let short = header("map info = {UTM, 1, 1, 5, 4, 30}\n").unwrap_err();
        assert!(short.contains("needs at least 7"), "{short}");
        let bad = header("map info = {UTM, 1, 1, east, 4, 30, 30}\n").unwrap_err();
        assert!(bad.contains("item 4 of `map info`, \"east\""), "{bad}");
    }

    #[test]
    fn header_errors_name_the_problem() {
        let cases: &[(&str, &str)] = &[
            ("NOT ENVI\nsamples = 1\n", "first line must be `ENVI`"),
            ("", "first line must be `ENVI`"),
            (
                "ENVI\nlines = 3\nbands = 4\ndata type = 2\n",
                "no `samples`",
            ),
            (
                "ENVI\nsamples = 2\nbands = 4\ndata type = 2\n",
                "no `lines`",
            ),
            (
                "ENVI\nsamples = 2\nlines = 3\ndata type = 2\n",
                "no `bands`",
            ),
            (
                "ENVI\nsamples = 2\nlines = 3\nbands = 4\n",
                "no `data type`",
            ),
            (
                "ENVI\nsamples = two\nlines = 3\nbands = 4\ndata type = 2\n",
                "`samples = two` is not a whole number",
            ),
            (
                "ENVI\nsamples = 0\nlines = 3\nbands = 4\ndata type = 2\n",
                "`samples = 0`",
            ),
            (
                "ENVI\nsamples = 2\nlines = 3\nbands = 4\ndata type = 7\n",
                "unknown data type `7`",
            ),
            (
                "ENVI\nsamples = 2\nlines = 3\nbands = 4\ndata type = x\n",
                "unknown data type `x`",
            ),
        ];
        for (text, needle) in cases {
            let err = parse_header(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let checks: &[(&str, &str)] = &[
            ("interleave = bsx\n", "unknown interleave `bsx`"),
            ("byte order = 2\n", "unknown byte order `2`"),
            (
                "header offset = -1\n",
                "`header offset = -1` is not a whole number",
            ),
            ("wavelength = {1, 2, 3}\n", "3 wavelengths for 4 bands"),
            (
                "wavelength = {1, 2, x, 4}\n",
                "item 3 of `wavelength`, \"x\", is not a number",
            ),
            ("description = {never closed\n", "unbalanced braces"),
            ("description = closed}\n", "unbalanced braces"),
            ("description = {a {b} c}\n", "unbalanced braces"),
            ("description = {a} b\n", "text after its closing"),
            ("just words\n", "is not `key = value`"),
            ("data ignore value = none\n", "not a number"),
        ];
        for (extra, needle) in checks {
            let err = header(extra).unwrap_err();
            assert!(err.contains(needle), "{extra:?}: {err}");
        }
        let unknown = header("data type = 8\n").unwrap_err();
        assert!(
            unknown.contains("1 (u8)") && unknown.contains("15 (u64)"),
            "{unknown}"
        );
    }

    #[test]
    fn every_type_decodes_in_both_byte_orders() {
        fn decode(data_type: u32, order: u32, raw: &[u8]) -> Vec<f32> {
            let h = parse_header(&format!(
                "ENVI\nsamples = 1\nlines = 1\nbands = 2\ndata type = {data_type}\n\
                 byte order = {order}\ninterleave = bip\n"
            ))
            .unwrap();
            to_bip(&h, raw)
        }
        let mut le = Vec::new();
        le.extend((-2i16).to_le_bytes());
        le.extend(300i16.to_le_bytes());
        assert_eq!(decode(2, 0, &le), [-2.0, 300.0]);
        let be: Vec<u8> = [-2i16, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(decode(2, 1, &be), [-2.0, 300.0]);
        assert_eq!(decode(1, 1, &[0, 255]), [0.0, 255.0]);
        let u16s: Vec<u8> = [65535u16, 40000]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(decode(12, 1, &u16s), [65535.0, 40000.0]);
        let i32s: Vec<u8> = [i32::MIN, 16_777_217]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(decode(3, 0, &i32s), [-2147483648.0, 16777216.0]);
        let u32s: Vec<u8> = [u32::MAX, 7].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(decode(13, 1, &u32s), [4294967296.0, 7.0]);
        let f32s: Vec<u8> = [-1.5f32, 1e-40]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(decode(4, 1, &f32s), [-1.5, 1e-40]);
        let f64s: Vec<u8> = [0.1f64, -1e30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(decode(5, 0, &f64s), [0.1f32, -1e30f32]);
        let i64s: Vec<u8> = [i64::MIN, -5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(decode(14, 1, &i64s), [-9.223372e18, -5.0]);
        let u64s: Vec<u8> = [u64::MAX, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode(15, 0, &u64s), [1.8446744e19, 9.0]);
    }

    #[test]
    fn interleaves_transpose_to_bip() {
        // 2 lines × 3 samples × 2 bands; value = 100·line + 10·sample + band.
        let value = |l: usize, s: usize, b: usize| (100 * l + 10 * s + b) as u8;
        let (lines, samples, bands) = (2, 3, 2);
        let mut bip = Vec::new();
        let mut bil = Vec::new();
        let mut bsq = Vec::new();
        for l in 0..lines {
            for s in 0..samples {
                for b in 0..bands {
                    bip.push(value(l, s, b));
                }
            }
            for b in 0..bands {
                for s in 0..samples {
                    bil.push(value(l, s, b));
                }
            }
        }
        for b in 0..bands {
            for l in 0..lines {
                for s in 0..samples {
                    bsq.push(value(l, s, b));
                }
            }
        }
        let expected: Vec<f32> = bip.iter().map(|&v| f32::from(v)).collect();
        for (name, raw) in [("bip", &bip), ("bil", &bil), ("bsq", &bsq)] {
            let h = parse_header(&format!(
                "ENVI\nsamples = 3\nlines = 2\nbands = 2\ndata type = 1\ninterleave = {name}\n"
            ))
            .unwrap();
            assert_eq!(to_bip(&h, raw), expected, "{name}");
        }
    }

    #[test]
    fn data_names_beside_a_header() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let header = dir.join("scene.bil.hdr");
        std::fs::write(&header, MINIMAL).unwrap();
        let err = find_data(&header).unwrap_err().to_string();
        assert!(
            err.contains("scene.bil, ") && err.contains("scene.bil.img"),
            "{err}"
        );
        std::fs::write(dir.join("scene.bil"), [0u8; 48]).unwrap();
        assert_eq!(find_data(&header).unwrap(), dir.join("scene.bil"));
        assert_eq!(find_header(&dir.join("scene.bil")).unwrap(), header);
        let lonely = dir.join("lonely.img");
        std::fs::write(&lonely, [0u8; 4]).unwrap();
        let err = find_header(&lonely).unwrap_err().to_string();
        assert!(
            err.contains("lonely.img.hdr") && err.contains("lonely.hdr"),
            "{err}"
        );
    }

    #[test]
    fn garbage_headers_never_panic() {
        let text = "ENVI\nsamples = 2\nlines = 3\nbands = 4\ndata type = 2\nwavelength = {1,2,3,4}\n\
                    map info = {UTM, 1, 1, 5, 4, 30, 30, 13}\ninterleave = bil\nbyte order = 1\n";
        for cut in 0..text.len() {
            let _ = parse_header(&text[..cut]);
        }
        let bytes = text.as_bytes();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut mutated = bytes.to_vec();
            let at = (state % bytes.len() as u64) as usize;
            mutated[at] = (state >> 32) as u8;
            let _ = parse_header(&String::from_utf8_lossy(&mutated));
        }
    }
}
