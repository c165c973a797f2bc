//! PatchCore (Roth et al., CVPR 2022) for the factory line: a memory bank of locally aware patch
//! features from a frozen ImageNet backbone, fitted on good parts only, and per-patch
//! nearest-neighbour distances to it as the anomaly map. No training: fitting is feature
//! extraction and coreset subsampling (`vigil-train industrial fit`), minutes on the box's CPU.
//!
//! - [`embed`]: backbone maps to patch features (3×3 neighbourhood average, one grid);
//! - [`bank`]: the bank file and the checks that it belongs to the backbone;
//! - [`search`]: exact nearest neighbours by blocked distance products;
//! - [`model`]: the detector: features, distances, pixel map and re-weighted image score.

pub mod bank;
pub mod embed;
mod model;
pub mod search;

pub use model::{INPUT, PatchCoreDetector, PatchCoreSpec, PatchFeatures};

/// The manifest's `family` of PatchCore models.
pub const FAMILY: &str = "patchcore";

/// The paper's b: neighbours of m* its image-score weight is computed over.
pub const DEFAULT_NEIGHBOURS: usize = 9;
