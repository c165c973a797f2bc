//! The toy family: a tiny classifier on synthetic texture patches that exercises the whole
//! training chain in seconds (what the tests and CI run).

pub mod model;

pub use model::{ToyNet, ToyNetConfig};
