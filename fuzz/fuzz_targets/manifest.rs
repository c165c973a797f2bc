#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil::fuzzing::manifest(data, SCRATCH.get_or_init(vigil::fuzzing::scratch_dir))
});
