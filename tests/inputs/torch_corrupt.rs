//! Truncated, corrupted and foreign files must come back as errors, never as panics or
//! as a partial state dict.

use std::path::{Path, PathBuf};

use vigil::io::pytorch::{TorchReadError, read_state_dict};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pytorch")
            .join(name),
    )
    .unwrap()
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// Deterministic bytes (xorshift), so failures reproduce.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn every_truncation_is_an_error() {
    let scratch = Scratch::new();
    for file in ["synthetic_legacy.pth", "synthetic_zip.pth"] {
        let full = fixture(file);
        assert!(read_state_dict(&scratch.write(file, &full)).is_ok());
        for len in 0..full.len() {
            let path = scratch.write(file, &full[..len]);
            let result = read_state_dict(&path);
            assert!(result.is_err(), "{file} cut to {len} bytes was accepted");
        }
    }
}

#[test]
fn truncated_legacy_reports_truncation() {
    let full = fixture("synthetic_legacy.pth");
    let scratch = Scratch::new();
    // Inside the last storage, and inside the object pickle.
    for len in [full.len() - 3, 200] {
        let path = scratch.write("cut.pth", &full[..len]);
        match read_state_dict(&path) {
            Err(TorchReadError::Truncated { path: p, .. }) => assert_eq!(p, path),
            other => panic!("cut to {len}: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn truncated_real_zip_is_an_error() {
    let path =
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mavd-weights/va_model.pth");
    let full = std::fs::read(path).expect("the MAVD weights in ../shared/data");
    let scratch = Scratch::new();
    for len in [
        0,
        3,
        4,
        30,
        100,
        full.len() / 2,
        full.len() - 22,
        full.len() - 1,
    ] {
        let err = read_state_dict(&scratch.write("va.pth", &full[..len]));
        assert!(err.is_err(), "cut to {len} was accepted");
    }
}

#[test]
fn garbage_is_not_a_checkpoint() {
    let scratch = Scratch::new();
    let empty = read_state_dict(&scratch.write("empty.pth", b"")).unwrap_err();
    assert!(
        matches!(empty, TorchReadError::NotCheckpoint { .. }),
        "{empty:?}"
    );

    let mut garbage = noise(4096, 0x9e37_79b9_7f4a_7c15);
    garbage[0] = b'G';
    let err = read_state_dict(&scratch.write("garbage.pth", &garbage)).unwrap_err();
    assert!(
        matches!(err, TorchReadError::NotCheckpoint { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("garbage.pth"), "{err}");

    // Garbage behind each of the recognised headers still fails cleanly.
    for (i, head) in [&b"PK\x03\x04"[..], b"\x80\x02", b"\x80\x02\x8a\x0a"]
        .iter()
        .enumerate()
    {
        for seed in 1..50u64 {
            let mut bytes = head.to_vec();
            bytes.extend(noise(512, seed * 7919 + i as u64));
            assert!(read_state_dict(&scratch.write("g.pth", &bytes)).is_err());
        }
    }
    // A pickle that is not torch.save output.
    let plain = read_state_dict(&scratch.write("plain.pkl", b"\x80\x02K\x05.")).unwrap_err();
    assert!(
        matches!(plain, TorchReadError::NotCheckpoint { .. }),
        "{plain:?}"
    );
}

#[test]
fn flipped_bytes_never_panic() {
    // Every single-byte corruption of the legacy file, and a spread over the zip file,
    // must return (an error, or tensors with changed values when only raw data was hit).
    let scratch = Scratch::new();
    let legacy = fixture("synthetic_legacy.pth");
    for at in 0..legacy.len() {
        for mask in [0x01, 0xff] {
            let mut bytes = legacy.clone();
            bytes[at] ^= mask;
            let _ = read_state_dict(&scratch.write("flip.pth", &bytes));
        }
    }
    let zip = fixture("synthetic_zip.pth");
    for at in (0..zip.len()).step_by(3) {
        let mut bytes = zip.clone();
        bytes[at] ^= 0x5a;
        let _ = read_state_dict(&scratch.write("flip.pth", &bytes));
    }
}

#[test]
fn missing_file_is_io_error() {
    let err = read_state_dict(Path::new("/nonexistent/x.pth")).unwrap_err();
    assert!(matches!(err, TorchReadError::Io { .. }), "{err:?}");
}
