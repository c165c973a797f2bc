//! Builds and runs everything a profile describes: one pipeline per stream, the alert bus with
//! its journal and sinks, and the metrics endpoint; and reloads it while it runs ([`reload`]).

pub mod inline;
mod reload;

pub use inline::{InlineDetector, InlineResult, Media};
pub use reload::{ReloadReport, run};

use std::path::Path;

use crate::capture::{CaptureError, Source};
use crate::detector::{DetectorError, Manifest, ModelSpec, Plan};
use crate::hsi::fers::FersEdge;
use crate::hsi::threshold::ThresholdRule;
use crate::metrics::{Metrics, MetricsServer};
use crate::models::audio_events::{
    AudioEventsDecide, AudioEventsPrepare, ClassMap, YamnetDetector,
};
use crate::models::hyperspectral::{
    AnomalyDecide, FersBlockDetect, HyperspectralDetect, LinePrepare, STREAMING_RX,
    StreamingRxDetect,
};
use crate::models::industrial::{
    IndustrialDecide, IndustrialDetector, IndustrialPrepare, IndustrialSettings,
};
use crate::models::violence::stages::{MavdDetect, SnippetPrepare, ViolenceAlerts};
use crate::pipeline::{Pipeline, PipelineError, PipelineSettings, StageError};
use crate::prepare::mel::LogMelConfig;
use crate::profile::{Profile, SinkSettings, SourceSettings, StreamSettings};
#[cfg(feature = "mqtt")]
use crate::sinks::MqttSink;
#[cfg(feature = "webhook")]
use crate::sinks::Webhook;
use crate::sinks::{AlertBus, BusError, JsonLines, Sink, SinkError};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Detector(#[from] DetectorError),
    #[error("stream {stream}: {source}")]
    Capture {
        stream: String,
        source: CaptureError,
    },
    #[error("stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("metrics endpoint: {0}")]
    Metrics(String),
    #[error("an earlier reload failed midway: the alert bus is gone")]
    Broken,
}

/// The families vigil knows, by the manifest's `family` field.
const AUDIO_EVENTS: &str = "audio_events";
/// FERS-edge feature models, which hyperspectral streams run block by block.
const FERS_EDGE: &str = "fers_edge";
/// Hyperspectral streams; their built-in detector (`model = "rx"`) needs no manifest entry.
const HYPERSPECTRAL: &str = "hyperspectral";
/// ISSTAD-edge: industrial defects on factory-line cameras.
const ISSTAD_EDGE: &str = crate::models::industrial::FAMILY;
/// PatchCore: industrial defects from a pretrained backbone and a memory bank of good parts.
const PATCHCORE: &str = crate::models::industrial::patchcore::FAMILY;
/// MAVD-edge: audio-visual violence on surveillance boxes (camera and microphone).
const MAVD_EDGE: &str = "mavd_edge";

/// The manifest file a profile uses: its own, or the one shipped in `models/`.
fn manifest_path(profile: &Profile) -> std::path::PathBuf {
    match &profile.device.manifest {
        Some(path) => profile.resolve(path),
        None => Manifest::shipped_path(),
    }
}

fn manifest_of(profile: &Profile) -> Result<Manifest, DetectorError> {
    Manifest::load(&manifest_path(profile))
}

fn stream_error(stream: &StreamSettings, detail: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Stream {
        stream: stream.name.clone(),
        detail: detail.to_string(),
    }
}

/// The raw audio or video a family's stages take; None for hyperspectral lines.
fn media_for(family: &str, stream: &StreamSettings) -> Option<Media> {
    match family {
        AUDIO_EVENTS => Some(Media::Audio {
            rate: LogMelConfig::yamnet().sample_rate_hz,
        }),
        // Frames at the profile's capture size: the model resizes whole frames to its input,
        // and snapshots and boxes are in these pixels.
        ISSTAD_EDGE | PATCHCORE => {
            let settings = stream.industrial.clone().unwrap_or_default();
            Some(Media::Video {
                width: settings.capture_width,
                height: settings.capture_height,
            })
        }
        _ => None,
    }
}

/// What a family wants from a GStreamer source.
#[cfg(feature = "gst")]
fn gst_stream_for(family: &str, stream: &StreamSettings) -> Option<crate::capture::gst::GstStream> {
    use crate::capture::gst::GstStream;
    media_for(family, stream).and_then(|media| match media {
        Media::Audio { rate } => Some(GstStream::Audio { rate }),
        Media::Video { width, height } => Some(GstStream::Video { width, height }),
        // Violence streams have their own two-branch source.
        Media::AudioVisual { .. } => None,
    })
}

#[cfg_attr(not(any(feature = "gst", feature = "v4l")), allow(unused_variables))]
fn build_source(
    stream: &StreamSettings,
    family: &str,
    profile_dir: &Path,
) -> Result<Box<dyn Source>, RuntimeError> {
    let capture = |source| RuntimeError::Capture {
        stream: stream.name.clone(),
        source,
    };
    if family == MAVD_EDGE
        && !matches!(
            stream.source,
            SourceSettings::Gstreamer(_) | SourceSettings::Features(_)
        )
    {
        return Err(stream_error(
            stream,
            format!(
                "model family {MAVD_EDGE} needs video and audio on one clock: use a GStreamer \
                 source (a file's decodebin, or a camera and a microphone) with [stream.violence], \
                 or pre-extracted feature files (kind = \"features\")"
            ),
        ));
    }
    match &stream.source {
        SourceSettings::Features(_) if family != MAVD_EDGE => Err(stream_error(
            stream,
            format!("model family {family} cannot read pre-extracted snippet features"),
        )),
        SourceSettings::Features(config) => Ok(Box::new(
            crate::models::violence::replay::FeatureReplay::new(config.resolved(profile_dir)),
        )),
        SourceSettings::Synth(config) => Ok(Box::new(
            crate::capture::synth::SynthSource::new(config.clone()).map_err(capture)?,
        )),
        SourceSettings::Scene(_) | SourceSettings::Lines(_) if family != HYPERSPECTRAL => {
            Err(stream_error(
                stream,
                format!("model family {family} cannot read hyperspectral lines"),
            ))
        }
        SourceSettings::Scene(config) => {
            let mut config = config.clone();
            config.path = profile_dir.join(&config.path);
            Ok(Box::new(
                crate::capture::pushbroom::SceneReplay::new(config).map_err(capture)?,
            ))
        }
        SourceSettings::Lines(config) => Ok(Box::new(
            crate::capture::pushbroom::LineStream::new(resolved_lines(config, profile_dir))
                .map_err(capture)?,
        )),
        #[cfg(feature = "gst")]
        SourceSettings::Gstreamer(settings) if family == MAVD_EDGE => {
            use crate::capture::gst::{AvConfig, AvSource};
            use crate::models::violence::staging::{AUDIO_RATE, FRAMES_PER_SECOND, SIDE};
            let violence = stream
                .violence
                .as_ref()
                .filter(|v| !v.video_from.trim().is_empty() && !v.audio_from.trim().is_empty())
                .ok_or_else(|| {
                    stream_error(
                        stream,
                        "a violence stream needs [stream.violence] with video_from and audio_from",
                    )
                })?;
            let config = AvConfig {
                settings: settings.clone(),
                video_from: violence.video_from.clone(),
                audio_from: violence.audio_from.clone(),
                width: SIDE as u32,
                height: SIDE as u32,
                frames_per_second: FRAMES_PER_SECOND,
                audio_rate: AUDIO_RATE,
            };
            AvSource::validate(&config).map_err(capture)?;
            Ok(Box::new(AvSource::new(config)))
        }
        #[cfg(feature = "gst")]
        SourceSettings::Gstreamer(settings) => {
            use crate::capture::gst::{GstConfig, GstSource};
            let media = gst_stream_for(family, stream).ok_or_else(|| {
                stream_error(stream, format!("family {family} takes no GStreamer source"))
            })?;
            let config = GstConfig {
                settings: settings.clone(),
                stream: media,
            };
            GstSource::validate(&config).map_err(capture)?;
            Ok(Box::new(GstSource::new(config)))
        }
        #[cfg(not(feature = "gst"))]
        SourceSettings::Gstreamer(_) => Err(stream_error(
            stream,
            "this build of vigil has no GStreamer (feature gst)",
        )),
        #[cfg(feature = "v4l")]
        SourceSettings::V4l2(config) => {
            if family == AUDIO_EVENTS || family == HYPERSPECTRAL {
                return Err(stream_error(
                    stream,
                    format!("model family {family} cannot read a V4L2 camera's video"),
                ));
            }
            Ok(Box::new(crate::capture::v4l2::V4l2Source::new(
                config.clone(),
            )))
        }
        #[cfg(not(feature = "v4l"))]
        SourceSettings::V4l2(_) => Err(stream_error(
            stream,
            "this build of vigil has no V4L2 (feature v4l)",
        )),
    }
}

fn build_sinks(profile: &Profile) -> Result<Vec<Box<dyn Sink>>, RuntimeError> {
    profile
        .alerts
        .sinks
        .iter()
        .map(|sink| -> Result<Box<dyn Sink>, RuntimeError> {
            Ok(match sink {
                SinkSettings::Jsonl { name, path } if path.as_os_str() == "-" => {
                    Box::new(JsonLines::stdout(name))
                }
                SinkSettings::Jsonl { name, path } => {
                    Box::new(JsonLines::file(name, &profile.resolve(path))?)
                }
                #[cfg(feature = "mqtt")]
                SinkSettings::Mqtt(mqtt) => {
                    Box::new(MqttSink::start(mqtt, &profile.device.name, &profile.dir)?)
                }
                #[cfg(feature = "webhook")]
                SinkSettings::Webhook(webhook) => {
                    Box::new(Webhook::new(webhook, &profile.device.name)?)
                }
                #[cfg(not(all(feature = "mqtt", feature = "webhook")))]
                other => return Err(sink_not_built(other).into()),
            })
        })
        .collect()
}

/// What `vigil check` does with the sinks: everything short of opening connections.
fn check_sinks(profile: &Profile) -> Result<(), RuntimeError> {
    for sink in &profile.alerts.sinks {
        match sink {
            #[cfg(feature = "mqtt")]
            SinkSettings::Mqtt(mqtt) => MqttSink::check(mqtt, &profile.device.name, &profile.dir)?,
            SinkSettings::Jsonl { name, path } if path.as_os_str() != "-" => {
                JsonLines::file(name, &profile.resolve(path))?;
            }
            SinkSettings::Jsonl { .. } => {}
            #[cfg(feature = "webhook")]
            SinkSettings::Webhook(webhook) => {
                Webhook::new(webhook, &profile.device.name)?;
            }
            #[cfg(not(all(feature = "mqtt", feature = "webhook")))]
            other => return Err(sink_not_built(other).into()),
        }
    }
    Ok(())
}

/// A profile names a kind of sink this build left out (`--no-default-features` drops MQTT and
/// webhooks, and their TLS and HTTP stacks, from a box that only writes JSON lines).
#[cfg(not(all(feature = "mqtt", feature = "webhook")))]
fn sink_not_built(sink: &SinkSettings) -> SinkError {
    let (kind, feature) = match sink {
        SinkSettings::Mqtt(_) => ("MQTT", "mqtt"),
        SinkSettings::Webhook(_) => ("webhook", "webhook"),
        SinkSettings::Jsonl { .. } => ("JSON lines", "none"),
    };
    SinkError {
        sink: sink.name().to_string(),
        detail: format!(
            "this vigil was built without {kind} alerts; build it with the `{feature}` feature \
             (a default feature) or remove the sink from the profile"
        ),
    }
}

/// Everything one stream needs, built and checked but not yet running.
struct StreamParts {
    source: Box<dyn Source>,
    stages: Stages,
}

/// A stream's model-specific stages, by family: what a pipeline runs between its source and
/// the alert bus, and what the GStreamer element runs inline ([`inline`]).
enum Stages {
    Audio {
        prepare: AudioEventsPrepare,
        detect: YamnetDetector,
        decide: AudioEventsDecide,
    },
    Hyperspectral {
        prepare: LinePrepare,
        detect: HyperspectralDetect,
        decide: AnomalyDecide,
    },
    Industrial {
        prepare: IndustrialPrepare,
        detect: IndustrialDetector,
        decide: Box<IndustrialDecide>,
    },
    Violence {
        prepare: SnippetPrepare,
        detect: Box<MavdDetect>,
        decide: ViolenceAlerts,
    },
}

impl StreamParts {
    fn describe_source(&self) -> String {
        self.source.describe()
    }

    fn spawn(
        self,
        stream: &str,
        alerts: crossbeam_channel::Sender<crate::Alert>,
        metrics: &Metrics,
        settings: PipelineSettings,
    ) -> Result<Pipeline, PipelineError> {
        let source = self.source;
        match self.stages {
            Stages::Audio {
                prepare,
                detect,
                decide,
            } => Pipeline::spawn(
                stream, source, prepare, detect, decide, alerts, metrics, settings,
            ),
            Stages::Hyperspectral {
                prepare,
                detect,
                decide,
            } => Pipeline::spawn(
                stream, source, prepare, detect, decide, alerts, metrics, settings,
            ),
            Stages::Industrial {
                prepare,
                detect,
                decide,
            } => Pipeline::spawn(
                stream, source, prepare, detect, *decide, alerts, metrics, settings,
            ),
            Stages::Violence {
                prepare,
                detect,
                decide,
            } => Pipeline::spawn(
                stream, source, prepare, *detect, decide, alerts, metrics, settings,
            ),
        }
    }
}

/// Plans loaded so far, by model name: streams that share a model share one optimized plan.
type Plans = std::collections::BTreeMap<String, Plan>;

/// The labels of a fitted audio-event head, one per output, from its `head_labels` setting.
fn head_labels(spec: &ModelSpec) -> Result<Vec<String>, String> {
    let labels: Vec<String> = spec
        .settings
        .get("head_labels")
        .and_then(toml::Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let outputs: usize = spec.outputs.first().map_or(0, |t| t.shape.iter().product());
    if labels.is_empty() || labels.len() != outputs {
        return Err(format!(
            "model {}: head_labels names {} labels for {outputs} outputs",
            spec.name,
            labels.len()
        ));
    }
    Ok(labels)
}

fn plan_for(plans: &mut Plans, manifest: &Manifest, model: &str) -> Result<Plan, RuntimeError> {
    if let Some(plan) = plans.get(model) {
        return Ok(plan.clone());
    }
    let plan = Plan::load(manifest, model)?;
    plans.insert(model.to_string(), plan.clone());
    Ok(plan)
}

fn hyperspectral_stages(
    stream: &StreamSettings,
    profile: &Profile,
    manifest: &Manifest,
    plans: &mut Plans,
) -> Result<Stages, RuntimeError> {
    let settings = stream.hyperspectral.clone().unwrap_or_default();
    let detect = if stream.model == STREAMING_RX {
        HyperspectralDetect::StreamingRx(StreamingRxDetect::new(
            settings.streaming,
            settings.threads,
        ))
    } else {
        let spec = manifest.model(&stream.model).map_err(|_| {
            stream_error(
                stream,
                format!(
                    "hyperspectral model {:?} is neither the built-in {STREAMING_RX:?} nor in the manifest",
                    stream.model
                ),
            )
        })?;
        if spec.family != FERS_EDGE {
            return Err(stream_error(
                stream,
                format!(
                    "model {} is a {} model; hyperspectral streams run {STREAMING_RX:?} or a {FERS_EDGE} model",
                    spec.name, spec.family
                ),
            ));
        }
        if matches!(settings.threshold, ThresholdRule::CfarChi2 { .. }) {
            return Err(stream_error(
                stream,
                "FERS-edge's fused scores carry no χ² law: set threshold = { rule = \"empirical-quantile\", p_fa = ... }",
            ));
        }
        // Streams naming one model share one optimized plan, as audio streams do.
        let plan = plan_for(plans, manifest, &stream.model)?;
        let model = FersEdge::new(plan).map_err(|err| stream_error(stream, err))?;
        if settings.bands != 0 && settings.bands < model.bands() {
            return Err(stream_error(
                stream,
                format!(
                    "bands = {} keeps fewer bands than {} reads ({})",
                    settings.bands,
                    stream.model,
                    model.bands()
                ),
            ));
        }
        HyperspectralDetect::Fers(FersBlockDetect::new(model, settings.threads))
    };
    let map_dir = settings.map_dir.as_ref().map(|dir| profile.resolve(dir));
    Ok(Stages::Hyperspectral {
        prepare: LinePrepare::new(settings.bands),
        detect,
        decide: AnomalyDecide::new(&stream.name, &stream.model, &settings, map_dir)
            .map_err(|err| stream_error(stream, err))?,
    })
}

fn industrial_stages(
    stream: &StreamSettings,
    profile: &Profile,
    manifest: &Manifest,
    plans: &mut Plans,
) -> Result<Stages, RuntimeError> {
    let settings: IndustrialSettings = stream.industrial.clone().unwrap_or_default();
    let plan = plan_for(plans, manifest, &stream.model)?;
    let detect =
        IndustrialDetector::new(&plan, &manifest.dir).map_err(|err| stream_error(stream, err))?;
    let model = detect.spec();
    let snapshot_dir = settings
        .snapshot_dir
        .as_ref()
        .map(|dir| profile.resolve(dir));
    Ok(Stages::Industrial {
        prepare: model
            .prepare(&settings)
            .map_err(|err| stream_error(stream, err))?,
        detect,
        decide: Box::new(
            IndustrialDecide::new(&stream.name, &model, &settings, snapshot_dir)
                .map_err(|err| stream_error(stream, err))?,
        ),
    })
}

/// The MAVD stages: the model's first file is the window graph. Media streams also need the RGB
/// extractor named by its `rgb_extractor` setting and the audio-event model named by
/// `audio_model` (YAMNet, whose plan audio streams share); streams of pre-extracted features
/// need neither (the authors' heads on XD-Violence's files, say).
fn violence_stages(
    stream: &StreamSettings,
    profile: &Profile,
    spec: &crate::detector::ModelSpec,
    manifest: &Manifest,
    plans: &mut Plans,
) -> Result<Stages, RuntimeError> {
    use crate::models::violence::extract::SnippetExtractor;
    use crate::models::violence::snippet::SnippetConfig;
    use crate::models::violence::window::{StreamingScorer, WindowModel};
    crate::detector::manifest::verify_files(manifest, spec)?;
    let window = WindowModel::load(&manifest.path_of(spec.onnx_file()))
        .map_err(|err| stream_error(stream, err))?;
    // Media streams' branches are checked with their source (`build_source`); the decision
    // settings default for streams of features.
    let settings = stream.violence.clone().unwrap_or_default();
    let extractor = match &stream.source {
        // Features extracted already: no extractors, and the files must fit the model.
        SourceSettings::Features(files) => {
            let rows = files
                .resolved(&profile.dir)
                .read()
                .map_err(|err| stream_error(stream, err))?;
            if let Some(first) = rows.first() {
                let found = [first.video.len(), first.audio.len(), first.flow.len()];
                if found != window.widths() {
                    return Err(stream_error(
                        stream,
                        format!(
                            "the feature files are [rgb, audio, flow] = {found:?} wide, model {} \
                             takes {:?}",
                            spec.name,
                            window.widths()
                        ),
                    ));
                }
            }
            None
        }
        _ => {
            let setting = |key: &str| {
                spec.setting_str(key).ok_or_else(|| {
                    stream_error(
                        stream,
                        format!("model {} names no {key} setting", spec.name),
                    )
                })
            };
            let rgb_model = manifest.dir.join(setting("rgb_extractor")?);
            let yamnet = plan_for(plans, manifest, setting("audio_model")?)?;
            Some(
                SnippetExtractor::new(&rgb_model, &yamnet)
                    .map_err(|err| stream_error(stream, err))?,
            )
        }
    };
    Ok(Stages::Violence {
        prepare: SnippetPrepare::new(SnippetConfig::default()),
        detect: Box::new(MavdDetect::new(extractor, StreamingScorer::new(window))),
        decide: ViolenceAlerts::new(&stream.name, &spec.name, settings.decision(spec.threshold))
            .map_err(|err| stream_error(stream, err))?,
    })
}

/// A line stream whose file or FIFO path is taken relative to the profile, like every other
/// path in a profile; `-` (stdin) and `tcp://` addresses are left as they are.
fn resolved_lines(
    config: &crate::capture::pushbroom::LineStreamConfig,
    profile_dir: &Path,
) -> crate::capture::pushbroom::LineStreamConfig {
    let mut config = config.clone();
    if config.input != "-" && !config.input.starts_with("tcp://") {
        config.input = profile_dir.join(&config.input).display().to_string();
    }
    config
}

fn is_hyperspectral(stream: &StreamSettings) -> bool {
    stream.hyperspectral.is_some()
        || matches!(
            stream.source,
            SourceSettings::Scene(_) | SourceSettings::Lines(_)
        )
}

fn build_stream(
    stream: &StreamSettings,
    profile: &Profile,
    manifest: &Manifest,
    plans: &mut Plans,
) -> Result<StreamParts, RuntimeError> {
    let (family, stages) = build_stages(stream, profile, manifest, plans)?;
    Ok(StreamParts {
        source: build_source(stream, family, &profile.dir)?,
        stages,
    })
}

/// A stream's stages and the family they belong to.
fn build_stages(
    stream: &StreamSettings,
    profile: &Profile,
    manifest: &Manifest,
    plans: &mut Plans,
) -> Result<(&'static str, Stages), RuntimeError> {
    if is_hyperspectral(stream) {
        let stages = hyperspectral_stages(stream, profile, manifest, plans)?;
        return Ok((HYPERSPECTRAL, stages));
    }
    let spec = manifest.model(&stream.model)?;
    if stream.industrial.is_some() && spec.family != ISSTAD_EDGE && spec.family != PATCHCORE {
        return Err(stream_error(
            stream,
            format!(
                "[stream.industrial] is for {ISSTAD_EDGE} and {PATCHCORE} models; model {} is a {} model",
                spec.name, spec.family
            ),
        ));
    }
    if stream.violence.is_some() && spec.family != MAVD_EDGE {
        return Err(stream_error(
            stream,
            format!(
                "[stream.violence] is for {MAVD_EDGE} models; model {} is a {} model",
                spec.name, spec.family
            ),
        ));
    }
    match spec.family.as_str() {
        MAVD_EDGE => Ok((
            MAVD_EDGE,
            violence_stages(stream, profile, spec, manifest, plans)?,
        )),
        AUDIO_EVENTS => {
            let plan = plan_for(plans, manifest, &stream.model)?;
            let stage = |err: StageError| stream_error(stream, err);
            // A fitted head names the YAMNet model whose embedding it reads; that model's
            // front end, class map and scores come first.
            let (yamnet_spec, detect, head_labels) = match spec.setting_str("embedding_model") {
                Some(embedder) => {
                    let yamnet = plan_for(plans, manifest, embedder)?;
                    let labels = head_labels(spec).map_err(|err| stream_error(stream, err))?;
                    let detect = YamnetDetector::with_head(&yamnet, &plan).map_err(stage)?;
                    (manifest.model(embedder)?, detect, labels)
                }
                None => (spec, YamnetDetector::new(&plan).map_err(stage)?, Vec::new()),
            };
            let labels = yamnet_spec.setting_str("labels").ok_or_else(|| {
                stream_error(
                    stream,
                    format!("model {} names no labels file", yamnet_spec.name),
                )
            })?;
            let classes = ClassMap::load(&manifest.dir.join(labels))
                .map_err(|err| stream_error(stream, err))?
                .with_head(&head_labels);
            let settings = stream.audio_events.clone().unwrap_or_default();
            let log_mel = settings
                .log_mel()
                .map_err(|err| stream_error(stream, err))?;
            Ok((
                AUDIO_EVENTS,
                Stages::Audio {
                    prepare: AudioEventsPrepare::new(yamnet_spec, log_mel).map_err(stage)?,
                    detect,
                    decide: AudioEventsDecide::new(
                        &stream.name,
                        &spec.name,
                        &settings.events_or_defaults(spec.threshold),
                        &classes,
                    )
                    .map_err(|err| stream_error(stream, err))?,
                },
            ))
        }
        ISSTAD_EDGE => Ok((
            ISSTAD_EDGE,
            industrial_stages(stream, profile, manifest, plans)?,
        )),
        PATCHCORE => Ok((
            PATCHCORE,
            industrial_stages(stream, profile, manifest, plans)?,
        )),
        other => Err(stream_error(
            stream,
            format!("model family {other} is not supported by this build"),
        )),
    }
}

/// Validates a profile without running it: models verified and loaded, sources buildable
/// (GStreamer pipelines parsed and linked), settings consistent.
pub fn check(profile: &Profile) -> Result<Vec<String>, RuntimeError> {
    let manifest = manifest_of(profile)?;
    let mut report = Vec::new();
    let mut plans = Plans::new();
    for stream in &profile.streams {
        let parts = build_stream(stream, profile, &manifest, &mut plans)?;
        report.push(format!(
            "stream {}: {} → model {}",
            stream.name,
            parts.describe_source(),
            stream.model
        ));
    }
    check_sinks(profile)?;
    Ok(report)
}

/// A running profile.
pub struct Runtime {
    profile: Profile,
    streams: Vec<RunningStream>,
    /// None only after a reload failed past the point of no return (see [`Runtime::reload`]).
    bus: Option<AlertBus>,
    metrics: Metrics,
    server: Option<MetricsServer>,
}

/// A stream's pipeline, and what it was built from, to tell whether a reload changes it.
struct RunningStream {
    name: String,
    identity: reload::StreamIdentity,
    pipeline: Pipeline,
}

impl Runtime {
    pub fn start(profile: &Profile) -> Result<Self, RuntimeError> {
        let metrics = Metrics::new();
        let server = serve_metrics(profile, &metrics)?;
        let manifest = manifest_of(profile)?;
        // Build every stream before starting any, so a bad profile starts nothing.
        let mut plans = Plans::new();
        let parts = profile
            .streams
            .iter()
            .map(|stream| build_stream(stream, profile, &manifest, &mut plans).map(|p| (stream, p)))
            .collect::<Result<Vec<_>, _>>()?;
        let bus = start_bus(profile, &metrics)?;
        let mut streams = Vec::new();
        for (stream, parts) in parts {
            streams.push(RunningStream {
                name: stream.name.clone(),
                identity: reload::StreamIdentity::of(stream, profile, &manifest),
                pipeline: spawn_stream(stream, parts, profile, &bus, &metrics)?,
            });
        }
        Ok(Self {
            profile: profile.clone(),
            streams,
            bus: Some(bus),
            metrics,
            server,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The profile running now (the last one a reload accepted).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Where the Prometheus endpoint listens, when the profile asked for one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(MetricsServer::local_addr)
    }

    /// True once every stream's source has ended and its stages drained.
    pub fn is_finished(&self) -> bool {
        self.streams.iter().all(|s| s.pipeline.is_finished())
    }

    /// Runs until every source has ended or `stop` is set; then ends open events, drains the
    /// alert bus and returns.
    pub fn run_until(self, stop: &std::sync::atomic::AtomicBool) -> Result<(), RuntimeError> {
        use std::sync::atomic::Ordering;
        while !self.is_finished() {
            if stop.load(Ordering::SeqCst) {
                return self.stop();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.wait()
    }

    /// Stops capture now, ends open events and drains the alert bus.
    pub fn stop(self) -> Result<(), RuntimeError> {
        log::info!("stopping: ending open events and draining the alert bus");
        for stream in self.streams {
            stream.pipeline.stop();
        }
        close_bus(self.bus)
    }

    /// Runs until every source has ended, then drains the alert bus.
    pub fn wait(self) -> Result<(), RuntimeError> {
        let mut first_error = None;
        for stream in self.streams {
            if let Err(err) = stream.pipeline.wait() {
                first_error.get_or_insert(err);
            }
        }
        close_bus(self.bus)?;
        first_error.map_or(Ok(()), |err| Err(err.into()))
    }
}

fn close_bus(bus: Option<AlertBus>) -> Result<(), RuntimeError> {
    match bus {
        Some(bus) => Ok(bus.close()?),
        None => Ok(()),
    }
}

fn serve_metrics(
    profile: &Profile,
    metrics: &Metrics,
) -> Result<Option<MetricsServer>, RuntimeError> {
    match &profile.metrics {
        Some(settings) => Ok(Some(
            crate::metrics::serve_with(
                metrics.clone(),
                settings.listen,
                crate::metrics::ServeOptions {
                    allow_non_loopback: settings.expose,
                    ..Default::default()
                },
            )
            .map_err(|err| RuntimeError::Metrics(err.to_string()))?,
        )),
        None => Ok(None),
    }
}

fn start_bus(profile: &Profile, metrics: &Metrics) -> Result<AlertBus, RuntimeError> {
    Ok(AlertBus::start(
        &profile.resolve(&profile.alerts.journal),
        build_sinks(profile)?,
        profile.alerts.queue,
        metrics,
    )?)
}

fn spawn_stream(
    stream: &StreamSettings,
    parts: StreamParts,
    profile: &Profile,
    bus: &AlertBus,
    metrics: &Metrics,
) -> Result<Pipeline, RuntimeError> {
    let settings = PipelineSettings {
        queue_depth: stream.queue_depth,
        restart: stream.restart,
        // Recorded data (a scene, a file of lines) is slowed rather than thinned;
        // live sensors, sockets and FIFOs keep bounded latency by dropping.
        backpressure: match &stream.source {
            SourceSettings::Scene(_) => true,
            SourceSettings::Lines(lines) => {
                Path::new(&resolved_lines(lines, &profile.dir).input).is_file()
            }
            _ => false,
        },
        evidence: stream
            .evidence
            .as_ref()
            .map(|evidence| (evidence.clone(), profile.resolve(&evidence.dir))),
    };
    Ok(parts.spawn(&stream.name, bus.sender(), metrics, settings)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile naming MQTT and webhook sinks: a build with both sinks checks them (no
    /// connection is opened at check); a build without them (the aarch64 test build has
    /// `--no-default-features`) refuses the profile at `vigil check`, naming the sink and the
    /// feature, instead of failing later or ignoring the sink.
    #[test]
    fn a_sink_this_build_lacks_is_named_at_check() {
        let text = r#"
[box]
name = "t"
[alerts]
journal = "j"
sinks = [
  { kind = "mqtt", name = "broker", host = "localhost" },
  { kind = "webhook", name = "hook", url = "http://localhost:9/alerts" },
]
[[stream]]
name = "mic"
model = "yamnet"
source = { kind = "synth", duration_s = 1.0 }
"#;
        let profile = Profile::parse(text, Path::new("/etc/vigil/t.toml")).unwrap();
        let checked = check_sinks(&profile);
        if cfg!(feature = "mqtt") && cfg!(feature = "webhook") {
            checked.unwrap();
        } else {
            let err = checked.unwrap_err().to_string();
            let (sink, feature) = if cfg!(feature = "mqtt") {
                ("hook", "`webhook`")
            } else {
                ("broker", "`mqtt`")
            };
            assert!(err.contains(sink) && err.contains(feature), "{err}");
        }
    }
}
