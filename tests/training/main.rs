//! `vigil-train` end to end on small configurations: every family's data making, training,
//! export (checked against burn), quantization, evaluation and install into a manifest the
//! runtime loads, then the bad inputs of each command. Needs the `train` feature.

#[path = "../common/mod.rs"]
mod common;

mod audio_events_fit;
mod fers_edge;
mod isstad_edge;
mod mavd_edge_data;
mod mavd_extract;
mod mavd_heads;
mod mavd_training;
mod mobilenet;
mod patchcore;
mod train_toy;
