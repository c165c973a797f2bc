//! Prepare: sensor data to model tensors.

pub mod mel;
pub mod resize;
