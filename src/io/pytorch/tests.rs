//! Unit tests of the pickle machine and the strided copy on hand-written bytes. The
//! end-to-end checks against real checkpoints and the Python reference live in `tests/`.

use std::path::Path;

use super::pickle::{self, Source, StorageRef, StorageView, TensorRef, Value};
use super::tensor::{self, DType, f16_to_f32};
use super::{TorchReadError, read_state_dict};

fn run(bytes: &[u8]) -> Result<Value, TorchReadError> {
    let src = Source {
        path: Path::new("test.pth"),
        pickle: "test pickle",
    };
    pickle::load(bytes, 0, &src).map(|(v, _)| v)
}

#[test]
fn memo_copy_sees_items_added_after_binput() {
    // [] q0, APPEND 1, BINGET 0, TUPLE2: the BINGET must return the filled list.
    let v = run(b"\x80\x02]q\x00K\x01ah\x00\x86.").unwrap();
    let one = Value::List(vec![Value::Int(1)]);
    assert_eq!(v, Value::Tuple(vec![one.clone(), one]));
}

#[test]
fn integers_floats_and_strings_decode() {
    // LONG1 -1, LONG1 -32768, BININT -2, BINFLOAT 1.5 (big-endian), SHORT_BINUNICODE "hé"
    let v = run(b"\x80\x02(\x8a\x01\xff\x8a\x02\x00\x80J\xfe\xff\xff\xffG?\xf8\x00\x00\x00\x00\x00\x00\x8c\x03h\xc3\xa9t.").unwrap();
    assert_eq!(
        v,
        Value::Tuple(vec![
            Value::Int(-1),
            Value::Int(-32768),
            Value::Int(-2),
            Value::Float(1.5),
            Value::Str("hé".to_string()),
        ])
    );
}

#[test]
fn unknown_opcode_is_named() {
    // EMPTY_SET (protocol 4) is a real opcode a state dict never needs.
    match run(b"\x80\x04\x8f.") {
        Err(TorchReadError::UnsupportedOpcode {
            name, offset, code, ..
        }) => {
            assert_eq!((name, offset, code), ("EMPTY_SET", 2, 0x8f));
        }
        other => panic!("expected UnsupportedOpcode, got {other:?}"),
    }
    let err = run(b"\x80\x02\xff.").unwrap_err();
    assert!(err.to_string().contains("0xff"), "{err}");
}

#[test]
fn unknown_global_is_named() {
    let err = run(b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n.").unwrap_err();
    match &err {
        TorchReadError::UnsupportedGlobal { module, name, .. } => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("numpy.core.multiarray", "_reconstruct")
            );
        }
        other => panic!("expected UnsupportedGlobal, got {other:?}"),
    }
    assert!(err.to_string().contains("test.pth"), "{err}");
}

#[test]
fn stack_underflow_and_truncation_are_errors() {
    assert!(matches!(
        run(b"\x80\x02."),
        Err(TorchReadError::Malformed { .. })
    ));
    assert!(matches!(
        run(b"\x80\x02(K\x01s."),
        Err(TorchReadError::Malformed { .. })
    ));
    assert!(matches!(
        run(b"\x80\x02X\x10\x00\x00\x00abc"),
        Err(TorchReadError::Truncated { .. })
    ));
    assert!(matches!(
        run(b"\x80\x02K\x01"),
        Err(TorchReadError::Truncated { .. })
    ));
    assert!(matches!(run(b""), Err(TorchReadError::Truncated { .. })));
    assert!(matches!(
        run(b"\x80\x02ctorch\nFloatSto"),
        Err(TorchReadError::Truncated { .. })
    ));
}

#[test]
fn f16_conversion() {
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
    assert!(f16_to_f32(0x7e00).is_nan());
}

fn f32_storage(values: &[f32]) -> (StorageRef, Vec<u8>) {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sref = StorageRef {
        key: "0".to_string(),
        dtype: DType::F32,
        numel: values.len(),
        view: None,
    };
    (sref, bytes)
}

#[test]
fn strided_views_materialise_like_contiguous() {
    let (storage, bytes) = f32_storage(&[0., 1., 2., 3., 4., 5., 6., 7.]);
    let view = |offset, shape: &[usize], stride: &[usize]| TensorRef {
        storage: storage.clone(),
        offset,
        shape: shape.to_vec(),
        stride: stride.to_vec(),
    };
    let data = |t: TensorRef| tensor::materialise(&t, &bytes, true).map(|t| t.data);
    // 2x3 transposed out of a 3x2 matrix starting at element 1.
    assert_eq!(
        data(view(1, &[2, 3], &[1, 2])).unwrap(),
        [1., 3., 5., 2., 4., 6.]
    );
    // Size-1 dimension with an absurd stride: never applied, so harmless.
    assert_eq!(data(view(0, &[1, 2], &[usize::MAX, 1])).unwrap(), [0., 1.]);
    // 0-d tensor.
    assert_eq!(data(view(7, &[], &[])).unwrap(), [7.]);
    // Reaches past the storage: error, not a panic.
    assert_eq!(data(view(2, &[2, 3], &[3, 1])).unwrap()[5], 7.); // last element exactly
    assert!(data(view(3, &[2, 3], &[3, 1])).is_err());
    assert!(data(view(0, &[2, 2], &[usize::MAX / 2, 1])).is_err());
    // A legacy view window narrower than the tensor's reach.
    let mut narrow = view(0, &[3], &[1]);
    narrow.storage.view = Some(StorageView {
        offset: 6,
        numel: 2,
    });
    assert!(data(narrow).is_err());
}

#[test]
fn legacy_file_with_unsupported_opcode_names_file_and_opcode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.pth");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."); // magic
    bytes.extend_from_slice(b"\x80\x02M\xe9\x03."); // 1001
    bytes.extend_from_slice(b"\x80\x02}."); // sys_info {}
    bytes.extend_from_slice(b"\x80\x02\x8f."); // the object: EMPTY_SET
    std::fs::write(&path, &bytes).unwrap();
    let err = read_state_dict(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("EMPTY_SET") && text.contains("set.pth"),
        "{text}"
    );
}
