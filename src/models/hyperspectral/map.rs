//! Anomaly-map images: scores as a grey ramp (log-scaled, since RX scores span decades), pixels
//! above the threshold in red, written as RGB PNG.

use std::path::Path;

/// Writes a `rows × cols` score map (row-major) to `path`.
pub fn write_png(
    path: &Path,
    rows: usize,
    cols: usize,
    scores: &[f32],
    threshold: f64,
) -> Result<(), String> {
    if scores.len() != rows * cols || rows == 0 || cols == 0 {
        return Err(format!(
            "{} scores do not make a {rows}×{cols} map",
            scores.len()
        ));
    }
    let logs: Vec<f64> = scores
        .iter()
        .map(|&s| f64::from(s.max(0.0)).ln_1p())
        .collect();
    let (lo, hi) = logs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut rgb = Vec::with_capacity(rows * cols * 3);
    for (&score, &log) in scores.iter().zip(&logs) {
        if f64::from(score) > threshold {
            rgb.extend_from_slice(&[255, 32, 32]);
        } else {
            let grey = (255.0 * (log - lo) / span).round().clamp(0.0, 255.0) as u8;
            rgb.extend_from_slice(&[grey, grey, grey]);
        }
    }
    crate::io::png::write_rgb(path, cols, rows, &rgb)
}
