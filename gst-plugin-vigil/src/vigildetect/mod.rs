//! The `vigildetect` element.

use gst::glib;
use gst::prelude::*;

mod imp;

/// Name of the custom meta carrying scores: a structure with `stream`, `model`, `pts` (ns)
/// and one `f64` field per alert label.
pub const SCORE_META: &str = "VigilScoreMeta";
/// Name of the structure of the element messages carrying alerts.
pub const ALERT_MESSAGE: &str = "vigil-alert";

glib::wrapper! {
    pub struct VigilDetect(ObjectSubclass<imp::VigilDetect>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    if !gst::meta::CustomMeta::is_registered(SCORE_META) {
        gst::meta::CustomMeta::register(SCORE_META, &[]);
    }
    gst::Element::register(
        Some(plugin),
        "vigildetect",
        gst::Rank::NONE,
        VigilDetect::static_type(),
    )
}
