use std::path::Path;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use vigil::alert::{Alert, Phase};
use vigil::capture::{AudioBlock, Sample, Stamp, VideoFrame, pack_rgb_rows};
use vigil::profile::Profile;
use vigil::runtime::{InlineDetector, Media};

use super::{ALERT_MESSAGE, SCORE_META};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "vigildetect",
        gst::DebugColorFlags::empty(),
        Some("vigil detector"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    profile: Option<String>,
    stream: Option<String>,
    model: Option<String>,
}

/// What exists between start and stop.
struct State {
    detector: InlineDetector,
    /// Set by the caps for video; None for audio.
    video: Option<gst_video::VideoInfo>,
    /// Buffers seen, and audio samples seen (the stream time of buffers without a PTS).
    seq: u64,
    audio_samples: u64,
}

#[derive(Default)]
pub struct VigilDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

/// A poisoned lock only means another streaming thread panicked; the data is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[glib::object_subclass]
impl ObjectSubclass for VigilDetect {
    const NAME: &'static str = "GstVigilDetect";
    type Type = super::VigilDetect;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for VigilDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("profile")
                    .nick("Profile")
                    .blurb("vigil profile (TOML) whose stream settings and model run here")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("stream")
                    .nick("Stream")
                    .blurb("Which [[stream]] of the profile (default: the first)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("A model of the manifest to run instead of the stream's")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let value: Option<String> = value.get().unwrap_or_default();
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "profile" => settings.profile = value,
            "stream" => settings.stream = value,
            "model" => settings.model = value,
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "profile" => settings.profile.to_value(),
            "stream" => settings.stream.to_value(),
            "model" => settings.model.to_value(),
            _ => None::<String>.to_value(),
        }
    }
}

impl GstObjectImpl for VigilDetect {}

impl ElementImpl for VigilDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "vigil detector",
                "Filter/Analyzer/Audio/Video",
                "Runs a vigil anomaly detector on the buffers passing through: scores as \
                 VigilScoreMeta, alerts as vigil-alert element messages",
                "vigil developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = template_caps();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|direction| {
                    let name = if direction == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

/// Everything some detector can take; the profile narrows it to one format at start.
fn template_caps() -> gst::Caps {
    let mut caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("channels", 1i32)
        .field("rate", gst::IntRange::new(1, i32::MAX))
        .build();
    caps.merge(
        gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", gst::IntRange::new(1, i32::MAX))
            .field("height", gst::IntRange::new(1, i32::MAX))
            .build(),
    );
    caps
}

/// The one format the loaded detector takes.
fn media_caps(media: Media) -> gst::Caps {
    let as_int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    match media {
        Media::Audio { rate } => gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("channels", 1i32)
            .field("rate", as_int(rate))
            .build(),
        Media::Video { width, height } => gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", as_int(width))
            .field("height", as_int(height))
            .build(),
        // Never loaded: `from_profile` refuses violence streams, which need both at once.
        Media::AudioVisual { .. } => gst::Caps::new_empty(),
    }
}

impl BaseTransformImpl for VigilDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    /// Loads the profile and the model: errors here fail the state change with the reason.
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let path = settings.profile.ok_or_else(|| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("property profile is not set: vigildetect runs a stream of a vigil profile")
            )
        })?;
        let profile = Profile::load(Path::new(&path))
            .map_err(|err| gst::error_msg!(gst::LibraryError::Settings, ("{err}")))?;
        let detector = InlineDetector::from_profile(
            &profile,
            settings.stream.as_deref(),
            settings.model.as_deref(),
        )
        .map_err(|err| gst::error_msg!(gst::LibraryError::Init, ("{path}: {err}")))?;
        gst::info!(
            CAT,
            imp = self,
            "stream {} of {path}: model {}, {:?}",
            detector.stream(),
            detector.model(),
            detector.media()
        );
        *lock(&self.state) = Some(State {
            detector,
            video: None,
            seq: 0,
            audio_samples: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        lock(&self.state).take();
        Ok(())
    }

    fn transform_caps(
        &self,
        _direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let media = lock(&self.state).as_ref().map(|s| s.detector.media());
        let caps = match media {
            Some(media) => caps.intersect(&media_caps(media)),
            None => caps.clone(),
        };
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let mut state = lock(&self.state);
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        let is_video = incaps
            .structure(0)
            .is_some_and(|s| s.name() == "video/x-raw");
        state.video = if is_video {
            Some(
                gst_video::VideoInfo::from_caps(incaps)
                    .map_err(|_| gst::loggable_error!(CAT, "invalid video caps {incaps}"))?,
            )
        } else {
            None
        };
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            // Events still open end with the stream.
            let alerts = lock(&self.state)
                .as_mut()
                .map(|state| state.detector.finish())
                .unwrap_or_default();
            for alert in &alerts {
                self.post_alert(alert);
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let sample = match to_sample(state, buf) {
            Ok(sample) => sample,
            Err(detail) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{detail}"));
                return Err(gst::FlowError::Error);
            }
        };
        let result = match state.detector.push(&sample) {
            Ok(result) => result,
            // One bad buffer must not stop a camera: say so and let it through unscored.
            Err(err) => {
                gst::element_imp_warning!(self, gst::StreamError::Decode, ("{err}"));
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        for (stamp, scores) in &result.scores {
            let mut meta = gst::meta::CustomMeta::add(buf, SCORE_META).map_err(|err| {
                gst::error!(CAT, imp = self, "cannot add {SCORE_META}: {err}");
                gst::FlowError::Error
            })?;
            let structure = meta.mut_structure();
            structure.set("stream", state.detector.stream());
            structure.set("model", state.detector.model());
            structure.set(
                "pts",
                u64::try_from(stamp.pts.as_nanos()).unwrap_or(u64::MAX),
            );
            for (label, score) in scores {
                structure.set(label.as_str(), f64::from(*score));
            }
        }
        drop(guard);
        for alert in &result.alerts {
            self.post_alert(alert);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl VigilDetect {
    fn post_alert(&self, alert: &Alert) {
        let phase = match alert.phase {
            Phase::New => "new",
            Phase::Update => "update",
            Phase::End => "end",
        };
        let structure = gst::Structure::builder(ALERT_MESSAGE)
            .field("stream", alert.stream.as_str())
            .field("model", alert.model.as_str())
            .field("label", alert.label.as_str())
            .field("phase", phase)
            .field("event", alert.event)
            .field("score", f64::from(alert.score))
            .field("peak", f64::from(alert.peak))
            .field("threshold", f64::from(alert.threshold))
            .field("start-pts", alert.start_pts_ns)
            .field("pts", alert.pts_ns)
            .field("json", serde_json::to_string(alert).unwrap_or_default())
            .build();
        let message = gst::message::Element::builder(structure)
            .src(&*self.obj())
            .build();
        if self.obj().post_message(message).is_err() {
            gst::warning!(
                CAT,
                imp = self,
                "no bus to post alert {phase} {}",
                alert.label
            );
        }
    }
}

/// The buffer as a vigil sample, stamped with its PTS (or its position, for audio without).
fn to_sample(state: &mut State, buf: &gst::BufferRef) -> Result<Sample, String> {
    state.seq += 1;
    let stamp = |pts: Duration| Stamp {
        pts,
        captured_at: SystemTime::now(),
        seq: state.seq - 1,
    };
    match (state.detector.media(), &state.video) {
        (Media::Audio { rate }, _) => {
            let map = buf
                .map_readable()
                .map_err(|err| format!("cannot map the buffer: {err}"))?;
            let bytes = map.as_slice();
            if bytes.len() % 4 != 0 {
                return Err(format!(
                    "audio buffer of {} bytes is not whole F32LE samples",
                    bytes.len()
                ));
            }
            let samples: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let position = Duration::from_secs_f64(state.audio_samples as f64 / f64::from(rate));
            let pts = buf
                .pts()
                .map_or(position, |pts| Duration::from_nanos(pts.nseconds()));
            state.audio_samples += samples.len() as u64;
            Ok(Sample::Audio(AudioBlock {
                stamp: stamp(pts),
                rate,
                samples,
            }))
        }
        (Media::Video { width, height }, Some(info)) => {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
                .map_err(|err| format!("cannot map the frame: {err}"))?;
            let data = frame
                .plane_data(0)
                .map_err(|err| format!("cannot read plane 0: {err}"))?;
            let rgb = pack_rgb_rows(data, frame.plane_stride()[0], width, height)?;
            let pts = buf
                .pts()
                .map_or(Duration::ZERO, |pts| Duration::from_nanos(pts.nseconds()));
            Ok(Sample::Video(VideoFrame {
                stamp: stamp(pts),
                width,
                height,
                rgb,
            }))
        }
        (Media::Video { .. }, None) => Err("video buffer before video caps".into()),
        (Media::AudioVisual { .. }, _) => {
            Err("a violence stream takes audio and video together; vigildetect takes one".into())
        }
    }
}
