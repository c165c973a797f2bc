//! Prepare: sensor data to model tensors.

pub mod imagenet;
pub mod mel;
pub mod resize;
