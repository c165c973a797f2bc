//! Readers and writers of the file formats vigil exchanges with other tools.

pub mod npy;
pub mod png;
pub mod pytorch;
pub mod wav;
