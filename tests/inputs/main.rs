//! Untrusted input through the public entry points: damaged or mislabelled model files, score
//! files and checkpoints that are wrong in every way a parser can see, and every kept fuzz
//! corpus replayed through the parser its target feeds. Each must end in an error that names
//! what was wrong, never a panic.

#[path = "../common/mod.rs"]
mod common;

mod bad_models;
mod eval_cli;
mod fuzz_corpora;
mod inspect_models;
mod torch_corrupt;
