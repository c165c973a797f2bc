//! The surveillance box's pipeline stages: synchronised video and audio cut into snippets
//! ([`SnippetPrepare`]), each snippet's three feature vectors and its live MAVD scores on a
//! sliding window ([`MavdDetect`]), and violence alerts with the modalities that fired
//! ([`ViolenceAlerts`]).

use std::time::Duration;

use super::decide::{ViolenceDecide, ViolenceSettings};
use super::extract::SnippetExtractor;
use super::snippet::{Snippet, SnippetAssembler, SnippetConfig, SnippetStats};
use super::window::{SnippetFeatures, SnippetScores, StreamingScorer};
use crate::alert::{Alert, Name};
use crate::capture::{Sample, Stamp};
use crate::decide::{AlertFactory, NameTooLong, name};
use crate::pipeline::{Decide, Detect, Prepare, StageError};

/// The label of violence alerts.
pub const LABEL: &str = "violence";

/// Samples to snippets.
#[derive(Debug)]
pub struct SnippetPrepare {
    assembler: SnippetAssembler,
    /// What the log last said about lost or late media.
    reported: SnippetStats,
}

impl SnippetPrepare {
    pub fn new(config: SnippetConfig) -> Self {
        Self {
            assembler: SnippetAssembler::new(config, true),
            reported: SnippetStats::default(),
        }
    }

    /// Says in the log when frames or audio were lost, once per change.
    fn report(&mut self) {
        let stats = self.assembler.stats();
        let faults = |s: &SnippetStats| {
            (
                s.frames_repeated,
                s.frames_dropped,
                s.snippets_short_of_audio,
                s.audio_overlap_dropped,
            )
        };
        if faults(&stats) != faults(&self.reported) {
            log::warn!(
                "snippets so far {}: {} lost frames filled, {} frames dropped with cut snippets, \
                 {} snippets short of audio, {} overlapping audio samples dropped",
                stats.snippets,
                stats.frames_repeated,
                stats.frames_dropped,
                stats.snippets_short_of_audio,
                stats.audio_overlap_dropped
            );
            self.reported = stats;
        }
    }
}

/// What the head scores next: a snippet of media to extract, or features extracted already.
#[derive(Debug, Clone)]
pub enum SnippetInput {
    Media(Snippet),
    Features {
        start: Duration,
        end: Duration,
        features: SnippetFeatures,
    },
}

impl Prepare for SnippetPrepare {
    type Output = SnippetInput;

    fn prepare(
        &mut self,
        sample: &Sample,
        emit: &mut dyn FnMut(Stamp, SnippetInput),
    ) -> Result<(), StageError> {
        let stamp = *sample.stamp();
        let snippets = match sample {
            Sample::Video(frame) => self.assembler.push_video(frame.clone()),
            Sample::Audio(block) => self.assembler.push_audio(block.clone()),
            Sample::Features(row) => {
                emit(
                    stamp,
                    SnippetInput::Features {
                        start: row.stamp.pts,
                        end: row.stamp.pts + row.duration,
                        features: SnippetFeatures {
                            video: row.video.clone(),
                            audio: row.audio.clone(),
                            flow: row.flow.clone(),
                        },
                    },
                );
                return Ok(());
            }
            Sample::Spectral(_) => {
                return Err(StageError {
                    stage: "snippets",
                    detail: "a violence stream takes video and audio, not spectral lines".into(),
                });
            }
        }
        .map_err(|err| StageError {
            stage: "snippets",
            detail: err.to_string(),
        })?;
        for snippet in snippets {
            emit(stamp, SnippetInput::Media(snippet));
        }
        self.report();
        Ok(())
    }

    /// Snippets still waiting for their audio go out with what there is.
    fn finish(&mut self, last: Stamp, emit: &mut dyn FnMut(Stamp, SnippetInput)) {
        for snippet in self.assembler.finish() {
            emit(last, SnippetInput::Media(snippet));
        }
        self.report();
    }
}

/// One snippet's live scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViolenceScores {
    pub start: Duration,
    pub end: Duration,
    pub live: SnippetScores,
}

/// Snippets to live scores: the three extractors (for media), then the head on the window of
/// the newest snippets.
pub struct MavdDetect {
    /// None for streams of pre-extracted features.
    extractor: Option<SnippetExtractor>,
    scorer: StreamingScorer,
}

impl MavdDetect {
    pub fn new(extractor: Option<SnippetExtractor>, scorer: StreamingScorer) -> Self {
        Self { extractor, scorer }
    }
}

impl Detect for MavdDetect {
    type Input = SnippetInput;
    type Output = ViolenceScores;

    fn detect(&mut self, input: SnippetInput) -> Result<ViolenceScores, StageError> {
        let (start, end, features) = match input {
            SnippetInput::Features {
                start,
                end,
                features,
            } => (start, end, features),
            SnippetInput::Media(snippet) => {
                let extractor = self.extractor.as_mut().ok_or_else(|| StageError {
                    stage: "features",
                    detail: "this stream was built for pre-extracted features, not media".into(),
                })?;
                let extracted = extractor.extract(&snippet).map_err(|err| StageError {
                    stage: "features",
                    detail: err.to_string(),
                })?;
                (snippet.start, snippet.end, extracted.features)
            }
        };
        let pushed = self.scorer.push(&features).map_err(|err| StageError {
            stage: "MAVD head",
            detail: err.to_string(),
        })?;
        Ok(ViolenceScores {
            start,
            end,
            live: pushed.live,
        })
    }
}

/// Live scores to alerts.
pub struct ViolenceAlerts {
    decide: ViolenceDecide,
    factory: AlertFactory,
    label: Name,
    threshold: f32,
    event: u64,
    last: Option<Stamp>,
    /// The live scores last decided on: the fused score and each unimodal head's.
    live: [f32; 4],
    /// Names of the unimodal heads' scores.
    heads: [Name; 3],
}

impl ViolenceAlerts {
    pub fn new(stream: &str, model: &str, settings: ViolenceSettings) -> Result<Self, String> {
        let names = |err: NameTooLong| err.to_string();
        Ok(Self {
            decide: ViolenceDecide::new(settings)?,
            factory: AlertFactory::new(stream, model).map_err(names)?,
            label: name("alert label", LABEL).map_err(names)?,
            threshold: settings.fused.on,
            event: 0,
            last: None,
            live: [f32::NAN; 4],
            heads: [
                name("score name", "video").map_err(names)?,
                name("score name", "audio").map_err(names)?,
                name("score name", "flow").map_err(names)?,
            ],
        })
    }

    fn alert(
        &mut self,
        transition: super::decide::ViolenceTransition,
        stamp: &Stamp,
        emit: &mut dyn FnMut(Alert),
    ) {
        let mut alert = self.factory.make(
            &self.label,
            &mut self.event,
            self.threshold,
            transition.transition,
            stamp,
            &[],
        );
        // At most "video+audio+flow": always fits a name.
        alert.modalities = Name::try_from(transition.modalities.names().join("+").as_str())
            .ok()
            .filter(|names| !names.is_empty());
        emit(alert);
    }
}

impl Decide for ViolenceAlerts {
    type Input = ViolenceScores;

    fn decide(&mut self, stamp: Stamp, scores: ViolenceScores, emit: &mut dyn FnMut(Alert)) {
        // Alerts carry the snippet's stream time: that is when it happened.
        let at = Stamp {
            pts: scores.end,
            ..stamp
        };
        let live = &scores.live;
        self.live = [live.fused, live.video, live.audio, live.flow];
        if let Some(transition) = self.decide.observe(&scores.live, scores.start, scores.end) {
            self.alert(transition, &at, emit);
        }
        self.last = Some(at);
    }

    fn finish(&mut self, emit: &mut dyn FnMut(Alert)) {
        let Some(last) = self.last else { return };
        if let Some(transition) = self.decide.finish() {
            self.alert(transition, &last, emit);
        }
    }

    /// The fused score under the alert's label, then the video, audio and flow heads' (which
    /// only explain an alert, but show what each branch made of a scene).
    fn scores(&self) -> Vec<(Name, f32)> {
        std::iter::once(&self.label)
            .chain(&self.heads)
            .cloned()
            .zip(self.live)
            .collect()
    }
}

/// `[stream.violence]`: where the two branches start in the source's pipeline, and the
/// decision thresholds. Streams of pre-extracted features need neither branch.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViolenceStreamSettings {
    /// The element the video branch starts from, in launch syntax: `src.` after
    /// `decodebin name=src`, or `cam.` after `v4l2src name=cam`.
    #[serde(default)]
    pub video_from: String,
    /// The element the audio branch starts from (`src.`, `mic.`).
    #[serde(default)]
    pub audio_from: String,
    /// Hysteresis on the fused score; absent: open at the model's manifest threshold and end
    /// below half of it.
    #[serde(default)]
    pub fused: Option<crate::decide::Hysteresis>,
    /// A unimodal head at or above this during an event names its modality in the alert.
    #[serde(default = "default_modality_on")]
    pub modality_on: f32,
}

fn default_modality_on() -> f32 {
    0.5
}

impl Default for ViolenceStreamSettings {
    fn default() -> Self {
        Self {
            video_from: String::new(),
            audio_from: String::new(),
            fused: None,
            modality_on: default_modality_on(),
        }
    }
}

impl ViolenceStreamSettings {
    /// The decision settings, with the model's threshold where the profile sets none.
    pub fn decision(&self, threshold: f32) -> ViolenceSettings {
        ViolenceSettings {
            fused: self
                .fused
                .unwrap_or_else(|| crate::decide::Hysteresis::new(threshold, threshold / 2.0)),
            modality_on: self.modality_on,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::capture::{AudioBlock, VideoFrame};

    fn stamp(pts: Duration, seq: u64) -> Stamp {
        Stamp {
            pts,
            captured_at: SystemTime::UNIX_EPOCH,
            seq,
        }
    }

    #[test]
    fn a_snippet_still_waiting_for_audio_goes_out_when_the_stream_ends() {
        let mut prepare = SnippetPrepare::new(SnippetConfig::default());
        let mut emitted = Vec::new();
        // Half a second of audio, then 16 frames: the snippet waits for audio up to 0.667 s.
        let audio = Sample::Audio(AudioBlock {
            stamp: stamp(Duration::ZERO, 0),
            rate: 16_000,
            samples: vec![0.1; 8_000],
        });
        prepare
            .prepare(&audio, &mut |at, input| emitted.push((at, input)))
            .unwrap();
        let frame_time = Duration::from_secs(1) / 24;
        let mut last = stamp(Duration::ZERO, 0);
        for i in 0..16u32 {
            last = stamp(frame_time * i, u64::from(i));
            let frame = Sample::Video(VideoFrame {
                stamp: last,
                width: 2,
                height: 2,
                rgb: vec![0; 12],
            });
            prepare
                .prepare(&frame, &mut |at, input| emitted.push((at, input)))
                .unwrap();
        }
        assert!(emitted.is_empty(), "the snippet waits for its audio");
        prepare.finish(last, &mut |at, input| emitted.push((at, input)));
        let [(at, SnippetInput::Media(snippet))] = emitted.as_slice() else {
            panic!("expected the waiting snippet, got {emitted:?}");
        };
        assert_eq!(*at, last);
        assert_eq!(snippet.frames.len(), 16);
        assert!(snippet.audio_missing > 0);
    }
}
