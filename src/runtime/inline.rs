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
}

impl InlineDetector {
    /// The detector of the profile's stream `stream` (the first when None), running `model`
    /// instead of the stream's own when given. The stream's source is not used.
    pub fn from_profile(
        profile: &Profile,
        stream: Option<&str>,
        model: Option<&str>,
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
        let media = super::media_for(family, &settings).ok_or_else(|| {
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

    /// The stream ended: the alerts that close the events still open.
    pub fn finish(&mut self) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let mut emit = |alert| alerts.push(alert);
        match &mut self.stages {
            Stages::Audio { decide, .. } => decide.finish(&mut emit),
            Stages::Hyperspectral { decide, .. } => decide.finish(&mut emit),
            Stages::Industrial { decide, .. } => decide.finish(&mut emit),
            Stages::Violence { decide, .. } => decide.finish(&mut emit),
        }
        alerts
    }
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
