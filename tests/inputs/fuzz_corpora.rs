//! Replays every kept fuzz corpus (`fuzz/corpus/<target>/`) through the parser its target
//! feeds, on stable Rust: the short fuzz run of the test command. Any input that once made a
//! parser panic is kept in its corpus, so this fails if the bug comes back.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{}: an empty corpus replays nothing",
        dir.display()
    );
    files
}

fn replay(target: &str, feed: impl Fn(&[u8], &Path)) {
    let scratch =
        std::env::temp_dir().join(format!("vigil-fuzz-replay-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    for input in corpus(target) {
        let bytes = std::fs::read(&input).unwrap();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| feed(&bytes, &scratch)));
        assert!(outcome.is_ok(), "{target}: {} panicked", input.display());
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn profiles() {
    replay("profile", |data, _| vigil::fuzzing::profile(data));
}

#[test]
fn manifests() {
    replay("manifest", vigil::fuzzing::manifest);
}

#[test]
fn envi_scenes() {
    replay("envi", vigil::fuzzing::envi);
}

#[test]
fn npy_arrays() {
    replay("npy", |data, _| vigil::fuzzing::npy(data));
}

#[test]
fn mat_files() {
    replay("mat", vigil::fuzzing::mat);
}

#[test]
fn pytorch_checkpoints() {
    replay("pytorch", vigil::fuzzing::pytorch);
}

#[test]
fn journal_segments() {
    replay("journal", vigil::fuzzing::journal);
}
