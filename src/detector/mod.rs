//! Detector: models on tract. A [`Plan`] is loaded, verified and optimized once, then shared
//! read-only; each thread that runs it owns a [`Session`] with its own scratch state.

mod digest;
mod engine;
pub mod inspect;
pub mod manifest;

use std::path::PathBuf;

pub use engine::{Plan, Session};
pub use manifest::{ElementType, FileSpec, Manifest, ModelSpec, TensorSpec};

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("model manifest: {detail}: {path}")]
    Manifest { detail: String, path: PathBuf },
    #[error("no model named {name:?} in the manifest (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error("model {model}: file not found (fetch it with `{fetch}`): {path}")]
    MissingFile {
        model: String,
        fetch: String,
        path: PathBuf,
    },
    #[error("model {model}: sha256 mismatch, expected {expected}, got {got}: {path}")]
    Sha256Mismatch {
        model: String,
        expected: String,
        got: String,
        path: PathBuf,
    },
    #[error("model {model}: not a loadable ONNX model ({detail}): {path}")]
    Onnx {
        model: String,
        detail: String,
        path: PathBuf,
    },
    #[error("model {model}: tensor {tensor}: expected {expected}, got {got}")]
    Tensor {
        model: String,
        tensor: String,
        expected: String,
        got: String,
    },
    #[error("model {model}: inference failed: {detail}")]
    Run { model: String, detail: String },
    #[error("{detail}: {path}")]
    Io { detail: String, path: PathBuf },
}
