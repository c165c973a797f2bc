//! What a source hands to the rest of the pipeline: one video frame or one block of audio,
//! stamped with the stream time and the wall-clock time at which the sensor captured it.

use std::time::{Duration, SystemTime};

/// Where and when a sample was captured; every later message carries it so that latency is
/// measured from the sensor, not from the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    /// Position in the stream (GStreamer PTS, V4L2 timestamp, or samples / rate).
    pub pts: Duration,
    /// Wall-clock time of capture.
    pub captured_at: SystemTime,
    /// Counts samples of this stream from 0, across source restarts.
    pub seq: u64,
}

/// A packed RGB24 frame, rows without padding (`data.len() == width * height * 3`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    pub stamp: Stamp,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Mono f32 samples in [-1, 1] at `rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    /// Stamp of the first sample of the block.
    pub stamp: Stamp,
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// One unit of captured data.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Video(VideoFrame),
    Audio(AudioBlock),
    /// One push-broom hyperspectral line.
    Spectral(super::pushbroom::SpectralLine),
}

impl Sample {
    pub fn stamp(&self) -> &Stamp {
        match self {
            Sample::Video(f) => &f.stamp,
            Sample::Audio(a) => &a.stamp,
            Sample::Spectral(l) => &l.stamp,
        }
    }
}
