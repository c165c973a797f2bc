//! End-to-end checks against `tests/fixtures/pytorch/reference.json`, which was produced by an
//! independent reader (numpy + Python's own pickle, no torch, no shared code):
//!
//! ```sh
//! python3 scripts/reference/torch_fixtures.py tests/fixtures
//! bash scripts/fetch-mobilenet.sh
//! python3 scripts/reference/torch_reference.py tests/fixtures/pytorch/reference.json \
//!     ../shared/data/mavd-weights/*.pth \
//!     models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth \
//!     tests/fixtures/pytorch/synthetic_zip.pth tests/fixtures/pytorch/synthetic_legacy.pth \
//!     tests/fixtures/pytorch/synthetic_big_endian.pth tests/fixtures/pytorch/nested_zip.pth
//! ```
//!
//! For each tensor it holds dtype, shape, sum and sum of |x| (float64 over the f32 values)
//! and the first six values. The real checkpoints are not in the repository; their tests
//! skip with a message when the files are absent.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use vigil::train::pytorch::{
    DType, StateDict, TorchReadError, read_state_dict, read_state_dict_at,
};

fn reference(file: &str) -> serde_json::Map<String, Json> {
    let all: Json =
        serde_json::from_str(include_str!("../fixtures/pytorch/reference.json")).unwrap();
    all[file]
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("{file} not in reference.json"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(name)
}

/// Compares every tensor of `sd` with the reference entries whose name starts with `prefix`
/// (nested dicts are flattened there as "outer/inner").
fn assert_matches_reference(file: &str, prefix: &str, sd: &StateDict) {
    let refs = reference(file);
    let expected: Vec<(&str, &Json)> = refs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k, v)))
        .collect();
    let keys: Vec<&str> = sd.keys().collect();
    let expected_keys: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, expected_keys, "{file}: key order");

    for (name, want) in expected {
        let t = sd.get(name).unwrap();
        assert_eq!(
            t.dtype.to_string(),
            want["dtype"].as_str().unwrap(),
            "{file}:{name} dtype"
        );
        let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{file}:{name} shape");
        assert_eq!(
            t.numel(),
            shape.iter().product::<usize>(),
            "{file}:{name} numel"
        );

        let first: Vec<f64> = serde_json::from_value(want["first"].clone()).unwrap();
        let got: Vec<f64> = t
            .data
            .iter()
            .take(first.len())
            .map(|&v| f64::from(v))
            .collect();
        // Exact: both sides hold the same f32 values.
        assert_eq!(got, first, "{file}:{name} first values");

        let sum: f64 = t.data.iter().map(|&v| f64::from(v)).sum();
        let abs_sum: f64 = t.data.iter().map(|&v| f64::from(v).abs()).sum();
        let (want_sum, want_abs) = (
            want["sum"].as_f64().unwrap(),
            want["abs_sum"].as_f64().unwrap(),
        );
        // Only the summation order differs (numpy sums pairwise).
        let tol = 1e-9 * want_abs.max(1.0);
        assert!(
            (sum - want_sum).abs() <= tol,
            "{file}:{name} sum {sum} vs {want_sum}"
        );
        assert!(
            (abs_sum - want_abs).abs() <= tol,
            "{file}:{name} |sum| {abs_sum} vs {want_abs}"
        );

        if let Some(ints) = want.get("ints") {
            let ints: Vec<i64> = serde_json::from_value(ints.clone()).unwrap();
            let got = t.ints().unwrap();
            assert_eq!(&got[..ints.len()], ints.as_slice(), "{file}:{name} ints");
        } else {
            assert!(t.ints().is_none(), "{file}:{name} float tensor has ints");
        }
    }
}

/// Real checkpoint, or `None` (and a note in the test output) when it is not on this machine.
fn real_file(env: &str, default: &Path) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| default.to_path_buf(), PathBuf::from);
    if path.exists() {
        Some(path)
    } else {
        panic!(
            "{} not found (set {env}; scripts/fetch-mobilenet.sh fetches the MobileNetV2 weights)",
            path.display()
        )
    }
}

const MAVD_FILES: [&str; 6] = [
    "a_model.pth",
    "f_model.pth",
    "v_model.pth",
    "va_model.pth",
    "vaf_model.pth",
    "vf_model.pth",
];

#[test]
fn mavd_heads_zip_format() {
    let Some(dir) = real_file(
        "TORCH_READER_MAVD_DIR",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mavd-weights"),
    ) else {
        return;
    };
    for file in MAVD_FILES {
        let sd = read_state_dict(&dir.join(file)).unwrap();
        let listing: Vec<String> = sd
            .iter()
            .map(|(k, t)| format!("{k}{:?}", t.shape))
            .collect();
        println!("{file}: {} tensors: {}", sd.len(), listing.join(" "));
        assert_matches_reference(file, "", &sd);
    }
}

#[test]
fn mobilenet_v2_legacy_format() {
    let default = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/cache/mobilenet_v2/mobilenet_v2-b0353104.pth");
    let Some(path) = real_file("TORCH_READER_MOBILENET", &default) else {
        return;
    };
    let sd = read_state_dict(&path).unwrap();
    assert_eq!(sd.len(), 314);
    assert_eq!(sd.get("features.0.0.weight").unwrap().shape, [32, 3, 3, 3]);
    assert_eq!(sd.get("classifier.1.weight").unwrap().shape, [1000, 1280]);
    assert_eq!(sd.keys().last(), Some("classifier.1.bias"));
    // 262 float32 weights and 52 int64 num_batches_tracked scalars (1431430 each).
    let nbt: Vec<_> = sd
        .iter()
        .filter(|(k, _)| k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(nbt.len(), 52);
    for (k, t) in nbt {
        assert_eq!(
            (t.dtype, t.shape.len(), t.ints()),
            (DType::I64, 0, Some(&[1_431_430][..])),
            "{k}"
        );
    }
    let floats = sd.iter().filter(|(_, t)| t.dtype == DType::F32).count();
    assert_eq!(floats, 262);
    assert_matches_reference("mobilenet_v2-b0353104.pth", "", &sd);
}

#[test]
fn synthetic_zip_and_legacy_match_reference() {
    for file in [
        "synthetic_zip.pth",
        "synthetic_legacy.pth",
        "synthetic_big_endian.pth",
    ] {
        let sd = read_state_dict(&fixture(file)).unwrap();
        assert_matches_reference(file, "", &sd);
    }
}

#[test]
fn synthetic_values_are_what_was_written() {
    // Independent of the reference: the values tools/make_fixtures.py wrote.
    let sd = read_state_dict(&fixture("synthetic_legacy.pth")).unwrap();
    let get = |k| sd.get(k).unwrap();
    let nbt = get("bn.num_batches_tracked");
    assert_eq!(
        (nbt.dtype, nbt.shape.as_slice(), nbt.ints()),
        (DType::I64, &[][..], Some(&[12_345_678_901][..]))
    );
    assert_eq!(
        get("grid.t").data,
        [0., 2., 4., 0.5, 2.5, 4.5, 1., 3., 5., 1.5, 3.5, 5.5]
    );
    assert_eq!(get("grid.window").data, [2.5, 4.5, 3., 5.]);
    assert_eq!(get("grid.expand").data, [0.5, 1., 0.5, 1., 0.5, 1.]);
    assert_eq!(get("half").data[..3], [1., -2.5, 65504.]);
    assert_eq!(get("bf16").data[..2], [1.5, -3.25]);
    assert_eq!(
        get("double").data,
        [std::f32::consts::PI, std::f32::consts::E, 0., -1.5]
    );
    assert_eq!(get("mask").ints(), Some(&[1, 0, 1][..]));
    assert_eq!(get("param").data, [1., 2.5]);
    assert_eq!(get("viewed").data, [50., 60.]);
    assert_eq!(get("empty").shape, [0, 3]);
    assert_eq!(get("tied.a"), get("tied.b"));

    // The zip and big-endian files carry the same tensors (minus the legacy-only view).
    for other in ["synthetic_zip.pth", "synthetic_big_endian.pth"] {
        let other = read_state_dict(&fixture(other)).unwrap();
        assert_eq!(other.len() + 1, sd.len());
        for (k, t) in other.iter() {
            assert_eq!(sd.get(k), Some(t), "{k}");
        }
    }
}

#[test]
fn nested_checkpoint_needs_a_path() {
    let path = fixture("nested_zip.pth");
    let err = read_state_dict(&path).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TorchReadError::NotStateDict { .. }));
    assert!(
        text.contains("\"epoch\" is an int, not a tensor")
            && text.contains(r#"&["state_dict"], &["optimizer"]"#),
        "{text}"
    );

    let sd = read_state_dict_at(&path, &["state_dict"]).unwrap();
    assert_matches_reference("nested_zip.pth", "state_dict/", &sd);
    assert_eq!(sd.get("w").unwrap().data, [1., 3., 2., 4.]); // stride (1, 2): transposed

    let missing = read_state_dict_at(&path, &["model"])
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no key \"model\"") && missing.contains("\"state_dict\" (a dict)"),
        "{missing}"
    );
    let scalar = read_state_dict_at(&path, &["epoch"])
        .unwrap_err()
        .to_string();
    assert!(scalar.contains("an int, not a dict"), "{scalar}");
}

#[test]
fn pickled_module_is_rejected_by_name() {
    let path = fixture("pickled_module.pth");
    match read_state_dict(&path) {
        Err(TorchReadError::UnsupportedGlobal {
            module,
            name,
            path: p,
            ..
        }) => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("torch.nn.modules.linear", "Linear")
            );
            assert_eq!(p, path);
        }
        other => panic!("expected UnsupportedGlobal, got {other:?}"),
    }
}
