//! The parsers of outside input, each behind one function that takes arbitrary bytes: what the
//! fuzz targets in `fuzz/` call, and what `tests/inputs/fuzz_corpora.rs` replays the kept corpora
//! through on stable Rust. Each must return (an error is fine), never panic, and never
//! allocate far beyond what its input can justify.
//!
//! Parsers that read files get theirs written into `scratch`, a directory the caller owns
//! (one per process: the fuzzer runs one input at a time).

use std::path::Path;

/// A deployment profile (TOML).
pub fn profile(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::Profile::parse(text, Path::new("fuzz-profile.toml"));
    }
}

/// The model manifest (TOML), with its cross-checks; the files it names do not exist.
pub fn manifest(data: &[u8], scratch: &Path) {
    let path = scratch.join("manifest.toml");
    if std::fs::write(&path, data).is_ok() {
        let _ = crate::Manifest::load(&path);
    }
}

/// An ENVI scene: the bytes up to the first NUL are the `.hdr`, the rest the data file.
pub fn envi(data: &[u8], scratch: &Path) {
    let (header, cube) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let data_path = scratch.join("scene.img");
    if std::fs::write(scratch.join("scene.img.hdr"), header).is_ok()
        && std::fs::write(&data_path, cube).is_ok()
    {
        let _ = crate::hsi::envi::read(&data_path);
    }
}

/// A `.npy` array, decoded as each element type vigil reads.
pub fn npy(data: &[u8]) {
    use crate::io::npy::{decode_npy, parse_header};
    let _ = parse_header(data);
    let _ = decode_npy::<f32>(data);
    let _ = decode_npy::<f64>(data);
    let _ = decode_npy::<i64>(data);
}

/// A MATLAB v5 `.mat` file, read as every numeric variable and as an ABU scene.
pub fn mat(data: &[u8], scratch: &Path) {
    let path = scratch.join("scene.mat");
    if std::fs::write(&path, data).is_ok() {
        let _ = crate::hsi::mat::read_arrays(&path);
        let _ = crate::hsi::mat::read_scene(&path);
    }
}

/// A PyTorch checkpoint (zip or legacy pickle), read as a state dict.
pub fn pytorch(data: &[u8], scratch: &Path) {
    let path = scratch.join("weights.pth");
    if std::fs::write(&path, data).is_ok() {
        let _ = crate::io::pytorch::read_state_dict(&path);
    }
}

/// One alert-journal segment: opened (which checks and repairs its tail) and replayed.
pub fn journal(data: &[u8], scratch: &Path) {
    let dir = scratch.join("journal");
    let _ = std::fs::remove_dir_all(&dir);
    // Named after the first id its header claims (bytes 8..16), as the journal names them,
    // so that inputs get past the name check into the records.
    let first_id = data
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(1, u64::from_le_bytes);
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join(format!("seg-{first_id:020}.log")), data).is_err()
    {
        return;
    }
    if let Ok(journal) = crate::sinks::journal::Journal::open(&dir, &["fuzz"])
        && let Ok(replay) = journal.pending("fuzz")
    {
        for alert in replay {
            if alert.is_err() {
                break;
            }
        }
    }
}

/// A per-process scratch directory under the system temp dir, for the fuzz targets.
pub fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
