//! ONNX export of burn modules, written with tract's own protobuf types.
//!
//! Why not burn-onnx's exporter: in 0.22 it rejects Softmax, LayerNorm and GELU/Erf (so no
//! transformer) and exports a module holding a BatchNorm only once. Writing the graph ourselves
//! costs one `ExportOnnx` impl per layer type and gives full control over the operator forms,
//! which matters here: the int8 study fixed exactly which forms tract runs on int8 kernels.

pub mod graph;
pub mod layers;
mod ops;

use std::path::PathBuf;

pub use graph::{Attr, ElemType, OPSET, OnnxGraph, Value, load, save};
pub use layers::{ExportOnnx, parameter, tensor_values};
pub use tract_onnx::pb::ModelProto;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("two values in the graph are named {0:?}")]
    DuplicateName(String),
    #[error("tensor {name:?} has shape {shape:?} but {len} values")]
    ShapeMismatch {
        name: String,
        shape: Vec<usize>,
        len: usize,
    },
    #[error("{op} cannot take inputs of shapes {shapes:?}")]
    Incompatible { op: String, shapes: Vec<Vec<usize>> },
    #[error("cannot read the weights of {name}: {reason}")]
    Weights { name: String, reason: String },
    #[error("not exportable: {0}")]
    Unsupported(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ONNX model: {reason}")]
    Decode { path: PathBuf, reason: String },
}
