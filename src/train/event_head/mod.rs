//! `vigil-train audio-events fit`: what a surveillance box's audio labels need, learned and
//! fitted on labelled recordings.
//!
//! The data flow: [`features`] runs each part's recordings through the runtime's YAMNet
//! (scores, embedding, the event each patch holds); [`head`] trains a small head on the
//! training part's embeddings with burn and exports it for tract; [`settings`] chooses, per
//! label, the score (head or YAMNet's own classes), threshold and `open_after` on the
//! validation part for a false-alarm budget; [`fit`] ties them together, reports the test
//! part under the settings it never saw, and installs the head in a model manifest.

pub mod features;
pub mod fit;
pub mod head;
pub mod settings;

use std::path::PathBuf;

/// Why a fit failed; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum EventHeadError {
    #[error("{}: {problem}", path.display())]
    Data { path: PathBuf, problem: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Detector(#[from] crate::detector::DetectorError),
    #[error(transparent)]
    Stage(#[from] crate::pipeline::StageError),
    #[error(transparent)]
    Wav(#[from] crate::io::wav::WavError),
    #[error(transparent)]
    Events(#[from] crate::eval::events::EventEvalError),
    #[error(transparent)]
    Recording(#[from] crate::eval::recording::RecordingError),
    #[error(transparent)]
    Manifest(#[from] crate::train::manifest::ManifestWriteError),
    #[error(transparent)]
    Run(#[from] crate::train::run::RunError),
}
