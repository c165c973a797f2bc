//! Deployment profiles (`targets/*.toml`): which streams a box captures, which model watches
//! each, and where alerts go. Unknown keys are errors that name the key, so a typo never
//! silently keeps a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::GstSettings;
use crate::capture::supervisor::RestartPolicy;
use crate::capture::synth::SynthConfig;
use crate::models::audio_events::AudioEventsSettings;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile: {detail}: {path}")]
    Io { detail: String, path: PathBuf },
    #[error("invalid profile: {detail}: {path}")]
    Invalid { detail: String, path: PathBuf },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(rename = "box")]
    pub device: BoxSettings,
    #[serde(default)]
    pub metrics: Option<MetricsSettings>,
    pub alerts: AlertSettings,
    #[serde(rename = "stream")]
    pub streams: Vec<StreamSettings>,
    /// Folder the profile was read from: relative paths in it are relative to that folder.
    #[serde(skip)]
    pub dir: PathBuf,
    /// The profile as TOML values, for telling what a reload changed.
    #[serde(skip)]
    pub tables: ProfileTables,
}

/// A profile's TOML split the way a reload treats it: each stream on its own, and everything
/// else (box, alerts, metrics), whose change restarts the whole runtime.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileTables {
    pub shared: toml::Table,
    pub streams: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxSettings {
    pub name: String,
    /// Model manifest; default: the one shipped in `models/`.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where the Prometheus text endpoint listens; loopback unless `expose` is set.
    pub listen: SocketAddr,
    #[serde(default)]
    pub expose: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Folder of the durable journal.
    pub journal: PathBuf,
    /// Alerts waiting for the sink thread before producers block.
    #[serde(default = "default_alert_queue")]
    pub queue: usize,
    pub sinks: Vec<SinkSettings>,
}

fn default_alert_queue() -> usize {
    64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkSettings {
    /// JSON lines to a file, or to stdout when `path` is "-".
    Jsonl { name: String, path: PathBuf },
    /// An MQTT broker (QoS 1, retained availability with a Last Will).
    Mqtt(crate::sinks::MqttSettings),
    /// HTTP POST per alert, retried with backoff.
    Webhook(crate::sinks::WebhookSettings),
}

impl SinkSettings {
    pub fn name(&self) -> &str {
        match self {
            SinkSettings::Jsonl { name, .. } => name,
            SinkSettings::Mqtt(mqtt) => &mqtt.name,
            SinkSettings::Webhook(webhook) => &webhook.name,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    pub name: String,
    /// A model of the manifest.
    pub model: String,
    pub source: SourceSettings,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Settings of the audio_events family (YAMNet).
    #[serde(default)]
    pub audio_events: Option<AudioEventsSettings>,
    #[serde(default)]
    pub hyperspectral: Option<crate::models::hyperspectral::HyperspectralSettings>,
    /// Settings of the factory-line families (isstad_edge and patchcore).
    #[serde(default)]
    pub industrial: Option<crate::models::industrial::IndustrialSettings>,
    /// Settings of the mavd_edge family (audio-visual violence).
    #[serde(default)]
    pub violence: Option<crate::models::violence::stages::ViolenceStreamSettings>,
    /// Keyframes or an audio clip around each event (see [`crate::evidence`]).
    #[serde(default)]
    pub evidence: Option<crate::evidence::EvidenceSettings>,
}

fn default_queue_depth() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSettings {
    /// Any GStreamer source as a `gst-launch-1.0` fragment.
    Gstreamer(GstSettings),
    /// Generated audio with planted events (demo and tests).
    Synth(SynthConfig),
    /// A V4L2 camera through the kernel API.
    V4l2(crate::capture::v4l2::V4l2Config),
    /// A hyperspectral scene file played line by line (push-broom replay).
    Scene(crate::capture::pushbroom::SceneReplayConfig),
    /// Raw push-broom lines from a file, FIFO, standard input or TCP socket.
    Lines(crate::capture::pushbroom::LineStreamConfig),
    /// One video's pre-extracted per-snippet features (violence models).
    Features(crate::models::violence::replay::FeatureFilesConfig),
}

impl Profile {
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|err| ProfileError::Io {
            detail: err.to_string(),
            path: path.into(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks a profile's text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileError> {
        let invalid = |detail: String| ProfileError::Invalid {
            detail,
            path: path.into(),
        };
        let mut profile: Profile = toml::from_str(text)
            .map_err(|err| invalid(err.to_string().trim().replace('\n', " ")))?;
        profile.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        profile.tables = split_tables(text).map_err(invalid)?;
        if profile.streams.is_empty() {
            return Err(invalid("no [[stream]]".into()));
        }
        if profile.alerts.sinks.is_empty() {
            return Err(invalid(
                "alerts.sinks is empty: alerts would go nowhere".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for stream in &profile.streams {
            if !names.insert(stream.name.as_str()) {
                return Err(invalid(format!("stream {} appears twice", stream.name)));
            }
            crate::decide::name("stream name", &stream.name)
                .map_err(|err| invalid(err.to_string()))?;
            if let Some(problem) = stream.evidence.as_ref().and_then(|e| e.problem()) {
                return Err(invalid(format!("stream {}: {problem}", stream.name)));
            }
        }
        let mut sink_names = std::collections::BTreeSet::new();
        for sink in &profile.alerts.sinks {
            let name = sink.name();
            if !sink_names.insert(name) {
                return Err(invalid(format!("sink {name} appears twice")));
            }
            if let SinkSettings::Mqtt(_) = sink {
                profile.check_topic_levels(name).map_err(invalid)?;
            }
        }
        if let Some(metrics) = &profile.metrics
            && !metrics.expose
            && !metrics.listen.ip().is_loopback()
        {
            return Err(invalid(format!(
                "metrics.listen {} is not a loopback address; set metrics.expose = true to serve it on the network",
                metrics.listen
            )));
        }
        Ok(profile)
    }

    /// Box, stream and model names become MQTT topic levels: they must be valid ones.
    fn check_topic_levels(&self, sink: &str) -> Result<(), String> {
        let levels = std::iter::once(("box name", &self.device.name)).chain(
            self.streams
                .iter()
                .flat_map(|s| [("stream name", &s.name), ("model", &s.model)]),
        );
        for (what, level) in levels {
            if let Some(why) = crate::sinks::settings::bad_topic_level(level) {
                return Err(format!(
                    "{what} {level:?} {why}, so it cannot be a topic level of mqtt sink {sink}"
                ));
            }
        }
        Ok(())
    }

    /// A path from the profile, relative to the profile's folder unless absolute.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.into()
        } else {
            self.dir.join(path)
        }
    }
}

fn split_tables(text: &str) -> Result<ProfileTables, String> {
    let mut shared: toml::Table = toml::from_str(text).map_err(|err| err.to_string())?;
    let streams = match shared.remove("stream") {
        Some(toml::Value::Array(streams)) => streams
            .into_iter()
            .map(|stream| {
                let name = stream
                    .get("name")
                    .and_then(toml::Value::as_str)
                    .unwrap_or_default();
                (name.to_string(), stream)
            })
            .collect(),
        _ => Default::default(),
    };
    Ok(ProfileTables { shared, streams })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[box]
name = "t"
[alerts]
journal = "j"
sinks = [{ kind = "jsonl", name = "out", path = "-" }]
[[stream]]
name = "mic"
model = "yamnet"
source = { kind = "synth", duration_s = 1.0 }
"#;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("/etc/vigil/t.toml"))
    }

    #[test]
    fn a_good_profile_parses_and_resolves_paths_from_its_folder() {
        let profile = parse(GOOD).unwrap();
        assert_eq!(profile.streams[0].queue_depth, 4);
        assert_eq!(
            profile.resolve(&profile.alerts.journal),
            Path::new("/etc/vigil/j")
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(
            &GOOD
                .replace("queue_depth", "x")
                .replace("model = \"yamnet\"", "model = \"yamnet\"\nqueue_dpeth = 3"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("queue_dpeth") && err.contains("t.toml"),
            "{err}"
        );
        let err = parse(&GOOD.replace("duration_s = 1.0", "duration_s = 1.0, sped = 2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sped"), "{err}");
    }

    #[test]
    fn inconsistent_profiles_are_refused_with_the_reason() {
        let twice = format!(
            "{GOOD}\n[[stream]]\nname = \"mic\"\nmodel = \"yamnet\"\nsource = {{ kind = \"synth\", duration_s = 1.0 }}\n"
        );
        assert!(
            parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("stream mic appears twice")
        );
        let no_sinks = GOOD.replace(r#"[{ kind = "jsonl", name = "out", path = "-" }]"#, "[]");
        assert!(
            parse(&no_sinks)
                .unwrap_err()
                .to_string()
                .contains("alerts would go nowhere")
        );
        let exposed = format!("{GOOD}\n[metrics]\nlisten = \"0.0.0.0:9464\"\n");
        assert!(
            parse(&exposed)
                .unwrap_err()
                .to_string()
                .contains("not a loopback address")
        );
        let long_name = GOOD.replace("name = \"mic\"", &format!("name = \"{}\"", "m".repeat(60)));
        assert!(
            parse(&long_name)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
        let mqtt = GOOD.replace(
            r#"[{ kind = "jsonl", name = "out", path = "-" }]"#,
            r#"[{ kind = "mqtt", name = "broker", host = "b" }]"#,
        );
        assert!(parse(&mqtt).is_ok());
        let err = parse(&mqtt.replace("name = \"mic\"", "name = \"mic/1\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stream name \"mic/1\" contains '/'") && err.contains("mqtt sink broker"),
            "{err}"
        );
        let err = parse(&mqtt.replace("name = \"t\"", "name = \"t#\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wildcard"), "{err}");
        let bad_kind = GOOD.replace("kind = \"synth\"", "kind = \"webcam\"");
        assert!(parse(&bad_kind).unwrap_err().to_string().contains("webcam"));
        assert!(parse("not toml = = =").is_err());
    }

    #[test]
    fn shipped_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("targets");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Profile::load(&path).unwrap_or_else(|err| panic!("{err}"));
            }
        }
    }
}
