//! Element types and the step from (storage bytes, offset, shape, stride) to a dense,
//! row-major tensor.

use std::fmt;

use super::pickle::TensorRef;

/// The element type a tensor had in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Maps the legacy typed-storage classes (`torch.FloatStorage`, ...) that persistent
    /// ids name. Complex and quantized storages are left out on purpose: their values do
    /// not fit in one f32 each.
    pub(crate) fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element in a storage.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Integer and bool tensors also keep their exact values as i64.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 | DType::Bool
        )
    }
}

impl fmt::Display for DType {
    /// The torch spelling (`torch.float16` -> `float16`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        })
    }
}

/// A dense tensor in row-major (C) order, whatever its strides were in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The dtype in the checkpoint; `data` is always f32.
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Values converted to f32 (f64 rounds; i64 above 2^24 loses precision, see `ints`).
    pub data: Vec<f32>,
    ints: Option<Vec<i64>>,
}

impl Tensor {
    /// The exact values of an integer or bool tensor (`num_batches_tracked`, index
    /// buffers); `None` for floating-point tensors.
    pub fn ints(&self) -> Option<&[i64]> {
        self.ints.as_deref()
    }

    /// Number of elements (1 for a 0-dimensional tensor).
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Copies a tensor out of its storage. `storage` holds the whole root storage; the caller
/// has checked its length against the persistent id. Returns a message on failure; the
/// caller adds file and tensor name.
pub(crate) fn materialise(
    tref: &TensorRef,
    storage: &[u8],
    little_endian: bool,
) -> Result<Tensor, String> {
    let dtype = tref.storage.dtype;
    // A legacy storage view shifts the origin and narrows the valid window.
    let (base, window) = match &tref.storage.view {
        Some(view) => (view.offset, view.numel),
        None => (0, tref.storage.numel),
    };
    let root = storage.len() / dtype.size();
    if base.checked_add(window).is_none_or(|end| end > root) {
        return Err(format!(
            "storage view [{base}, +{window}) exceeds the {root}-element storage"
        ));
    }

    let numel = tref
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("element count overflows")?;
    if numel > 0 {
        // The farthest element a view can touch; checking it once bounds every index.
        let last = tref
            .shape
            .iter()
            .zip(&tref.stride)
            .try_fold(tref.offset, |acc, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            })
            .ok_or("view extent overflows")?;
        if last >= window {
            return Err(format!(
                "offset {} with size {:?} and stride {:?} reaches element {last} of a {window}-element storage",
                tref.offset, tref.shape, tref.stride
            ));
        }
    }

    let indices = strided_indices(&tref.shape, &tref.stride, tref.offset, numel);
    let es = dtype.size();
    let element = |i: usize| -> &[u8] {
        let at = (base + i) * es;
        &storage[at..at + es]
    };
    let data = indices
        .iter()
        .map(|&i| to_f32(dtype, element(i), little_endian))
        .collect();
    let ints = dtype.is_integer().then(|| {
        indices
            .iter()
            .map(|&i| to_i64(dtype, element(i), little_endian))
            .collect()
    });
    Ok(Tensor {
        dtype,
        shape: tref.shape.clone(),
        data,
        ints,
    })
}

/// Storage element indices of a strided view in row-major order. Non-contiguous views
/// (transposes, `expand` with stride 0, slices with an offset) come out as PyTorch's
/// `.contiguous()` would lay them out.
fn strided_indices(shape: &[usize], stride: &[usize], offset: usize, numel: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(numel);
    if numel == 0 {
        return out;
    }
    // Odometer over the multi-index, carrying from the last dimension.
    let mut index = vec![0usize; shape.len()];
    let mut at = offset;
    // Wrapping arithmetic: a size-1 dimension may carry any stride (it is never applied),
    // and stepping past the last element rewinds every dimension; every index actually
    // pushed was bounds-checked by the caller.
    for _ in 0..numel {
        out.push(at);
        for dim in (0..shape.len()).rev() {
            index[dim] += 1;
            at = at.wrapping_add(stride[dim]);
            if index[dim] < shape[dim] {
                break;
            }
            at = at.wrapping_sub(stride[dim].wrapping_mul(shape[dim]));
            index[dim] = 0;
        }
    }
    out
}

fn bytes<const N: usize>(raw: &[u8], little_endian: bool) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&raw[..N]);
    if !little_endian {
        out.reverse();
    }
    out
}

fn to_f32(dtype: DType, raw: &[u8], le: bool) -> f32 {
    match dtype {
        DType::F64 => f64::from_le_bytes(bytes(raw, le)) as f32,
        DType::F32 => f32::from_le_bytes(bytes(raw, le)),
        DType::F16 => f16_to_f32(u16::from_le_bytes(bytes(raw, le))),
        // bfloat16 is the top half of an f32.
        DType::BF16 => f32::from_bits(u32::from(u16::from_le_bytes(bytes(raw, le))) << 16),
        _ => to_i64(dtype, raw, le) as f32,
    }
}

fn to_i64(dtype: DType, raw: &[u8], le: bool) -> i64 {
    match dtype {
        DType::I64 => i64::from_le_bytes(bytes(raw, le)),
        DType::I32 => i32::from_le_bytes(bytes(raw, le)).into(),
        DType::I16 => i16::from_le_bytes(bytes(raw, le)).into(),
        DType::I8 => i8::from_le_bytes(bytes(raw, le)).into(),
        DType::U8 => raw[0].into(),
        DType::Bool => i64::from(raw[0] != 0),
        // Only reached for integer dtypes.
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 => 0,
    }
}

/// IEEE half to single precision; exact, since every f16 value is an f32 value.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: man * 2^-24, renormalised by letting the f32 arithmetic do it.
        (0, _) => {
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        // Inf and NaN keep their payload.
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        // Rebias the exponent from 15 to 127.
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}
