//! A stream's stages run inline: one sample in, its scores and alerts out, on the caller's
//! thread. This is what the GStreamer element runs inside a pipeline it does not own, where
//! the pipeline's own streaming threads and queues replace vigil's.

use super::{
    HYPERSPECTRAL, MAVD_EDGE, Plans, RuntimeError, Stages, build_stages, manifest_of, stream_error,
};
use crate::alert::{Alert, Name};
use crate::capture::{Sample, Stamp};
use crate::pipeline::{Decide, Detect, Prepare, StageError};
use crate::profile::Profile;

/// The raw media a detector takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Mono f32 samples at this rate.
    Audio { rate: u32 },
    /// Packed RGB frames of this size.
    Video { width: u32, height: u32 },
    /// Mono f32 audio at `rate` and packed RGB frames of `width × height` at
    /// `frames_per_second`, on one clock: a violence stream, built only by
    /// [`InlineDetector::for_recordings`].
    AudioVisual {
        rate: u32,
        width: u32,
        height: u32,
        frames_per_second: u32,
    },
}

/// What one sample produced: the label scores of every model input it completed (an audio
/// buffer may complete none, one or several patches), and the alerts decided on them.
#[derive(Debug, Default)]
pub struct InlineResult {
    pub scores: Vec<(Stamp, Vec<(Name, f32)>)>,
    pub alerts: Vec<Alert>,
}

pub struct InlineDetector {
    stream: String,
    model: String,
    media: Media,
    stages: Stages,
    /// Stamp of the newest sample pushed, for what the stages still hold at the end.
    last: Option<Stamp>,
}

impl InlineDetector {
    /// The detector of the profile's stream `stream` (the first when None), running `model`
    /// instead of the stream's own when given. The stream's source is not used. Streams that
    /// take one medium only: violence streams are refused (see
    /// [`Self::audio_visual_from_profile`]).
    pub fn from_profile(
        profile: &Profile,
        stream: Option<&str>,
        model: Option<&str>,
    ) -> Result<Self, RuntimeError> {
        Self::build(profile, stream, model, false)
    }

    /// As [`Self::from_profile`], and a violence stream too: that one takes video frames and
    /// audio blocks interleaved in time order ([`Media::AudioVisual`]), as its camera and
    /// microphone deliver them on one clock. For scoring recordings, not for the element.
    pub fn for_recordings(
        profile: &Profile,
        stream: Option<&str>,
        model: Option<&str>,
    ) -> Result<Self, RuntimeError> {
        Self::build(profile, stream, model, true)
    }

    fn build(
        profile: &Profile,
        stream: Option<&str>,
        model: Option<&str>,
        audio_visual: bool,
    ) -> Result<Self, RuntimeError> {
        let mut settings = match stream {
            Some(name) => profile.streams.iter().find(|s| s.name == name),
            None => profile.streams.first(),
        }
        .cloned()
        .ok_or_else(|| RuntimeError::Stream {
            stream: stream.unwrap_or_default().into(),
            detail: "no such [[stream]] in the profile".into(),
        })?;
        if let Some(model) = model {
            settings.model = model.into();
        }
        let manifest = manifest_of(profile)?;
        let (family, stages) = build_stages(&settings, profile, &manifest, &mut Plans::new())?;
        let media = if family == MAVD_EDGE && audio_visual {
            // What the stream's snippet assembler and RGB extractor take.
            let snippets = crate::models::violence::snippet::SnippetConfig::default();
            let side = crate::models::violence::extract::RGB_SIDE as u32;
            Some(Media::AudioVisual {
                rate: snippets.audio_rate,
                width: side,
                height: side,
                frames_per_second: snippets.frames_per_second,
            })
        } else {
            super::media_for(family, &settings)
        };
        let media = media.ok_or_else(|| {
            let detail = if family == HYPERSPECTRAL {
                "hyperspectral streams take push-broom lines, not audio or video buffers".into()
            } else if family == MAVD_EDGE {
                "violence streams take video and audio together on one clock; the element \
                 takes one of them (run the profile with `vigil run`)"
                    .into()
            } else {
                format!("unknown family {family}")
            };
            stream_error(&settings, detail)
        })?;
        Ok(Self {
            stream: settings.name,
            model: settings.model,
            media,
            stages,
            last: None,
        })
    }

    pub fn media(&self) -> Media {
        self.media
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Runs one sample through prepare, detect and decide.
    pub fn push(&mut self, sample: &Sample) -> Result<InlineResult, StageError> {
        self.last = Some(*sample.stamp());
        let mut result = InlineResult::default();
        match &mut self.stages {
            Stages::Audio {
                prepare,
                detect,
                decide,
            } => run(prepare, detect, decide, sample, &mut result)?,
            Stages::Hyperspectral {
                prepare,
                detect,
                decide,
            } => run(prepare, detect, decide, sample, &mut result)?,
            Stages::Industrial {
                prepare,
                detect,
                decide,
            } => run(prepare, detect, decide.as_mut(), sample, &mut result)?,
            Stages::Violence {
                prepare,
                detect,
                decide,
            } => run(prepare, detect.as_mut(), decide, sample, &mut result)?,
        }
        Ok(result)
    }

    /// The stream ended: what the stages still held, scored and decided, and the alerts that
    /// close the events still open.
    pub fn finish(&mut self) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let last = self.last;
        match &mut self.stages {
            Stages::Audio {
                prepare,
                detect,
                decide,
            } => finish(prepare, detect, decide, last, &mut alerts),
            Stages::Hyperspectral {
                prepare,
                detect,
                decide,
            } => finish(prepare, detect, decide, last, &mut alerts),
            Stages::Industrial {
                prepare,
                detect,
                decide,
            } => finish(prepare, detect, decide.as_mut(), last, &mut alerts),
            Stages::Violence {
                prepare,
                detect,
                decide,
            } => finish(prepare, detect.as_mut(), decide, last, &mut alerts),
        }
        alerts
    }
}

/// Ends a stream's stages in order, as the pipeline's threads do: prepare's held inputs, then
/// detect's, each decided, then decide's open events.
fn finish<P, D, C>(
    prepare: &mut P,
    detect: &mut D,
    decide: &mut C,
    last: Option<Stamp>,
    alerts: &mut Vec<Alert>,
) where
    P: Prepare,
    D: Detect<Input = P::Output>,
    C: Decide<Input = D::Output>,
{
    let mut emit = |alert| alerts.push(alert);
    if let Some(last) = last {
        let mut inputs = Vec::new();
        prepare.finish(last, &mut |stamp, input| inputs.push((stamp, input)));
        for (stamp, input) in inputs {
            match detect.detect(input) {
                Ok(output) => decide.decide(stamp, output, &mut emit),
                Err(err) => log::warn!("{err}"),
            }
        }
        match detect.finish() {
            Ok(Some(output)) => decide.decide(last, output, &mut emit),
            Ok(None) => {}
            Err(err) => log::warn!("{err}"),
        }
    }
    decide.finish(&mut emit);
}

fn run<P, D, C>(
    prepare: &mut P,
    detect: &mut D,
    decide: &mut C,
    sample: &Sample,
    result: &mut InlineResult,
) -> Result<(), StageError>
where
    P: Prepare,
    D: Detect<Input = P::Output>,
    C: Decide<Input = D::Output>,
{
    let mut inputs = Vec::new();
    prepare.prepare(sample, &mut |stamp, input| inputs.push((stamp, input)))?;
    for (stamp, input) in inputs {
        let output = detect.detect(input)?;
        decide.decide(stamp, output, &mut |alert| result.alerts.push(alert));
        result.scores.push((stamp, decide.scores()));
    }
    Ok(())
}
