//! A labelled recording scored by a violence stream: the recording's sound played under
//! footage of a scene, video frames and audio blocks pushed in time order through the
//! stream's own stages (snippets, extractors, the MAVD window, its hysteresis), as the camera
//! and its microphone deliver them on one clock.
//!
//! This answers what the staged clips MAVD-edge was chosen on cannot: what the box does when a
//! violent sound happens in a scene where nothing moves violently, and when a calm scene is
//! loud with friendly sound. The alerts go to [`super::events`]' rule like every other.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::recording::{RecordingError, RecordingRun};
use crate::capture::{AudioBlock, Sample, Stamp, VideoFrame};
use crate::io::wav::Recording;
use crate::runtime::{InlineDetector, Media};

/// Audio is pushed in 40 ms blocks, a common capture period for cameras' microphones.
const AUDIO_BLOCK: Duration = Duration::from_millis(40);

/// Decoded footage of a scene, frames at the stream's size and rate.
#[derive(Debug, Clone)]
pub struct Footage {
    pub path: PathBuf,
    /// Packed RGB frames.
    pub frames: Vec<Vec<u8>>,
}

impl Footage {
    /// Frame `index` of the footage played forward, then backward, then forward again: a
    /// recording longer than the footage loops without a cut, which the flow features would
    /// see as a burst of motion.
    pub fn frame(&self, index: usize) -> &[u8] {
        let n = self.frames.len();
        if n < 2 {
            return &self.frames[0];
        }
        let period = 2 * n - 2;
        let at = index % period;
        &self.frames[if at < n { at } else { period - at }]
    }

    /// The footage from `fraction` (0–1) of its length on: the part of a recording a model
    /// was not trained on (MAVD-edge trained on the first 70 % of its long recordings).
    pub fn from_fraction(mut self, fraction: f64) -> Result<Self, RecordingError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(RecordingError::Input {
                path: self.path,
                problem: format!("footage from {fraction} of its length: expected 0 to below 1"),
            });
        }
        let first = (self.frames.len() as f64 * fraction).floor() as usize;
        self.frames.drain(..first.min(self.frames.len() - 1));
        Ok(self)
    }

    /// Decodes `path` to the frames `detector` takes.
    #[cfg(feature = "gst")]
    pub fn decode(path: &Path, detector: &InlineDetector) -> Result<Self, RecordingError> {
        let input = |problem: String| RecordingError::Input {
            path: path.to_path_buf(),
            problem,
        };
        let SceneFormat {
            width,
            height,
            frames_per_second,
            ..
        } = format_of(detector, path)?;
        let frames = crate::capture::gst::decode_video_file(path, width, height, frames_per_second)
            .map_err(|err| input(err.to_string()))?;
        if frames.is_empty() {
            return Err(input("decodes to no video frames".into()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            frames,
        })
    }

    /// Decoding needs GStreamer, which this build leaves out.
    #[cfg(not(feature = "gst"))]
    pub fn decode(path: &Path, _detector: &InlineDetector) -> Result<Self, RecordingError> {
        Err(RecordingError::Input {
            path: path.to_path_buf(),
            problem: "decoding footage needs vigil built with its `gst` feature".into(),
        })
    }
}

/// The stream's audio rate, frame width and height and frames per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneFormat {
    pub rate: u32,
    pub width: u32,
    pub height: u32,
    pub frames_per_second: u32,
}

/// The format a violence stream's `detector` takes; refused, naming `path`, for any other.
fn format_of(detector: &InlineDetector, path: &Path) -> Result<SceneFormat, RecordingError> {
    match detector.media() {
        Media::AudioVisual {
            rate,
            width,
            height,
            frames_per_second,
        } => Ok(SceneFormat {
            rate,
            width,
            height,
            frames_per_second,
        }),
        _ => Err(RecordingError::Input {
            path: path.to_path_buf(),
            problem: format!(
                "stream {} runs {}, which takes one medium; footage is for violence streams",
                detector.stream(),
                detector.model()
            ),
        }),
    }
}

/// Refuses a recording a violence stream's `detector` cannot take (another stream, another
/// sample rate, no samples); the format it takes otherwise.
pub fn check_input(
    detector: &InlineDetector,
    recording: &Recording,
    path: &Path,
) -> Result<SceneFormat, RecordingError> {
    let format = format_of(detector, path)?;
    super::recording::check_rate(detector, recording, path, format.rate)?;
    Ok(format)
}

/// Runs `recording` (read from `path`) under `footage` through `detector`, a violence
/// stream's, from a fresh start: frames at the stream's rate for the recording's length,
/// each preceded by the audio that starts before it ends.
pub fn run_scene(
    detector: &mut InlineDetector,
    recording: &Recording,
    footage: &Footage,
    path: &Path,
) -> Result<RecordingRun, RecordingError> {
    let SceneFormat {
        rate,
        width,
        height,
        frames_per_second,
    } = check_input(detector, recording, path)?;
    let frame_bytes = width as usize * height as usize * 3;
    if let Some(frame) = footage.frames.iter().find(|f| f.len() != frame_bytes) {
        return Err(RecordingError::Input {
            path: footage.path.clone(),
            problem: format!(
                "a frame of {} bytes, the stream takes {width}×{height} RGB ({frame_bytes})",
                frame.len()
            ),
        });
    }
    let stage_error = |at: Duration, err: crate::pipeline::StageError| RecordingError::Stage {
        path: path.to_path_buf(),
        at: at.as_secs_f64(),
        detail: err.to_string(),
    };
    let started = Instant::now();
    let mut run = RecordingRun {
        duration_s: recording.duration_s(),
        ..RecordingRun::default()
    };
    let push = |detector: &mut InlineDetector,
                run: &mut RecordingRun,
                sample: Sample|
     -> Result<(), RecordingError> {
        let pts = sample.stamp().pts;
        let result = detector
            .push(&sample)
            .map_err(|err| stage_error(pts, err))?;
        run.add(result);
        Ok(())
    };
    let stamp = |pts: Duration, seq: u64| Stamp {
        pts,
        captured_at: SystemTime::now(),
        seq,
    };
    let block = (AUDIO_BLOCK.as_secs_f64() * f64::from(rate)).round() as usize;
    let block_start =
        |index: usize| Duration::from_secs_f64((index * block) as f64 / f64::from(rate));
    let mut blocks = recording.samples.chunks(block).enumerate().peekable();
    let frame_time = Duration::from_secs(1) / frames_per_second;
    let frame_count = (run.duration_s * f64::from(frames_per_second)).floor() as usize;
    for index in 0..frame_count {
        let end_of_frame = frame_time * (index as u32 + 1);
        while let Some((at, samples)) = blocks.next_if(|(at, _)| block_start(*at) < end_of_frame) {
            let sample = Sample::Audio(AudioBlock {
                stamp: stamp(block_start(at), at as u64),
                rate,
                samples: samples.to_vec(),
            });
            push(detector, &mut run, sample)?;
        }
        let sample = Sample::Video(VideoFrame {
            stamp: stamp(frame_time * index as u32, index as u64),
            width,
            height,
            rgb: footage.frame(index).to_vec(),
        });
        push(detector, &mut run, sample)?;
    }
    for (at, samples) in blocks {
        let sample = Sample::Audio(AudioBlock {
            stamp: stamp(block_start(at), at as u64),
            rate,
            samples: samples.to_vec(),
        });
        push(detector, &mut run, sample)?;
    }
    run.alerts.extend(detector.finish());
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footage_longer_than_its_frames_plays_back_and_forth_without_a_cut() {
        let footage = Footage {
            path: "f".into(),
            frames: (0..4u8).map(|i| vec![i]).collect(),
        };
        let order: Vec<u8> = (0..10).map(|i| footage.frame(i)[0]).collect();
        assert_eq!(order, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        let still = Footage {
            path: "f".into(),
            frames: vec![vec![9]],
        };
        assert_eq!(still.frame(5), [9]);
        let tail = footage.clone().from_fraction(0.7).unwrap();
        assert_eq!(tail.frames, [vec![2], vec![3]]);
        assert!(footage.from_fraction(1.0).is_err());
    }
}
