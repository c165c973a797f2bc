//! MAVD (arXiv 2501.07496), "aligning first, then fusing": the authors' heads ported to burn
//! ([`model`]), their published weights loaded with every tensor accounted for ([`weights`]),
//! and the sliding-window inference graph the runtime runs on tract ([`export`]).

#[cfg(feature = "gst")]
pub mod bench;
pub mod data;
#[cfg(feature = "gst")]
pub mod edge_data;
pub mod export;
pub mod losses;
pub mod model;
pub mod train;
pub mod weights;

/// Deterministic features for tests and parity probes, shaped like pooled ReLU features
/// (non-negative, smooth in time, varied across channels): value `(t, c)` of `modality` is
/// `½·(1 + sin(0.37·(t + 1)·(modality + 1) + 0.013·c·(c mod 7 + 1)))`, computed in f64.
/// `scripts/reference/mavd_reference.py` uses the same formula.
pub fn probe_features(snippets: usize, width: usize, modality: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(snippets * width);
    for t in 0..snippets {
        for c in 0..width {
            let (t, c, m) = (t as f64, c as f64, modality as f64);
            let phase = 0.37 * (t + 1.0) * (m + 1.0) + 0.013 * c * (c % 7.0 + 1.0);
            values.push((0.5 * (1.0 + phase.sin())) as f32);
        }
    }
    values
}
