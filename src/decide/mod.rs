//! Decide: scores to alerts. A [`Tracker`] per (stream, label) turns a score series into
//! events with a lifecycle (new, update, end); hysteresis keeps a flickering score from
//! opening and closing events on every window.

mod factory;
mod hysteresis;

pub use factory::{AlertFactory, NameTooLong, name};
pub use hysteresis::{Hysteresis, Tracker, Transition};
