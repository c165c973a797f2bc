//! MATLAB level 5 MAT-files (`save -v6` / `-v7`, and `scipy.io.savemat`), as the ABU
//! benchmark scenes are stored.
//!
//! A file is a 128-byte header (text, then version and the endian indicator `IM`/`MI` at bytes
//! 126–127) followed by data elements: an 8-byte tag (type, byte count) or a 4-byte "small"
//! tag with up to 4 bytes of data. A variable is an `miMATRIX` element holding array flags,
//! dimensions, name and the real (then imaginary) part; since v7 each variable is usually
//! wrapped in an `miCOMPRESSED` element, a zlib stream of one further element.
//!
//! Numeric variables are returned as `f64` in C (row-major) order; MATLAB stores them
//! column-major, and often in a smaller type than their class (a double array of small
//! integers is written as `miINT16`). Variables of other classes (char, cell, struct, sparse,
//! objects), complex ones and 64-bit integers that `f64` cannot hold exactly are skipped.
//! Corrupt or truncated files give a [`HsiError::Format`] naming the byte offset, never a
//! panic. MATLAB v7.3 files are HDF5 and are refused with that explanation.

use std::ops::Range;
use std::path::Path;

use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_zlib_with_limit};

use super::{Cube, HsiError, Scene};

const HEADER_LEN: usize = 128;
// Storage types of data elements (the "mi" types).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
/// mxDOUBLE_CLASS ..= mxUINT64_CLASS.
const NUMERIC_CLASSES: std::ops::RangeInclusive<u32> = 6..=15;
/// MATLAB objects (`string`, `table`, …): flags, then the name, with no dimensions before it.
const MX_OPAQUE: u32 = 17;
const COMPLEX_FLAG: u32 = 0x800;
/// Every integer of at most this magnitude is an exact `f64`.
const F64_EXACT: u64 = 1 << 53;
const V73_REFUSED: &str = "is a MATLAB v7.3 MAT-file, which is HDF5 and not supported here; \
                           save it with `save(file, ..., '-v7')` instead";

/// One numeric variable: `dims` as MATLAB gives them (at least two), `data` in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

/// Every numeric variable in the file, in file order.
pub fn read_arrays(path: &Path) -> Result<Vec<MatArray>, HsiError> {
    read_file(path).map(|contents| contents.arrays)
}

/// A scene in the ABU layout: `data` H×W×B (the cube), optional `map` H×W (nonzero =
/// anomalous pixel).
pub fn read_scene(path: &Path) -> Result<Scene, HsiError> {
    let contents = read_file(path)?;
    let format_error = |detail: String| HsiError::Format {
        path: path.to_path_buf(),
        detail,
    };
    let data = contents
        .find("data")
        .map_err(format_error)?
        .ok_or_else(|| {
            let names: Vec<&str> = contents.arrays.iter().map(|a| a.name.as_str()).collect();
            format_error(format!(
                "has no variable `data` (the H×W×B cube); its numeric variables are [{}]",
                names.join(", ")
            ))
        })?;
    let &[rows, cols, bands] = data.dims.as_slice() else {
        return Err(format_error(format!(
            "variable `data` has shape {:?}; a cube is 3-D, H×W×B",
            data.dims
        )));
    };
    let values = data.data.iter().map(|&v| v as f32).collect();
    let cube = Cube::from_bip(rows, cols, bands, values).map_err(|e| e.in_file(path))?;
    let labels = match contents.find("map").map_err(format_error)? {
        None => None,
        Some(map) if map.dims == [rows, cols] => Some(map.data.iter().map(|&v| v != 0.0).collect()),
        Some(map) => {
            return Err(format_error(format!(
                "variable `map` has shape {:?}, but `data` is {rows}×{cols}×{bands}: the \
                 anomaly map must be {rows}×{cols}",
                map.dims
            )));
        }
    };
    Ok(Scene { cube, labels })
}

/// What a file holds: numeric variables, and the others with why they were passed over.
#[derive(Debug, Default)]
struct Contents {
    arrays: Vec<MatArray>,
    skipped: Vec<(String, String)>,
}

impl Contents {
    /// The numeric variable `name`; an error when it exists but was skipped, so a scene's
    /// complex or sparse `data` is named as such rather than reported missing.
    fn find(&self, name: &str) -> Result<Option<&MatArray>, String> {
        if let Some(array) = self.arrays.iter().find(|a| a.name == name) {
            return Ok(Some(array));
        }
        match self.skipped.iter().find(|(n, _)| n == name) {
            Some((_, why)) => Err(format!(
                "variable `{name}` is {why}, not a real numeric array"
            )),
            None => Ok(None),
        }
    }
}

fn read_file(path: &Path) -> Result<Contents, HsiError> {
    let bytes = std::fs::read(path).map_err(|source| HsiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes).map_err(|detail| HsiError::Format {
        path: path.to_path_buf(),
        detail,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

/// A buffer of elements: the file itself, or a stream inflated from one of its elements.
struct Source<'a> {
    bytes: &'a [u8],
    endian: Endian,
    /// File offset of the `miCOMPRESSED` element this was inflated from.
    inflated_from: Option<usize>,
}

impl Source<'_> {
    /// Where `pos` is, for messages.
    fn at(&self, pos: usize) -> String {
        match self.inflated_from {
            None => format!("byte {pos}"),
            Some(start) => {
                format!("byte {pos} of the zlib stream in the element at byte {start}")
            }
        }
    }

    fn u32_at(&self, pos: usize) -> Option<u32> {
        let bytes = *self.bytes.get(pos..)?.first_chunk::<4>()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        })
    }

    fn slice(&self, range: Range<usize>) -> &[u8] {
        self.bytes.get(range).unwrap_or_default()
    }
}

/// One data element: its type and where its data lies in its [`Source`].
struct Element {
    kind: u32,
    /// Offset of the tag.
    start: usize,
    data: Range<usize>,
}

/// Reads the element whose tag is at `*pos`, ending no later than `end`, and moves `*pos`
/// past it. Elements inside a matrix are padded to 8 bytes; top-level ones are not.
fn next_element(
    src: &Source,
    pos: &mut usize,
    end: usize,
    padded: bool,
) -> Result<Element, String> {
    let start = *pos;
    let remaining = end.saturating_sub(start);
    let truncated = || {
        format!(
            "truncated: the data element tag at {} needs 8 bytes, {remaining} remain",
            src.at(start)
        )
    };
    if remaining < 8 {
        return Err(truncated());
    }
    let first = src.u32_at(start).ok_or_else(truncated)?;
    let (kind, data) = if first >> 16 != 0 {
        // Small element: byte count in the upper half, data in the tag's second word.
        let size = (first >> 16) as usize;
        if size > 4 {
            return Err(format!(
                "the small data element at {} claims {size} bytes; at most 4 fit",
                src.at(start)
            ));
        }
        *pos = start + 8;
        (first & 0xffff, start + 4..start + 4 + size)
    } else {
        let size = src.u32_at(start + 4).ok_or_else(truncated)? as usize;
        if size > remaining - 8 {
            return Err(format!(
                "truncated: the data element at {} (type {first}) claims {size} bytes, only {} \
                 remain",
                src.at(start),
                remaining - 8
            ));
        }
        let data_end = start + 8 + size;
        *pos = if padded {
            data_end.next_multiple_of(8).min(end)
        } else {
            data_end
        };
        (first, start + 8..data_end)
    };
    Ok(Element { kind, start, data })
}

fn parse(bytes: &[u8]) -> Result<Contents, String> {
    let endian = check_header(bytes)?;
    let file = Source {
        bytes,
        endian,
        inflated_from: None,
    };
    let mut contents = Contents::default();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let element = next_element(&file, &mut pos, bytes.len(), false)?;
        match element.kind {
            MI_MATRIX => read_variable(&file, &element, &mut contents)?,
            MI_COMPRESSED => {
                let inflated = inflate(&file, &element)?;
                let stream = Source {
                    bytes: &inflated,
                    endian,
                    inflated_from: Some(element.start),
                };
                let mut inner = 0;
                let variable = next_element(&stream, &mut inner, inflated.len(), true)?;
                read_variable(&stream, &variable, &mut contents)?;
            }
            // MATLAB writes nothing else at the top level; whatever another tool adds is not a
            // variable.
            _ => {}
        }
    }
    Ok(contents)
}

/// Checks the 128-byte header and returns the file's byte order.
fn check_header(bytes: &[u8]) -> Result<Endian, String> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(format!(
            "truncated: {} bytes, but a MAT-file header alone is {HEADER_LEN}",
            bytes.len()
        ));
    };
    let hdf5 = |at: usize| bytes.get(at..at + 8) == Some(b"\x89HDF\r\n\x1a\n");
    if header.starts_with(b"MATLAB 7.3") || hdf5(0) || hdf5(512) {
        return Err(V73_REFUSED.into());
    }
    // Bytes 124–127: the version, then the endian indicator.
    let [.., v0, v1, i0, i1] = *header;
    let endian = match [i0, i1] {
        [b'I', b'M'] => Endian::Little,
        [b'M', b'I'] => Endian::Big,
        other => {
            return Err(format!(
                "is not a MATLAB level 5 MAT-file: bytes 126–127 are {other:02x?}, not the \
                 endian indicator \"IM\" or \"MI\" (a v4 file, or not a MAT-file at all)"
            ));
        }
    };
    let version = match endian {
        Endian::Little => u16::from_le_bytes([v0, v1]),
        Endian::Big => u16::from_be_bytes([v0, v1]),
    };
    if version != 0x0100 {
        return Err(format!(
            "has MAT-file version 0x{version:04x} at byte 124; level 5 files have 0x0100"
        ));
    }
    Ok(endian)
}

/// The element a `miCOMPRESSED` element holds, inflated.
fn inflate(file: &Source, element: &Element) -> Result<Vec<u8>, String> {
    let stream = file.slice(element.data.clone());
    let corrupt = |status: TINFLStatus| {
        let why = match status {
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                "it is truncated"
            }
            TINFLStatus::Adler32Mismatch => "its checksum does not match",
            _ => "it is not valid zlib data",
        };
        format!(
            "the compressed element at byte {} cannot be inflated: {why}",
            element.start
        )
    };
    // The inner tag says how large the inflated element is; inflating no further than that
    // bounds the memory a corrupt stream can make this allocate.
    let tag = match decompress_to_vec_zlib_with_limit(stream, 8) {
        Ok(all) => all,
        Err(e) if e.status == TINFLStatus::HasMoreOutput => e.output,
        Err(e) => return Err(corrupt(e.status)),
    };
    let Some(&[a, b, c, d, e, f, g, h]) = tag.first_chunk::<8>() else {
        return Err(format!(
            "the compressed element at byte {} inflates to only {} bytes, less than one tag",
            element.start,
            tag.len()
        ));
    };
    let (first, size) = match file.endian {
        Endian::Little => (
            u32::from_le_bytes([a, b, c, d]),
            u32::from_le_bytes([e, f, g, h]),
        ),
        Endian::Big => (
            u32::from_be_bytes([a, b, c, d]),
            u32::from_be_bytes([e, f, g, h]),
        ),
    };
    let size = if first >> 16 != 0 { 0 } else { size as usize };
    let limit = size.saturating_add(8).next_multiple_of(8);
    decompress_to_vec_zlib_with_limit(stream, limit).map_err(|e| match e.status {
        TINFLStatus::HasMoreOutput => format!(
            "the compressed element at byte {} inflates to more than the {limit} bytes its \
             inner tag claims",
            element.start
        ),
        status => corrupt(status),
    })
}

/// Reads one `miMATRIX` element into `contents`.
fn read_variable(src: &Source, element: &Element, contents: &mut Contents) -> Result<(), String> {
    if element.kind != MI_MATRIX || element.data.is_empty() {
        return Ok(());
    }
    let end = element.data.end;
    let mut pos = element.data.start;

    let flags = next_element(src, &mut pos, end, true)?;
    let word = match (flags.kind, src.u32_at(flags.data.start)) {
        (MI_UINT32, Some(word)) if flags.data.len() >= 8 => word,
        _ => {
            return Err(format!(
                "the array flags at {} are type {} with {} bytes; MATLAB writes miUINT32 with 8",
                src.at(flags.start),
                flags.kind,
                flags.data.len()
            ));
        }
    };
    let class = word & 0xff;
    if !NUMERIC_CLASSES.contains(&class) {
        // Other classes lay their parts out differently (objects have no dimensions first),
        // so the name is taken only where it is sure to be.
        let name = if class == MX_OPAQUE {
            next_element(src, &mut pos, end, true).ok()
        } else {
            next_element(src, &mut pos, end, true)
                .and_then(|_| next_element(src, &mut pos, end, true))
                .ok()
        };
        let name = name.map_or_else(String::new, |n| text(src, &n));
        contents
            .skipped
            .push((name, format!("a {} array", class_name(class))));
        return Ok(());
    }

    let dims_element = next_element(src, &mut pos, end, true)?;
    let dims = read_dims(src, &dims_element)?;
    let name_element = next_element(src, &mut pos, end, true)?;
    let name = text(src, &name_element);
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("variable `{name}` has dimensions {dims:?}, too many values"))?;

    let real = next_element(src, &mut pos, end, true)?;
    let Some(size) = storage_size(real.kind) else {
        return Err(format!(
            "the real part of variable `{name}` at {} has type {}, which is not numeric",
            src.at(real.start),
            real.kind
        ));
    };
    let bytes = src.slice(real.data.clone());
    if count.checked_mul(size) != Some(bytes.len()) {
        return Err(format!(
            "variable `{name}` is {dims:?} = {count} values, but its real part at {} holds {} \
             bytes of type {} ({size} bytes each)",
            src.at(real.start),
            bytes.len(),
            real.kind
        ));
    }
    if name.is_empty() {
        // MATLAB's subsystem data (function workspaces, objects) is an unnamed uint8 array.
        contents
            .skipped
            .push((name, "MATLAB subsystem data".into()));
    } else if word & COMPLEX_FLAG != 0 {
        contents.skipped.push((name, "complex".into()));
    } else if !exact_in_f64(bytes, real.kind, src.endian) {
        contents.skipped.push((
            name,
            "a 64-bit integer array with values beyond ±2^53, which f64 cannot hold exactly".into(),
        ));
    } else {
        let data = to_c_order(bytes, real.kind, src.endian, &dims);
        contents.arrays.push(MatArray { name, dims, data });
    }
    Ok(())
}

fn read_dims(src: &Source, element: &Element) -> Result<Vec<usize>, String> {
    let bytes = src.slice(element.data.clone());
    let (words, rest) = bytes.as_chunks::<4>();
    if element.kind != MI_INT32 || !rest.is_empty() || words.len() < 2 {
        return Err(format!(
            "the dimensions at {} are type {} with {} bytes; MATLAB writes at least two miINT32",
            src.at(element.start),
            element.kind,
            bytes.len()
        ));
    }
    words
        .iter()
        .map(|&w| {
            let d = match src.endian {
                Endian::Little => i32::from_le_bytes(w),
                Endian::Big => i32::from_be_bytes(w),
            };
            usize::try_from(d)
                .map_err(|_| format!("a dimension at {} is negative ({d})", src.at(element.start)))
        })
        .collect()
}

fn text(src: &Source, element: &Element) -> String {
    String::from_utf8_lossy(src.slice(element.data.clone())).into_owned()
}

fn class_name(class: u32) -> String {
    match class {
        1 => "cell".into(),
        2 => "struct".into(),
        3 => "object".into(),
        4 => "char".into(),
        5 => "sparse".into(),
        16 => "function handle".into(),
        MX_OPAQUE => "opaque (object)".into(),
        other => format!("class {other}"),
    }
}

/// Bytes per value of a numeric storage type.
fn storage_size(kind: u32) -> Option<usize> {
    match kind {
        MI_INT8 | MI_UINT8 => Some(1),
        MI_INT16 | MI_UINT16 => Some(2),
        MI_INT32 | MI_UINT32 | MI_SINGLE => Some(4),
        MI_DOUBLE | MI_INT64 | MI_UINT64 => Some(8),
        _ => None,
    }
}

fn exact_in_f64(bytes: &[u8], kind: u32, endian: Endian) -> bool {
    let (words, _) = bytes.as_chunks::<8>();
    let fits = |magnitude: u64| magnitude <= F64_EXACT;
    match (kind, endian) {
        (MI_INT64, Endian::Little) => words
            .iter()
            .all(|w| fits(i64::from_le_bytes(*w).unsigned_abs())),
        (MI_INT64, Endian::Big) => words
            .iter()
            .all(|w| fits(i64::from_be_bytes(*w).unsigned_abs())),
        (MI_UINT64, Endian::Little) => words.iter().all(|w| fits(u64::from_le_bytes(*w))),
        (MI_UINT64, Endian::Big) => words.iter().all(|w| fits(u64::from_be_bytes(*w))),
        _ => true,
    }
}

/// Decodes column-major values of storage type `kind` into C order.
fn to_c_order(bytes: &[u8], kind: u32, endian: Endian, dims: &[usize]) -> Vec<f64> {
    macro_rules! convert {
        ($ty:ty) => {
            match endian {
                Endian::Little => gather(bytes, dims, |b| <$ty>::from_le_bytes(b) as f64),
                Endian::Big => gather(bytes, dims, |b| <$ty>::from_be_bytes(b) as f64),
            }
        };
    }
    match kind {
        MI_INT8 => gather(bytes, dims, |b| f64::from(i8::from_le_bytes(b))),
        MI_UINT8 => gather(bytes, dims, |[b]: [u8; 1]| f64::from(b)),
        MI_INT16 => convert!(i16),
        MI_UINT16 => convert!(u16),
        MI_INT32 => convert!(i32),
        MI_UINT32 => convert!(u32),
        MI_SINGLE => convert!(f32),
        MI_INT64 => convert!(i64),
        MI_UINT64 => convert!(u64),
        MI_DOUBLE => match endian {
            Endian::Little => gather(bytes, dims, f64::from_le_bytes),
            Endian::Big => gather(bytes, dims, f64::from_be_bytes),
        },
        _ => Vec::new(),
    }
}

/// Reorders column-major values into C order. With the last axis split off, the file holds
/// `inner` planes of `q_len` values; each C-order row of `inner` values gathers one value per
/// plane. Rows are filled in the file's (column-major) order of the other axes, so neighbouring
/// rows read neighbouring values and share cache lines, and each row is written in one go.
fn gather<const N: usize>(
    bytes: &[u8],
    dims: &[usize],
    decode: impl Fn([u8; N]) -> f64,
) -> Vec<f64> {
    let (values, _) = bytes.as_chunks::<N>();
    let Some((&inner, outer)) = dims.split_last() else {
        return values.iter().map(|&v| decode(v)).collect();
    };
    let q_len: usize = outer.iter().product();
    if values.is_empty() || inner == 0 || q_len == 0 {
        return Vec::new();
    }
    // C-order strides of the other axes, counted in rows.
    let mut c_strides: Vec<usize> = outer
        .iter()
        .rev()
        .scan(1usize, |acc, &d| {
            let stride = *acc;
            *acc *= d;
            Some(stride)
        })
        .collect();
    c_strides.reverse();
    let mut out = vec![0.0; values.len()];
    let mut counter = vec![0usize; outer.len()];
    let mut row = 0usize;
    for q in 0..q_len {
        if let Some(dst) = out.get_mut(row * inner..(row + 1) * inner) {
            for (d, v) in dst.iter_mut().zip(values.iter().skip(q).step_by(q_len)) {
                *d = decode(*v);
            }
        }
        // Next column-major position: the first axis varies fastest.
        for ((c, &d), &stride) in counter.iter_mut().zip(outer).zip(&c_strides) {
            *c += 1;
            row += stride;
            if *c < d {
                break;
            }
            *c = 0;
            row -= stride * d;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::deflate::compress_to_vec_zlib;

    /// A tiny MAT-file writer, independent of the reader, for the structure tests.
    struct Writer {
        endian: Endian,
    }

    impl Writer {
        fn u32(&self, v: u32) -> [u8; 4] {
            match self.endian {
                Endian::Little => v.to_le_bytes(),
                Endian::Big => v.to_be_bytes(),
            }
        }

        fn element(&self, kind: u32, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            if payload.len() <= 4 {
                out.extend(self.u32(((payload.len() as u32) << 16) | kind));
                out.extend(payload);
                out.resize(8, 0);
            } else {
                out.extend(self.u32(kind));
                out.extend(self.u32(payload.len() as u32));
                out.extend(payload);
                out.resize(out.len().next_multiple_of(8), 0);
            }
            out
        }

        /// A matrix of class (and flags) `class` stored as miINT16, as MATLAB writes small
        /// integers; `extra` (an imaginary part) follows the real part.
        fn matrix(&self, name: &str, dims: &[i32], column_major: &[i16], class: u32) -> Vec<u8> {
            self.matrix_with(name, dims, column_major, class, &[])
        }

        fn matrix_with(
            &self,
            name: &str,
            dims: &[i32],
            column_major: &[i16],
            class: u32,
            extra: &[u8],
        ) -> Vec<u8> {
            let mut body = self.element(MI_UINT32, &[self.u32(class), self.u32(0)].concat());
            let dims: Vec<u8> = dims.iter().flat_map(|&d| self.u32(d as u32)).collect();
            body.extend(self.element(MI_INT32, &dims));
            body.extend(self.element(MI_INT8, name.as_bytes()));
            let values: Vec<u8> = column_major
                .iter()
                .flat_map(|&v| match self.endian {
                    Endian::Little => v.to_le_bytes(),
                    Endian::Big => v.to_be_bytes(),
                })
                .collect();
            body.extend(self.element(MI_INT16, &values));
            body.extend(extra);
            let mut out = self.u32(MI_MATRIX).to_vec();
            out.extend(self.u32(body.len() as u32));
            out.extend(body);
            out
        }

        fn file(&self, variables: &[Vec<u8>], compress: bool) -> Vec<u8> {
            let mut out = b"MATLAB 5.0 MAT-file, unit test".to_vec();
            out.resize(124, b' ');
            let (version, indicator) = match self.endian {
                Endian::Little => (0x0100u16.to_le_bytes(), *b"IM"),
                Endian::Big => (0x0100u16.to_be_bytes(), *b"MI"),
            };
            out.extend(version);
            out.extend(indicator);
            for v in variables {
                if compress {
                    let z = compress_to_vec_zlib(v, 6);
                    out.extend(self.u32(MI_COMPRESSED));
                    out.extend(self.u32(z.len() as u32));
                    out.extend(z);
                } else {
                    out.extend(v);
                }
            }
            out
        }
    }

    /// data 2×3×2 (value = 100·i + 10·j + k) and map 2×3, column-major.
    fn scene_file(endian: Endian, compress: bool) -> Vec<u8> {
        let w = Writer { endian };
        let mut data = Vec::new();
        for k in 0..2 {
            for j in 0..3 {
                for i in 0..2 {
                    data.push(100 * i + 10 * j + k);
                }
            }
        }
        // map[0][2] and map[1][0] set.
        let map = [0, 1, 0, 0, 1, 0];
        w.file(
            &[
                w.matrix("data", &[2, 3, 2], &data, 6),
                w.matrix("map", &[2, 3], &map, 9),
            ],
            compress,
        )
    }

    fn c_order_data() -> Vec<f64> {
        let mut out = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..2 {
                    out.push(f64::from(100 * i + 10 * j + k));
                }
            }
        }
        out
    }

    #[test]
    fn both_endiannesses_compressed_or_not() {
        for endian in [Endian::Little, Endian::Big] {
            for compress in [false, true] {
                let contents = parse(&scene_file(endian, compress)).unwrap();
                assert!(contents.skipped.is_empty());
                let [data, map] = contents.arrays.as_slice() else {
                    panic!("{:?}", contents.arrays);
                };
                assert_eq!(
                    (data.name.as_str(), data.dims.as_slice()),
                    ("data", &[2, 3, 2][..])
                );
                assert_eq!(data.data, c_order_data(), "{endian:?} {compress}");
                assert_eq!(map.dims, [2, 3]);
                assert_eq!(map.data, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
            }
        }
    }

    #[test]
    fn column_major_to_c_order_in_any_rank() {
        let bytes: Vec<u8> = (0..24u8).collect();
        // 2×3×4 column-major: value at (i, j, k) = i + 2j + 6k.
        let got = gather(&bytes, &[2, 3, 4], |[b]: [u8; 1]| f64::from(b));
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    want.push(f64::from(i + 2 * j + 6 * k));
                }
            }
        }
        assert_eq!(got, want);
        let matrix = gather(&bytes[..6], &[2, 3], |[b]: [u8; 1]| f64::from(b));
        assert_eq!(matrix, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        let four = gather(&bytes, &[2, 1, 3, 4], |[b]: [u8; 1]| f64::from(b));
        assert_eq!(four, want);
        let row = gather(&bytes[..5], &[1, 5], |[b]: [u8; 1]| f64::from(b));
        assert_eq!(row, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(gather(&[], &[0, 3], |[b]: [u8; 1]| f64::from(b)).is_empty());
    }

    #[test]
    fn small_elements_in_both_byte_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let w = Writer { endian };
            let bytes = w.element(MI_INT8, b"map");
            let src = Source {
                bytes: &bytes,
                endian,
                inflated_from: None,
            };
            let mut pos = 0;
            let e = next_element(&src, &mut pos, bytes.len(), true).unwrap();
            assert_eq!(
                (e.kind, pos, text(&src, &e)),
                (MI_INT8, 8, "map".to_string())
            );
        }
    }

    #[test]
    fn skipped_classes_and_flags_are_reported() {
        let w = Writer {
            endian: Endian::Little,
        };
        let char_array = w.matrix("label", &[1, 2], &[65, 66], 4);
        let imaginary = w.element(MI_INT16, &[0; 4]);
        let complex = w.matrix_with("z", &[1, 2], &[1, 2], 6 | COMPLEX_FLAG, &imaginary);
        let unnamed = w.matrix("", &[1, 2], &[1, 2], 9);
        let contents = parse(&w.file(&[char_array, complex, unnamed], false)).unwrap();
        assert!(contents.arrays.is_empty());
        let names: Vec<&str> = contents.skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["label", "z", ""]);
        assert_eq!(contents.skipped[0].1, "a char array");
        assert!(
            contents
                .find("z")
                .unwrap_err()
                .contains("variable `z` is complex")
        );
    }

    #[test]
    fn header_errors() {
        let v73 = {
            let mut h = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00".to_vec();
            h.resize(124, b' ');
            h.extend([0x00, 0x02, b'I', b'M']);
            h.resize(512, 0);
            h.extend(b"\x89HDF\r\n\x1a\n");
            h
        };
        let err = parse(&v73).unwrap_err();
        assert!(
            err.contains("v7.3") && err.contains("HDF5") && err.contains("-v7"),
            "{err}"
        );
        assert!(parse(&[0; 50]).unwrap_err().contains("truncated: 50 bytes"));
        let err = parse(&[b' '; 200]).unwrap_err();
        assert!(err.contains("endian indicator"), "{err}");
        let mut wrong_version = scene_file(Endian::Little, false);
        wrong_version[125] = 3;
        assert!(
            parse(&wrong_version)
                .unwrap_err()
                .contains("version 0x0300")
        );
    }

    #[test]
    fn structural_errors_name_the_offset() {
        let good = scene_file(Endian::Little, false);
        let err = parse(&good[..good.len() - 3]).unwrap_err();
        assert!(
            err.contains("truncated") && err.contains("at byte"),
            "{err}"
        );
        let err = parse(&good[..133]).unwrap_err();
        assert!(
            err.contains("tag at byte 128 needs 8 bytes, 5 remain"),
            "{err}"
        );
        let mut bad_count = good.clone();
        // The first variable's dims are at 128 + 8 (matrix tag) + 16 (flags) + 8 (dims tag).
        bad_count[160] = 9;
        let err = parse(&bad_count).unwrap_err();
        assert!(
            err.contains("variable `data` is [9, 3, 2] = 54 values"),
            "{err}"
        );

        let zipped = scene_file(Endian::Big, true);
        let mut flipped = zipped.clone();
        flipped[150] ^= 0x40;
        let err = parse(&flipped).unwrap_err();
        assert!(
            err.contains("compressed element at byte 128 cannot be inflated"),
            "{err}"
        );
    }

    #[test]
    fn truncation_and_flips_never_panic() {
        for endian in [Endian::Little, Endian::Big] {
            for compress in [false, true] {
                let good = scene_file(endian, compress);
                for cut in 0..good.len() {
                    let _ = parse(&good[..cut]);
                }
                let mut state = 0x9e37_79b9_7f4a_7c15u64;
                for _ in 0..3000 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let mut mutated = good.clone();
                    for flip in 0..1 + (state % 3) as usize {
                        let at = ((state >> (8 * flip)) % good.len() as u64) as usize;
                        mutated[at] ^= 1 << (state >> 61);
                    }
                    let _ = parse(&mutated);
                }
            }
        }
    }
}
