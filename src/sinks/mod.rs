//! Sinks: where alerts go. The [`AlertBus`] writes each alert to the durable journal first,
//! then hands it to every sink; a sink's acknowledgement is what lets the journal forget it.

mod bus;
pub mod journal;
mod jsonl;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod settings;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use bus::{AlertBus, BusError};
pub use jsonl::JsonLines;
#[cfg(feature = "mqtt")]
pub use mqtt::MqttSink;
pub use settings::{MqttSettings, MqttTls, WebhookSettings};
#[cfg(feature = "webhook")]
pub use webhook::Webhook;

use crate::alert::Alert;

/// A sink could not take an alert now; the bus retries it later from the journal.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}: {detail}")]
pub struct SinkError {
    pub sink: String,
    pub detail: String,
}

/// A destination for alerts. Delivery is at-least-once: after a crash the journal may hand a
/// sink an alert it already delivered, which it recognises by `Alert::id`.
pub trait Sink: Send {
    /// Stable name: the journal keeps each sink's acknowledgements under it.
    fn name(&self) -> &str;
    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError>;
}

/// The event body: what the record is in the event's life, which box sent it, and the alert.
pub fn event_body(box_name: &str, alert: &Alert) -> Result<Vec<u8>, String> {
    #[derive(serde::Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: crate::alert::Phase,
        #[serde(rename = "box")]
        box_name: &'a str,
        alert: &'a Alert,
    }
    serde_json::to_vec(&Event {
        kind: alert.phase,
        box_name,
        alert,
    })
    .map_err(|err| format!("alert {} cannot be encoded: {err}", alert.id))
}
