//! Capture: sources of video frames, audio blocks and hyperspectral lines.
//!
//! A [`Source`] is something that can be started, read until it ends or fails, and stopped.
//! The [`supervisor`] owns one and restarts it with backoff, so a camera that vanishes costs
//! frames, never the pipeline.

#[cfg(feature = "gst")]
pub mod gst;
pub mod gst_settings;
pub mod pushbroom;
pub mod sample;
pub mod supervisor;
pub mod synth;
pub mod v4l2;

pub use gst_settings::GstSettings;
pub use sample::{AudioBlock, FeatureRow, Sample, Stamp, VideoFrame, pack_rgb_rows};

/// Why a source could not start or stopped delivering.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("V4L2: {0}")]
    V4l2(#[from] v4l2::V4l2Error),
    #[error("{what} is not supported: {detail}")]
    Unsupported { what: &'static str, detail: String },
    #[error("source {source_name} delivered a malformed buffer: {detail}")]
    Malformed { source_name: String, detail: String },
    #[error("end of stream on {source_name}")]
    EndOfStream { source_name: String },
    #[error("source {source_name} delivered nothing for {after:?}")]
    Stalled {
        source_name: String,
        after: std::time::Duration,
    },
    #[error("I/O on {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

/// A capture device or stream. Implementations block in [`Source::next`]; the supervisor runs
/// each on its own thread.
pub trait Source: Send {
    /// Opens the device or builds the pipeline and starts capture. Called again after a failure.
    fn start(&mut self) -> Result<(), CaptureError>;
    /// Blocks until the next sample. `Ok(None)` is the end of the stream.
    fn next(&mut self) -> Result<Option<Sample>, CaptureError>;
    /// Releases the device; `start` may follow.
    fn stop(&mut self);
    /// A short human-readable description for logs (pipeline string, device path).
    fn describe(&self) -> String;
    /// A flag that, once set from another thread, makes a blocked [`Source::next`] return
    /// `Ok(None)` soon; sources that never block for long need none.
    fn interrupter(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

impl Source for Box<dyn Source> {
    fn start(&mut self) -> Result<(), CaptureError> {
        (**self).start()
    }

    fn next(&mut self) -> Result<Option<Sample>, CaptureError> {
        (**self).next()
    }

    fn stop(&mut self) {
        (**self).stop()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }

    fn interrupter(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        (**self).interrupter()
    }
}
