//! NumPy `.npy` files: read and write plain (non-structured) arrays.
//!
//! Supported: format versions 1.0, 2.0 and 3.0; dtypes `b1` (bool), `u1 i1 u2 i2 u4 i4 u8 i8 f4
//! f8` in either byte order (`<`, `>`, `|` for one-byte types, `=` as this machine's order); C or
//! Fortran order. Arrays are always returned in C (row-major) order.
//!
//! Reads are typed: [`read_npy::<T>`](read_npy) converts from the stored dtype when every value
//! of that dtype is exactly representable in `T` (e.g. `u1` or `f4` as `f64`, `i2` as `f32`),
//! and refuses otherwise (`f8` as `f32`, `i4` as `f32`, `i8` as `f64`), so a fixture can never
//! lose precision silently. Malformed input gives an [`NpyError`], never a panic.
//!
//! Writes use version 1.0 (2.0 when the header would not fit), little-endian, C order, with the
//! header padded to 64 bytes as NumPy does so the data can be memory-mapped aligned.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy aligns the start of the data to this many bytes.
const ALIGN: usize = 64;
/// Header text kept in error messages, so a corrupt multi-megabyte header stays readable.
const HEADER_EXCERPT: usize = 120;

/// Element types a `.npy` file may hold here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn itemsize(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// The NumPy type code without byte order, e.g. `f4`.
    pub fn code(self) -> &'static str {
        match self {
            DType::Bool => "b1",
            DType::U8 => "u1",
            DType::I8 => "i1",
            DType::U16 => "u2",
            DType::I16 => "i2",
            DType::U32 => "u4",
            DType::I32 => "i4",
            DType::U64 => "u8",
            DType::I64 => "i8",
            DType::F32 => "f4",
            DType::F64 => "f8",
        }
    }

    /// The NumPy name, e.g. `float32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "b1" | "?" => DType::Bool,
            "u1" => DType::U8,
            "i1" => DType::I8,
            "u2" => DType::U16,
            "i2" => DType::I16,
            "u4" => DType::U32,
            "i4" => DType::I32,
            "u8" => DType::U64,
            "i8" => DType::I64,
            "f4" => DType::F32,
            "f8" => DType::F64,
            _ => return None,
        })
    }

    /// Integer width in bits and signedness; `None` for bool and floats.
    fn int_bits(self) -> Option<(u32, bool)> {
        match self {
            DType::U8 => Some((8, false)),
            DType::I8 => Some((8, true)),
            DType::U16 => Some((16, false)),
            DType::I16 => Some((16, true)),
            DType::U32 => Some((32, false)),
            DType::I32 => Some((32, true)),
            DType::U64 => Some((64, false)),
            DType::I64 => Some((64, true)),
            DType::Bool | DType::F32 | DType::F64 => None,
        }
    }

    /// Whether every value of `self` is exactly a value of `to`.
    pub fn converts_losslessly_to(self, to: DType) -> bool {
        if self == to {
            return true;
        }
        match (self, to) {
            // False and true are 0 and 1 in every numeric type.
            (DType::Bool, _) => true,
            (_, DType::Bool) => false,
            (DType::F32, DType::F64) => true,
            (DType::F32 | DType::F64, _) => false,
            // An integer is exact in a float while its magnitude bits fit the significand.
            (from, DType::F32) => from.int_bits().is_some_and(|(bits, _)| bits <= 24),
            (from, DType::F64) => from.int_bits().is_some_and(|(bits, _)| bits <= 53),
            (from, to) => match (from.int_bits(), to.int_bits()) {
                (Some((fb, fs)), Some((tb, ts))) => match (fs, ts) {
                    (false, false) | (true, true) => fb <= tb,
                    // Unsigned into signed needs one more bit for the sign.
                    (false, true) => fb < tb,
                    (true, false) => false,
                },
                _ => false,
            },
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Byte order of the stored elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version, e.g. `(1, 0)`.
    pub version: (u8, u8),
    /// The `descr` string as written, e.g. `<f4`.
    pub descr: String,
    pub dtype: DType,
    pub byte_order: ByteOrder,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first data byte in the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Elements the shape holds (1 for a 0-d array).
    pub fn element_count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }
}

/// An array read from a `.npy` file, in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> NpyArray<T> {
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Rust element types that map to a NumPy dtype. Sealed: the conversions below are exact only
/// for the types listed in the lossless table of [`DType::converts_losslessly_to`].
pub trait NpyElement: Copy + sealed::Sealed {
    /// The dtype this type is written as.
    const DTYPE: DType;
    #[doc(hidden)]
    fn from_bool(v: bool) -> Self;
    #[doc(hidden)]
    fn from_u64(v: u64) -> Self;
    #[doc(hidden)]
    fn from_i64(v: i64) -> Self;
    #[doc(hidden)]
    fn from_f64(v: f64) -> Self;
    #[doc(hidden)]
    fn put_le(self, out: &mut Vec<u8>);
}

// The `as` casts are only reached for conversions the lossless table allows, where they are exact.
macro_rules! numeric_element {
    ($t:ty, $dtype:expr) => {
        impl sealed::Sealed for $t {}
        impl NpyElement for $t {
            const DTYPE: DType = $dtype;
            fn from_bool(v: bool) -> Self {
                u8::from(v) as $t
            }
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

numeric_element!(u8, DType::U8);
numeric_element!(i8, DType::I8);
numeric_element!(u16, DType::U16);
numeric_element!(i16, DType::I16);
numeric_element!(u32, DType::U32);
numeric_element!(i32, DType::I32);
numeric_element!(u64, DType::U64);
numeric_element!(i64, DType::I64);
numeric_element!(f32, DType::F32);
numeric_element!(f64, DType::F64);

impl sealed::Sealed for bool {}
impl NpyElement for bool {
    const DTYPE: DType = DType::Bool;
    fn from_bool(v: bool) -> Self {
        v
    }
    fn from_u64(v: u64) -> Self {
        v != 0
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

/// What is wrong with a `.npy` file or a write request, without the path.
#[derive(Debug, thiserror::Error)]
pub enum NpyErrorKind {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad magic: the file starts with {found:?}, a .npy file with \"\\x93NUMPY\"")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are)")]
    UnsupportedVersion { major: u8, minor: u8 },
    #[error("truncated file: the header needs {needed} bytes, the file has {available}")]
    TruncatedHeader { needed: usize, available: usize },
    #[error("header of format version {major}.{minor} is not valid {encoding}")]
    HeaderEncoding {
        major: u8,
        minor: u8,
        encoding: &'static str,
    },
    #[error("header is not a dict literal: {header:?}")]
    HeaderNotDict { header: String },
    #[error("header syntax error at character {offset}: {reason}: {header:?}")]
    HeaderSyntax {
        offset: usize,
        reason: &'static str,
        header: String,
    },
    #[error("header lacks the key {key:?}: {header:?}")]
    MissingKey { key: &'static str, header: String },
    #[error("header has the unexpected key {key:?}: {header:?}")]
    UnexpectedKey { key: String, header: String },
    #[error("header value of {key:?} is {found}, expected {expected}")]
    BadValue {
        key: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error(
        "unknown dtype descr {descr:?} (supported: b1, u1, i1, u2, i2, u4, i4, u8, i8, f4, f8 \
         with byte order <, > or |)"
    )]
    UnknownDescr { descr: String },
    #[error("stored dtype {stored} cannot be read losslessly as {requested}")]
    LossyConversion { stored: DType, requested: DType },
    #[error("shape {shape:?} has more elements than memory can address")]
    ShapeOverflow { shape: Vec<usize> },
    #[error(
        "data length mismatch: shape {shape:?} × itemsize {itemsize} needs {expected} bytes, \
         the file has {found}"
    )]
    DataLength {
        shape: Vec<usize>,
        itemsize: usize,
        expected: usize,
        found: usize,
    },
    #[error("shape {shape:?} holds {elements} elements, {given} were given")]
    ShapeMismatch {
        shape: Vec<usize>,
        elements: usize,
        given: usize,
    },
}

/// A `.npy` error: what is wrong, then the file it concerns.
#[derive(Debug)]
pub struct NpyError {
    pub kind: NpyErrorKind,
    pub path: PathBuf,
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.path.display())
    }
}

impl std::error::Error for NpyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The kind is already in the message; only an underlying i/o error is a further cause.
        match &self.kind {
            NpyErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn at_path(path: &Path) -> impl FnOnce(NpyErrorKind) -> NpyError + '_ {
    move |kind| NpyError {
        kind,
        path: path.to_path_buf(),
    }
}

/// Reads a `.npy` file as an array of `T` in C order.
pub fn read_npy<T: NpyElement>(path: impl AsRef<Path>) -> Result<NpyArray<T>, NpyError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| at_path(path)(NpyErrorKind::Io(e)))?;
    decode_npy(&bytes).map_err(at_path(path))
}

/// Reads only the header of a `.npy` file (to learn its dtype and shape before reading it).
pub fn read_npy_header(path: impl AsRef<Path>) -> Result<NpyHeader, NpyError> {
    let path = path.as_ref();
    let read = || -> Result<NpyHeader, NpyErrorKind> {
        let mut file = File::open(path)?;
        let mut prefix = Vec::with_capacity(12);
        (&mut file).take(12).read_to_end(&mut prefix)?;
        let (_, header_len, prefix_len) = parse_prefix(&prefix)?;
        let mut bytes = prefix;
        let want = prefix_len.saturating_add(header_len);
        let more = want.saturating_sub(bytes.len()) as u64;
        file.take(more).read_to_end(&mut bytes)?;
        parse_header(&bytes)
    };
    read().map_err(at_path(path))
}

/// Writes `data` (C order, `shape`) as a little-endian `.npy` file.
pub fn write_npy<T: NpyElement>(
    path: impl AsRef<Path>,
    shape: &[usize],
    data: &[T],
) -> Result<(), NpyError> {
    let path = path.as_ref();
    let bytes = encode_npy(shape, data).map_err(at_path(path))?;
    std::fs::write(path, bytes).map_err(|e| at_path(path)(NpyErrorKind::Io(e)))
}

/// Parses the magic, version and header length: `(version, header_len, prefix_len)`.
fn parse_prefix(bytes: &[u8]) -> Result<((u8, u8), usize, usize), NpyErrorKind> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(NpyErrorKind::BadMagic {
            found: bytes[..bytes.len().min(MAGIC.len())].to_vec(),
        });
    }
    if bytes.len() < 8 {
        return Err(NpyErrorKind::TruncatedHeader {
            needed: 8,
            available: bytes.len(),
        });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => return Err(NpyErrorKind::UnsupportedVersion { major, minor }),
    };
    let prefix_len = 8 + len_bytes;
    if bytes.len() < prefix_len {
        return Err(NpyErrorKind::TruncatedHeader {
            needed: prefix_len,
            available: bytes.len(),
        });
    }
    let header_len = if len_bytes == 2 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        usize::try_from(n).unwrap_or(usize::MAX)
    };
    Ok(((major, minor), header_len, prefix_len))
}

/// Parses the header at the start of `bytes` (which may hold the data after it).
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader, NpyErrorKind> {
    let ((major, minor), header_len, prefix_len) = parse_prefix(bytes)?;
    let data_offset = prefix_len.saturating_add(header_len);
    if bytes.len() < data_offset {
        return Err(NpyErrorKind::TruncatedHeader {
            needed: data_offset,
            available: bytes.len(),
        });
    }
    let raw = &bytes[prefix_len..data_offset];
    // Versions 1 and 2 store latin-1 text, version 3 UTF-8.
    let text: String = if major == 3 {
        std::str::from_utf8(raw)
            .map_err(|_| NpyErrorKind::HeaderEncoding {
                major,
                minor,
                encoding: "UTF-8",
            })?
            .to_owned()
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let dict = parse_dict(&text)?;
    let excerpt = || excerpt(&text);

    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in dict {
        match key.as_str() {
            "descr" => descr = Some(value),
            "fortran_order" => fortran = Some(value),
            "shape" => shape = Some(value),
            _ => {
                return Err(NpyErrorKind::UnexpectedKey {
                    key,
                    header: excerpt(),
                });
            }
        }
    }
    let missing = |key| NpyErrorKind::MissingKey {
        key,
        header: excerpt(),
    };
    let descr = match descr.ok_or_else(|| missing("descr"))? {
        Value::Str(s) => s,
        // A list is a structured (record) dtype.
        other => {
            return Err(NpyErrorKind::UnknownDescr {
                descr: other.to_string(),
            });
        }
    };
    let fortran_order = match fortran.ok_or_else(|| missing("fortran_order"))? {
        Value::Bool(b) => b,
        other => {
            return Err(NpyErrorKind::BadValue {
                key: "fortran_order",
                found: other.to_string(),
                expected: "True or False",
            });
        }
    };
    let shape_value = shape.ok_or_else(|| missing("shape"))?;
    let bad_shape = |v: &Value| NpyErrorKind::BadValue {
        key: "shape",
        found: v.to_string(),
        expected: "a tuple of non-negative integers",
    };
    let shape = match &shape_value {
        Value::Tuple(items) => items
            .iter()
            .map(|item| match item {
                Value::Int(n) => usize::try_from(*n).map_err(|_| bad_shape(&shape_value)),
                _ => Err(bad_shape(&shape_value)),
            })
            .collect::<Result<Vec<usize>, _>>()?,
        other => return Err(bad_shape(other)),
    };
    let (dtype, byte_order) = parse_descr(&descr)?;
    Ok(NpyHeader {
        version: (major, minor),
        descr,
        dtype,
        byte_order,
        fortran_order,
        shape,
        data_offset,
    })
}

fn parse_descr(descr: &str) -> Result<(DType, ByteOrder), NpyErrorKind> {
    let unknown = || NpyErrorKind::UnknownDescr {
        descr: descr.to_owned(),
    };
    let mut chars = descr.chars();
    let (order, code) = match chars.next() {
        Some('<') => (Some(ByteOrder::Little), chars.as_str()),
        Some('>') => (Some(ByteOrder::Big), chars.as_str()),
        Some('=') => (Some(native_order()), chars.as_str()),
        Some('|') => (None, chars.as_str()),
        _ => (None, descr),
    };
    let dtype = DType::from_code(code).ok_or_else(unknown)?;
    let byte_order = match order {
        Some(o) => o,
        // "Not applicable" only makes sense for one-byte types.
        None if dtype.itemsize() == 1 => ByteOrder::Little,
        None => return Err(unknown()),
    };
    Ok((dtype, byte_order))
}

fn native_order() -> ByteOrder {
    if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    }
}

fn excerpt(text: &str) -> String {
    let trimmed = text.trim_end();
    match trimmed.char_indices().nth(HEADER_EXCERPT) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_owned(),
    }
}

/// Decodes a whole `.npy` file held in memory.
pub fn decode_npy<T: NpyElement>(bytes: &[u8]) -> Result<NpyArray<T>, NpyErrorKind> {
    let header = parse_header(bytes)?;
    if !header.dtype.converts_losslessly_to(T::DTYPE) {
        return Err(NpyErrorKind::LossyConversion {
            stored: header.dtype,
            requested: T::DTYPE,
        });
    }
    let itemsize = header.dtype.itemsize();
    let expected = header
        .element_count()
        .and_then(|n| n.checked_mul(itemsize))
        .ok_or_else(|| NpyErrorKind::ShapeOverflow {
            shape: header.shape.clone(),
        })?;
    let body = &bytes[header.data_offset..];
    if body.len() != expected {
        return Err(NpyErrorKind::DataLength {
            shape: header.shape,
            itemsize,
            expected,
            found: body.len(),
        });
    }
    let data = decode_elements::<T>(header.dtype, header.byte_order, body);
    let data = if header.fortran_order {
        fortran_to_c(&data, &header.shape)
    } else {
        data
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

fn decode_elements<T: NpyElement>(dtype: DType, order: ByteOrder, body: &[u8]) -> Vec<T> {
    let mut out = Vec::with_capacity(body.len() / dtype.itemsize());
    let big = order == ByteOrder::Big;
    // One loop per stored type, so the byte-order branch and conversion inline.
    macro_rules! each {
        ($t:ty, $from:ident, $wide:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            for chunk in body.chunks_exact(N) {
                let mut raw = [0u8; N];
                raw.copy_from_slice(chunk);
                let v = if big {
                    <$t>::from_be_bytes(raw)
                } else {
                    <$t>::from_le_bytes(raw)
                };
                out.push(T::$from(<$wide>::from(v)));
            }
        }};
    }
    match dtype {
        // NumPy writes 0 and 1; like NumPy, any non-zero byte reads as true.
        DType::Bool => out.extend(body.iter().map(|&b| T::from_bool(b != 0))),
        DType::U8 => each!(u8, from_u64, u64),
        DType::I8 => each!(i8, from_i64, i64),
        DType::U16 => each!(u16, from_u64, u64),
        DType::I16 => each!(i16, from_i64, i64),
        DType::U32 => each!(u32, from_u64, u64),
        DType::I32 => each!(i32, from_i64, i64),
        DType::U64 => each!(u64, from_u64, u64),
        DType::I64 => each!(i64, from_i64, i64),
        DType::F32 => each!(f32, from_f64, f64),
        DType::F64 => each!(f64, from_f64, f64),
    }
    out
}

/// Reorders column-major data of `shape` into row-major order.
fn fortran_to_c<T: Copy>(data: &[T], shape: &[usize]) -> Vec<T> {
    if shape.len() < 2 || data.is_empty() {
        return data.to_vec();
    }
    // In Fortran order the first axis varies fastest.
    let mut strides = vec![1usize; shape.len()];
    for axis in 1..shape.len() {
        strides[axis] = strides[axis - 1] * shape[axis - 1];
    }
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..data.len() {
        out.push(data[offset]);
        // Advance the index in C order, the last axis fastest, tracking the Fortran offset.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            offset -= strides[axis] * shape[axis];
            index[axis] = 0;
        }
    }
    out
}

/// Encodes `data` (C order, `shape`) as the bytes of a little-endian `.npy` file.
pub fn encode_npy<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>, NpyErrorKind> {
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| NpyErrorKind::ShapeOverflow {
            shape: shape.to_vec(),
        })?;
    if elements != data.len() {
        return Err(NpyErrorKind::ShapeMismatch {
            shape: shape.to_vec(),
            elements,
            given: data.len(),
        });
    }
    let order = if T::DTYPE.itemsize() == 1 { '|' } else { '<' };
    let shape_text = match shape {
        [] => "()".to_owned(),
        [n] => format!("({n},)"),
        dims => {
            let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let dict = format!(
        "{{'descr': '{order}{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        T::DTYPE.code()
    );
    // Pad with spaces and end with a newline so the data starts on a 64-byte boundary.
    let padded_len = |prefix: usize| {
        let unpadded = prefix + dict.len() + 1;
        dict.len() + 1 + (ALIGN - unpadded % ALIGN) % ALIGN
    };
    let (version, prefix_len) = if padded_len(10) <= usize::from(u16::MAX) {
        (1u8, 10)
    } else {
        (2u8, 12)
    };
    let header_len = padded_len(prefix_len);
    let mut out = Vec::with_capacity(prefix_len + header_len + data.len() * T::DTYPE.itemsize());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        // Checked above: it fits.
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        let len = u32::try_from(header_len).map_err(|_| NpyErrorKind::ShapeOverflow {
            shape: shape.to_vec(),
        })?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(prefix_len + header_len - 1, b' ');
    out.push(b'\n');
    for &v in data {
        v.put_le(&mut out);
    }
    Ok(out)
}

/// The Python literals a `.npy` header uses.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(String, Value)>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = |f: &mut fmt::Formatter<'_>, items: &[Value]| -> fmt::Result {
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            Ok(())
        };
        match self {
            Value::Str(s) => write!(f, "'{s}'"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::None => f.write_str("None"),
            Value::Tuple(items) => {
                f.write_str("(")?;
                seq(f, items)?;
                f.write_str(if items.len() == 1 { ",)" } else { ")" })
            }
            Value::List(items) => {
                f.write_str("[")?;
                seq(f, items)?;
                f.write_str("]")
            }
            Value::Dict(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "'{k}': {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Parses the header text as a Python dict literal with string keys.
fn parse_dict(text: &str) -> Result<Vec<(String, Value)>, NpyErrorKind> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        text,
    };
    p.skip_ws();
    if p.peek() != Some('{') {
        return Err(NpyErrorKind::HeaderNotDict {
            header: excerpt(text),
        });
    }
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(p.error("text after the closing brace"));
    }
    match value {
        Value::Dict(entries) => Ok(entries),
        _ => Err(NpyErrorKind::HeaderNotDict {
            header: excerpt(text),
        }),
    }
}

/// A recursive-descent parser for the literal subset NumPy headers use.
struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
}

/// Nesting deeper than this is not a NumPy header; the limit keeps recursion bounded.
const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, reason: &'static str) -> NpyErrorKind {
        NpyErrorKind::HeaderSyntax {
            offset: self.pos,
            reason,
            header: excerpt(self.text),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, NpyErrorKind> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.skip_ws();
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some('}') {
                        self.pos += 1;
                        return Ok(Value::Dict(entries));
                    }
                    let key = match self.value(depth + 1)? {
                        Value::Str(s) => s,
                        _ => return Err(self.error("dict key is not a string")),
                    };
                    self.skip_ws();
                    if self.peek() != Some(':') {
                        return Err(self.error("expected ':' after a dict key"));
                    }
                    self.pos += 1;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    if !self.separator('}')? {
                        self.pos += 1;
                        return Ok(Value::Dict(entries));
                    }
                }
            }
            Some(open @ ('(' | '[')) => {
                self.pos += 1;
                let close = if open == '(' { ')' } else { ']' };
                let mut items = Vec::new();
                let mut trailing_comma = false;
                loop {
                    self.skip_ws();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    trailing_comma = self.separator(close)?;
                    if !trailing_comma {
                        self.pos += 1;
                        break;
                    }
                }
                Ok(if open == '[' {
                    Value::List(items)
                } else if items.len() == 1 && !trailing_comma {
                    // `(3)` is a parenthesised 3, not a tuple.
                    items.pop().unwrap_or(Value::None)
                } else {
                    Value::Tuple(items)
                })
            }
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated string")),
                        Some(c) if c == quote => {
                            self.pos += 1;
                            return Ok(Value::Str(s));
                        }
                        Some('\\') => {
                            self.pos += 1;
                            match self.peek() {
                                Some(c) => s.push(c),
                                None => return Err(self.error("unterminated string")),
                            }
                            self.pos += 1;
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let digits: String = self.chars[start..self.pos].iter().collect();
                // Python 2 wrote long integers with an `L` suffix, e.g. `(3L, 4L)`.
                if self.peek() == Some('L') {
                    self.pos += 1;
                }
                digits
                    .parse::<i128>()
                    .map(Value::Int)
                    .map_err(|_| self.error("integer out of range or malformed"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::None),
                    _ => {
                        self.pos = start;
                        Err(self.error("unknown name"))
                    }
                }
            }
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end of header")),
        }
    }

    /// After an item: consumes a comma and returns true, or finds `close` (left for the caller
    /// to consume) and returns false.
    fn separator(&mut self, close: char) -> Result<bool, NpyErrorKind> {
        self.skip_ws();
        match self.peek() {
            Some(',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => Ok(false),
            Some(_) => Err(self.error("expected ',' or a closing bracket")),
            None => Err(self.error("unexpected end of header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written by NumPy (see `scripts/reference/yamnet_features.py npy-fixtures`).
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/npy/", $name))
        };
    }

    fn header_bytes(version: (u8, u8), dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version.0, version.1]);
        let text = format!("{dict}\n");
        if version.0 == 1 {
            out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    // The fixtures hold arange(6).reshape(2, 3) (or its bool / float equivalents).
    const SIX: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];

    #[test]
    fn reads_every_integer_and_float_dtype_in_both_byte_orders() {
        let files: [(&[u8], DType); 20] = [
            (fixture!("u1.npy"), DType::U8),
            (fixture!("i1.npy"), DType::I8),
            (fixture!("u2_le.npy"), DType::U16),
            (fixture!("u2_be.npy"), DType::U16),
            (fixture!("i2_le.npy"), DType::I16),
            (fixture!("i2_be.npy"), DType::I16),
            (fixture!("u4_le.npy"), DType::U32),
            (fixture!("u4_be.npy"), DType::U32),
            (fixture!("i4_le.npy"), DType::I32),
            (fixture!("i4_be.npy"), DType::I32),
            (fixture!("u8_le.npy"), DType::U64),
            (fixture!("u8_be.npy"), DType::U64),
            (fixture!("i8_le.npy"), DType::I64),
            (fixture!("i8_be.npy"), DType::I64),
            (fixture!("f4_le.npy"), DType::F32),
            (fixture!("f4_be.npy"), DType::F32),
            (fixture!("f8_le.npy"), DType::F64),
            (fixture!("f8_be.npy"), DType::F64),
            (fixture!("f4_v2.npy"), DType::F32),
            (fixture!("f4_v3.npy"), DType::F32),
        ];
        for (bytes, dtype) in files {
            let header = parse_header(bytes).unwrap();
            assert_eq!(header.dtype, dtype);
            assert_eq!(header.shape, vec![2, 3]);
            // Read in the stored type and, where lossless, widened.
            match dtype {
                DType::U8 => assert_eq!(decode_npy::<u8>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5]),
                DType::I8 => assert_eq!(decode_npy::<i8>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5]),
                DType::U16 => {
                    assert_eq!(decode_npy::<u16>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5])
                }
                DType::I16 => {
                    assert_eq!(decode_npy::<i16>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5])
                }
                DType::U32 => {
                    assert_eq!(decode_npy::<u32>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5])
                }
                DType::I32 => {
                    assert_eq!(decode_npy::<i32>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5])
                }
                DType::U64 => {
                    assert_eq!(decode_npy::<u64>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5])
                }
                DType::I64 => {
                    assert_eq!(decode_npy::<i64>(bytes).unwrap().data, [0, 1, 2, 3, 4, 5])
                }
                DType::F32 => {
                    let a = decode_npy::<f32>(bytes).unwrap();
                    assert_eq!(a.data, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
                }
                _ => {}
            }
            if dtype.converts_losslessly_to(DType::F64) {
                assert_eq!(decode_npy::<f64>(bytes).unwrap().data, SIX, "{dtype}");
            } else {
                assert!(matches!(
                    decode_npy::<f64>(bytes),
                    Err(NpyErrorKind::LossyConversion { .. })
                ));
            }
        }
    }

    #[test]
    fn reads_negative_values_big_endian() {
        let a = decode_npy::<i16>(fixture!("i2_neg_be.npy")).unwrap();
        assert_eq!(a.shape, vec![4]);
        assert_eq!(a.data, [-32768, -1, 1, 32767]);
        let a = decode_npy::<f64>(fixture!("f8_special_be.npy")).unwrap();
        assert_eq!(a.data[..3], [-0.5, 1e300, f64::NEG_INFINITY]);
        assert!(a.data[3].is_nan());
    }

    #[test]
    fn reads_bool_and_widens_it() {
        let bytes = fixture!("bool.npy");
        assert_eq!(parse_header(bytes).unwrap().descr, "|b1");
        let a = decode_npy::<bool>(bytes).unwrap();
        assert_eq!(a.data, [true, false, true, true, false, false]);
        assert_eq!(decode_npy::<u8>(bytes).unwrap().data, [1, 0, 1, 1, 0, 0]);
        assert!(decode_npy::<bool>(fixture!("u1.npy")).is_err());
    }

    #[test]
    fn fortran_order_is_returned_in_c_order() {
        // arange(24).reshape(2, 3, 4) saved with order='F'.
        let bytes = fixture!("i4_fortran_3d.npy");
        let header = parse_header(bytes).unwrap();
        assert!(header.fortran_order);
        let a = decode_npy::<i32>(bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, (0..24).collect::<Vec<i32>>());
        let a = decode_npy::<f32>(fixture!("f4_fortran_2d.npy")).unwrap();
        assert_eq!(a.data, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn reads_scalars_and_empty_arrays() {
        let a = decode_npy::<f64>(fixture!("f8_scalar.npy")).unwrap();
        assert_eq!(a.shape, Vec::<usize>::new());
        assert_eq!(a.data, [2.5]);
        let a = decode_npy::<f32>(fixture!("f4_empty.npy")).unwrap();
        assert_eq!(a.shape, vec![0, 3]);
        assert!(a.is_empty());
    }

    #[test]
    fn lossless_table() {
        use DType::*;
        assert!(U8.converts_losslessly_to(F32));
        assert!(I16.converts_losslessly_to(F32));
        assert!(!I32.converts_losslessly_to(F32));
        assert!(I32.converts_losslessly_to(F64));
        assert!(!I64.converts_losslessly_to(F64));
        assert!(!F64.converts_losslessly_to(F32));
        assert!(F32.converts_losslessly_to(F64));
        assert!(U16.converts_losslessly_to(I32));
        assert!(!U16.converts_losslessly_to(I16));
        assert!(!I8.converts_losslessly_to(U64));
        assert!(Bool.converts_losslessly_to(F32));
        assert!(!U8.converts_losslessly_to(Bool));
        let err = decode_npy::<f32>(fixture!("f8_le.npy")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stored dtype float64 (f8) cannot be read losslessly as float32 (f4)"
        );
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 1.0).collect();
        write_npy(&path, &[2, 3, 4], &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = parse_header(&bytes).unwrap();
        assert_eq!(header.data_offset % ALIGN, 0);
        assert_eq!(header.descr, "<f4");
        assert_eq!(read_npy_header(&path).unwrap(), header);
        let back = read_npy::<f32>(&path).unwrap();
        assert_eq!(back.shape, vec![2, 3, 4]);
        assert_eq!(back.data, data);

        let path = dir.path().join("q.npy");
        write_npy(&path, &[3], &[1u8, 2, 255]).unwrap();
        assert_eq!(read_npy_header(&path).unwrap().descr, "|u1");
        assert_eq!(read_npy::<u8>(&path).unwrap().data, [1, 2, 255]);
        write_npy::<i64>(&path, &[], &[-7]).unwrap();
        assert_eq!(read_npy::<i64>(&path).unwrap().shape, Vec::<usize>::new());
    }

    #[test]
    fn encoding_matches_numpy_layout() {
        // Same header dict and data as NumPy writes; only the padding may differ.
        let ours = encode_npy(&[2, 3], &SIX.map(|v| v as f32)).unwrap();
        let theirs = fixture!("f4_le.npy");
        let (h1, h2) = (parse_header(&ours).unwrap(), parse_header(theirs).unwrap());
        assert_eq!((h1.descr, h1.shape), (h2.descr, h2.shape));
        assert_eq!(ours[h1.data_offset..], theirs[h2.data_offset..]);
    }

    #[test]
    fn long_headers_use_version_2() {
        let shape = vec![1usize; 30_000];
        let bytes = encode_npy(&shape, &[3u8]).unwrap();
        assert_eq!(&bytes[6..8], &[2, 0]);
        let a = decode_npy::<u8>(&bytes).unwrap();
        assert_eq!(a.shape.len(), 30_000);
        assert_eq!(a.data, [3]);
    }

    #[test]
    fn write_rejects_shape_mismatch() {
        let err = encode_npy(&[2, 3], &[1.0f32; 5]).unwrap_err();
        assert!(matches!(
            err,
            NpyErrorKind::ShapeMismatch {
                elements: 6,
                given: 5,
                ..
            }
        ));
    }

    #[test]
    fn malformed_inputs_are_named() {
        let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        let data = [0u8; 8];
        let check = |bytes: Vec<u8>, expect: &str| {
            let err = decode_npy::<f32>(&bytes).unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} lacks {expect:?}");
        };
        check(b"PK\x03\x04 not npy".to_vec(), "bad magic");
        check(b"\x93NUM".to_vec(), "bad magic");
        check(MAGIC.to_vec(), "truncated");
        check(header_bytes((4, 0), good, &data), "version 4.0");
        check(
            header_bytes((1, 0), good, &data)[..20].to_vec(),
            "truncated",
        );
        check(
            header_bytes((1, 0), "['descr', 'shape']", &data),
            "not a dict",
        );
        check(header_bytes((1, 0), "hello", &data), "not a dict");
        check(
            header_bytes((1, 0), "{'descr': '<f4', 'fortran_order': False", &data),
            "syntax",
        );
        check(
            header_bytes((1, 0), "{'descr': '<f4', 'shape': (2,), }", &data),
            "lacks the key \"fortran_order\"",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                &data,
            ),
            "unexpected key \"x\"",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
                &data,
            ),
            "unknown dtype descr \"<c8\"",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }",
                &data,
            ),
            "unknown dtype descr \"|f4\"",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                &data,
            ),
            "unknown dtype descr",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }",
                &data,
            ),
            "fortran_order",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
                &data,
            ),
            "non-negative",
        );
        check(
            header_bytes((1, 0), good, &data[..7]),
            "needs 8 bytes, the file has 7",
        );
        check(
            header_bytes((1, 0), good, &[0u8; 9]),
            "needs 8 bytes, the file has 9",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
                &data,
            ),
            "more elements",
        );
        check(
            header_bytes(
                (1, 0),
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999999999999999999,), }",
                &data,
            ),
            "integer out of range",
        );
        // A header length pointing far past the end of the file.
        let mut huge = header_bytes((2, 0), good, &data);
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        check(huge, "truncated");
        // Version 3 headers must be UTF-8.
        let mut bad_utf8 = header_bytes((3, 0), good, &data);
        bad_utf8[13] = 0xff;
        check(bad_utf8, "UTF-8");
        // Deep nesting stops at the depth limit instead of overflowing the stack.
        let deep = format!("{{'descr': {}", "(".repeat(10_000));
        check(header_bytes((1, 0), &deep, &data), "nested too deeply");
    }

    #[test]
    fn accepts_python2_longs_and_double_quotes() {
        let bytes = header_bytes(
            (1, 0),
            "{\"descr\": \"<i2\", \"fortran_order\": False, \"shape\": (2L,)}",
            &[1, 0, 2, 0],
        );
        assert_eq!(decode_npy::<i16>(&bytes).unwrap().data, [1, 2]);
    }

    #[test]
    fn file_errors_end_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        std::fs::write(&path, b"not an npy").unwrap();
        let msg = read_npy::<f32>(&path).unwrap_err().to_string();
        assert!(msg.starts_with("bad magic"), "{msg}");
        assert!(msg.ends_with(&path.display().to_string()), "{msg}");
        let missing = dir.path().join("missing.npy");
        let err = read_npy::<f32>(&missing).unwrap_err();
        assert!(matches!(err.kind, NpyErrorKind::Io(_)));
        assert!(err.to_string().ends_with("missing.npy"));
        assert!(read_npy_header(&missing).is_err());
        assert!(read_npy_header(&path).is_err());
    }

    #[test]
    fn never_panics_on_corrupted_header_bytes() {
        // Every byte of the preamble and header set to values that break it in different ways.
        let original = fixture!("i4_fortran_3d.npy");
        let data_offset = parse_header(original).unwrap().data_offset;
        for pos in 0..data_offset {
            for byte in [
                0u8, b' ', b'(', b')', b'\'', b',', b'9', b'-', b'{', 0x80, 0xff,
            ] {
                let mut bytes = original.to_vec();
                bytes[pos] = byte;
                let _ = decode_npy::<i32>(&bytes);
                let _ = decode_npy::<f64>(&bytes);
            }
        }
    }

    #[test]
    fn never_panics_on_truncations_of_a_valid_file() {
        for bytes in [
            &fixture!("i4_fortran_3d.npy")[..],
            &fixture!("f4_v3.npy")[..],
        ] {
            for end in 0..bytes.len() {
                assert!(decode_npy::<i64>(&bytes[..end]).is_err() || end == bytes.len());
                let _ = decode_npy::<f64>(&bytes[..end]);
            }
        }
    }
}
