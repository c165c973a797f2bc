//! Model files that are not what the manifest promises are refused with an error that names
//! the file, before tract parses anything it should not.

use std::path::Path;

use sha2::{Digest, Sha256};
use vigil::detector::{DetectorError, Manifest, Plan};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A manifest in `dir` listing one model file with the given bytes and its true sha256.
fn manifest_with(dir: &Path, bytes: &[u8]) -> Manifest {
    std::fs::write(dir.join("model.onnx"), bytes).unwrap();
    let text = format!(
        r#"
[[model]]
name = "m"
family = "audio_events"
description = "test"
source = "test"
files = [{{ path = "model.onnx", sha256 = "{}" }}]
inputs = [{{ name = "x", dtype = "f32", shape = [1, 4] }}]
outputs = [{{ name = "y", dtype = "f32", shape = [1, 4] }}]
threshold = 0.5
"#,
        sha256(bytes)
    );
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
    Manifest::load(&dir.join("manifest.toml")).unwrap()
}

#[test]
fn garbage_is_not_an_onnx_model() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(dir.path(), b"this is not protobuf at all \xff\xff\xff");
    let err = Plan::load(&manifest, "m").unwrap_err();
    assert!(matches!(err, DetectorError::Onnx { .. }), "{err}");
    assert!(err.to_string().contains("model.onnx"), "{err}");
}

#[test]
fn a_truncated_model_is_refused() {
    let shipped = Manifest::shipped().unwrap();
    let yamnet = shipped.model("yamnet").unwrap();
    let bytes = std::fs::read(shipped.path_of(yamnet.onnx_file())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(dir.path(), &bytes[..bytes.len() / 3]);
    let err = Plan::load(&manifest, "m").unwrap_err();
    assert!(matches!(err, DetectorError::Onnx { .. }), "{err}");
}

#[test]
fn a_missing_file_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(dir.path(), b"x");
    std::fs::remove_file(dir.path().join("model.onnx")).unwrap();
    let err = Plan::load(&manifest, "m").unwrap_err().to_string();
    assert!(
        err.contains("not found") && err.contains("model.onnx"),
        "{err}"
    );
}

#[test]
fn malformed_manifests_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.toml");
    std::fs::write(&path, "[[model]]\nname = \"m\"\nfamly = \"x\"\n").unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("famly") && err.contains("manifest.toml"),
        "{err}"
    );
    std::fs::write(
        &path,
        r#"[[model]]
name = "m"
family = "f"
description = ""
source = ""
files = [{ path = "a", sha256 = "abc" }]
inputs = [{ name = "x", dtype = "f32", shape = [1] }]
outputs = [{ name = "y", dtype = "f32", shape = [1] }]
threshold = 0.5
"#,
    )
    .unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(err.contains("malformed sha256"), "{err}");
    assert!(matches!(
        Manifest::shipped().unwrap().model("nope"),
        Err(DetectorError::UnknownModel { .. })
    ));
}
