//! vigil: real-time anomaly detection at the edge.
//!
//! The modules follow the data flow: [`capture`] → [`prepare`] → [`detector`] → [`decide`] →
//! [`alert`] → [`sinks`], wired together by [`pipeline`] from a [`profile`]; [`models`] holds
//! one folder per model family with the same parts in each.

pub mod alert;
pub mod bench;
pub mod capture;
pub mod decide;
pub mod detector;
pub mod eval;
pub mod evidence;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod hsi;
pub mod io;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod prepare;
pub mod profile;
pub mod rng;
pub mod runtime;
pub mod sinks;
pub mod soak;
#[cfg(feature = "train")]
pub mod train;

pub use alert::{Alert, Phase};
pub use detector::{Manifest, Plan};
pub use profile::Profile;
pub use runtime::Runtime;
