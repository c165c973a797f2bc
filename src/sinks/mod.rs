//! Sinks: where alerts go. The [`AlertBus`] writes each alert to the durable journal first,
//! then hands it to every sink; a sink's acknowledgement is what lets the journal forget it.

mod bus;
pub mod journal;
mod jsonl;

pub use bus::{AlertBus, BusError};
pub use jsonl::JsonLines;

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
