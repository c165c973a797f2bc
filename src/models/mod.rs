//! Model families. Each has the same parts: `prepare` (sensor data to tensors), `model` (the
//! tract side), `decide` (scores to alerts).

pub mod audio_events;
pub mod hyperspectral;
pub mod industrial;
pub mod violence;
