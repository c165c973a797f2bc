//! What a profile's `[[alerts.sinks]]` entries say, for every kind of sink, whether or not this
//! build has the sink itself: a box built without MQTT or webhooks (`--no-default-features`)
//! still reads any profile and says plainly which sink it lacks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// A `[[alerts.sinks]]` entry of kind `mqtt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    pub name: String,
    pub host: String,
    /// Default 1883, or 8883 with `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Default `vigil-<box name>`; must be unique among the broker's clients.
    #[serde(default)]
    pub client_id: Option<String>,
    /// First topic level of everything this box publishes.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (its first line), so that profiles can be shared and
    /// versioned without the secret.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS to the broker; absent: plain TCP.
    #[serde(default)]
    pub tls: Option<MqttTls>,
    /// The broker declares the box dead (and publishes its Last Will) after 1.5 × this.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// How long a publish may wait for its PUBACK before the alert is retried.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM certificates to trust; absent: the Mozilla roots compiled into vigil.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain and key, for brokers that authenticate clients by
    /// certificate (`require_certificate true` in Mosquitto). Both or neither.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_topic_prefix() -> String {
    "vigil".into()
}

fn default_keep_alive_s() -> u64 {
    30
}

fn default_ack_timeout_ms() -> u64 {
    10_000
}

/// Characters that cannot appear in one topic level of a topic we publish to.
pub fn bad_topic_level(level: &str) -> Option<&'static str> {
    if level.is_empty() {
        Some("is empty")
    } else if level.contains('/') {
        Some("contains '/'")
    } else if level.contains(['+', '#']) {
        Some("contains an MQTT wildcard ('+' or '#')")
    } else if level.contains('\0') {
        Some("contains a NUL character")
    } else {
        None
    }
}

/// A `[[alerts.sinks]]` entry of kind `webhook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub name: String,
    /// `http://` or `https://` (Mozilla's roots).
    pub url: String,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whole-request limit: connect, send and read the answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5_000
}
