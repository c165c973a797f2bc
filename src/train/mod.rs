//! The training companion behind `vigil-train` (cargo feature `train`).
//!
//! The data flow mirrors the runtime's hand-offs, each checked: a family's burn module trains
//! on a [`backend`] chosen at run time, [`onnx`] writes its inference graph, [`parity`] runs
//! both on the same input, [`quantize`] rewrites the linear layers into the int8 form tract
//! runs on int8 kernels, and evaluation goes through the runtime's own tract path and
//! [`crate::eval`] metrics.

pub mod backend;
pub mod nn;
pub mod onnx;
pub mod parity;
pub mod pytorch;
pub mod toy;
