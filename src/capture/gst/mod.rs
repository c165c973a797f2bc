//! GStreamer capture through `appsink`.
//!
//! The user names any source (a test source, a file, `v4l2src`, `rtspsrc`…) as a
//! `gst-launch-1.0` fragment; vigil appends the conversion it needs so that GStreamer, not
//! vigil, does the colour conversion, scaling and resampling, on whichever element the platform
//! accelerates. The appsink only ever holds a few buffers: the capture thread pulls them at once
//! and the pipeline's own drop-oldest channel decides what is lost, so every drop is counted.

mod appsink;
mod av;
mod media_file;

pub use super::GstSettings;
pub use appsink::{GstConfig, GstSource, GstStream, OnStart};
pub use av::{AvConfig, AvSource};
pub use media_file::{AvFile, decode_audio_file, decode_video_file, write_av_file};

use super::CaptureError;

/// Initialises GStreamer (idempotent and cheap after the first call).
pub fn init() -> Result<(), CaptureError> {
    gstreamer::init()
        .map_err(|err| CaptureError::Gst(format!("cannot initialise GStreamer: {err}")))
}
