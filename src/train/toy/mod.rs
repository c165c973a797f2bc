//! The toy family: a tiny classifier on synthetic texture patches that exercises the whole
//! training chain in seconds (what the tests and CI run).

pub mod data;
pub mod model;
pub mod pipeline;
pub mod train;

pub use model::{ToyNet, ToyNetConfig};
