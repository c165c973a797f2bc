//! FERS-edge (`../shared/reference/papers.md` §1) for edge CPUs: the two networks in burn,
//! trained on background cubes only, with checkpoints chosen on validation scenes, exported
//! to ONNX, quantized to int8 and evaluated through the runtime's tract path.

pub mod data;
pub mod export;
pub mod losses;
pub mod model;
pub mod pipeline;
pub mod train;
