//! The runtime end to end: sources (GStreamer, push-broom lines), the family pipelines, the
//! journaled alert bus and its sinks (JSON lines, MQTT against a real Mosquitto, webhooks),
//! evidence, hot reload, overload and stopping.

#[path = "../common/mod.rs"]
mod common;

mod alert_bus;
mod evidence_runtime;
mod gst_av_snippets;
mod gst_capture;
mod gst_end_to_end;
mod hot_reload;
mod hsi_runtime;
mod industrial_runtime;
mod mqtt_delivery;
mod pipeline_overload;
mod runtime_stop;
mod violence_runtime;
mod webhook_delivery;
