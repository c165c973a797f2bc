//! How a profile names a GStreamer source. Kept outside the `gst` feature so that a build
//! without GStreamer still parses every profile and refuses such a source with a clear error.

use serde::Deserialize;

/// A GStreamer source as a profile declares it; the model decides what it is converted to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GstSettings {
    /// A `gst-launch-1.0` fragment that produces raw or decodable media, e.g.
    /// `videotestsrc is-live=true` or `filesrc location=a.wav ! decodebin`.
    pub pipeline: String,
    /// Play at the pipeline clock's pace (what a camera does). Off: as fast as possible.
    #[serde(default = "default_true")]
    pub sync: bool,
    /// A running source that delivers nothing for this long is treated as failed.
    #[serde(default = "default_stall_ms")]
    pub stall_timeout_ms: u64,
}

fn default_true() -> bool {
    true
}

fn default_stall_ms() -> u64 {
    5_000
}
