//! Audio events with YAMNet: log-mel patches of 0.96 s every 0.48 s, AudioSet class scores,
//! alerts for the classes a surveillance box cares about. The 1024-d embedding is exposed for
//! the audio-visual violence model.

mod decide;
mod labels;
mod model;
mod prepare;

pub use decide::{
    AudioEventsDecide, AudioEventsSettings, EventClass, SettingsError, default_labels,
};
pub use labels::{ClassMap, HEAD_PREFIX, LabelError};
pub use model::{ClassScores, YamnetDetector};
pub use prepare::{AudioEventsPrepare, MelPatch, input_quantization};
