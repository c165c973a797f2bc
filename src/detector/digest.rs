//! The sha256 of a model file. Shared by the runtime and `build.rs` (which includes this file
//! by path, since a build script cannot use the crate it builds), so both check files alike.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex sha256 of a file, read in blocks so that large models do not sit in memory twice.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
