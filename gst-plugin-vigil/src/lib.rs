//! vigil's detectors inside any GStreamer pipeline, in the style of gst-plugins-rs: one
//! element per module.
//!
//! `vigildetect` runs the detector of one stream of a vigil profile on the buffers passing
//! through it (mono F32LE audio at the model's rate, or RGB frames at the profile's capture
//! size), attaches each score to the buffer that completed the model input as a
//! `VigilScoreMeta` custom meta, and posts every alert record as a `vigil-alert` element
//! message on the bus. Buffers pass through unchanged.

mod vigildetect;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    vigildetect::register(plugin)
}

gst::plugin_define!(
    vigil,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "Apache 2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://example.invalid/vigil"
);
