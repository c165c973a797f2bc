//! Audio-visual violence: MAVD heads (arXiv 2501.07496) scoring per-snippet video, audio and
//! optical-flow features. A snippet is 16 frames at 24 fps with the 0.96 s of audio that ends
//! where the snippet ends (XD-Violence's protocol).

pub mod decide;
#[cfg(feature = "gst")]
pub mod demo;
pub mod extract;
pub mod features;
pub mod kernel;
pub mod replay;
pub mod snippet;
pub mod stages;
#[cfg(feature = "gst")]
pub mod staging;
pub mod window;
