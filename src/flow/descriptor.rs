//! A per-snippet motion descriptor from dense flow: what MAVD's flow stream reads on the edge
//! in place of I3D's flow features.
//!
//! Two classic descriptors side by side, both over a grid of cells:
//!
//! - a **histogram of flow** (HOF): per cell, the flow of every pixel binned by direction and
//!   weighted by its magnitude, averaged over the snippet's frame pairs;
//! - **violent flows** (ViF, Hassner et al., CVPR-W 2012): per cell, the mean absolute change of
//!   flow magnitude between consecutive pairs, which is high for the erratic motion of
//!   fights and low for steady walking or traffic;
//!
//! plus a histogram of all magnitudes on a log scale. Every part is an average, so the
//! descriptor does not depend on the snippet's frame count or the image size.

use super::FlowField;

/// Grid cells per side.
pub const GRID: usize = 4;
/// Direction bins of the HOF.
pub const DIRECTIONS: usize = 8;
/// Magnitude bins, log-spaced from 0.25 px to 16 px per frame.
pub const MAGNITUDES: usize = 8;
/// The descriptor's length.
pub const WIDTH: usize = GRID * GRID * DIRECTIONS + GRID * GRID + MAGNITUDES;

/// Accumulates the flow fields of one snippet into its descriptor.
#[derive(Debug, Clone)]
pub struct FlowDescriptor {
    histogram: Vec<f64>,
    violence: Vec<f64>,
    magnitudes: Vec<f64>,
    /// Per-cell mean magnitude of the previous pair (ViF compares consecutive pairs).
    previous: Option<Vec<f64>>,
    pairs: usize,
    changes: usize,
}

impl Default for FlowDescriptor {
    fn default() -> Self {
        Self {
            histogram: vec![0.0; GRID * GRID * DIRECTIONS],
            violence: vec![0.0; GRID * GRID],
            magnitudes: vec![0.0; MAGNITUDES],
            previous: None,
            pairs: 0,
            changes: 0,
        }
    }
}

fn magnitude_bin(magnitude: f32) -> usize {
    // Bin k holds [0.25·2^(k−1), 0.25·2^k), bin 0 everything below 0.25 px.
    if magnitude < 0.25 {
        return 0;
    }
    let k = (magnitude / 0.25).log2().floor() as usize + 1;
    k.min(MAGNITUDES - 1)
}

impl FlowDescriptor {
    /// Adds the flow between one pair of consecutive frames.
    pub fn add(&mut self, flow: &FlowField) {
        let (w, h) = (flow.width, flow.height);
        if w == 0 || h == 0 {
            return;
        }
        let mut histogram = vec![0.0f64; GRID * GRID * DIRECTIONS];
        let mut cell_magnitude = vec![0.0f64; GRID * GRID];
        let mut cell_pixels = [0usize; GRID * GRID];
        let mut magnitudes = vec![0.0f64; MAGNITUDES];
        for y in 0..h {
            let row = y * GRID / h;
            for x in 0..w {
                let cell = row * GRID + x * GRID / w;
                let (u, v) = (flow.u[y * w + x], flow.v[y * w + x]);
                let magnitude = (u * u + v * v).sqrt();
                if !magnitude.is_finite() {
                    continue;
                }
                let angle = v.atan2(u).rem_euclid(std::f32::consts::TAU);
                let direction = ((angle / std::f32::consts::TAU * DIRECTIONS as f32) as usize)
                    .min(DIRECTIONS - 1);
                histogram[cell * DIRECTIONS + direction] += f64::from(magnitude);
                cell_magnitude[cell] += f64::from(magnitude);
                cell_pixels[cell] += 1;
                magnitudes[magnitude_bin(magnitude)] += 1.0;
            }
        }
        let pixels = (w * h) as f64;
        for (cell, count) in cell_pixels.iter().enumerate() {
            let count = (*count).max(1) as f64;
            cell_magnitude[cell] /= count;
            for d in 0..DIRECTIONS {
                self.histogram[cell * DIRECTIONS + d] += histogram[cell * DIRECTIONS + d] / count;
            }
        }
        for (total, count) in self.magnitudes.iter_mut().zip(&magnitudes) {
            *total += count / pixels;
        }
        if let Some(previous) = &self.previous {
            for (total, (now, before)) in self
                .violence
                .iter_mut()
                .zip(cell_magnitude.iter().zip(previous))
            {
                *total += (now - before).abs();
            }
            self.changes += 1;
        }
        self.previous = Some(cell_magnitude);
        self.pairs += 1;
    }

    /// The descriptor ([`WIDTH`] values): HOF, then ViF, then the magnitude histogram. All
    /// zeros when no pair was added.
    pub fn finish(&self) -> Vec<f32> {
        let pairs = self.pairs.max(1) as f64;
        let changes = self.changes.max(1) as f64;
        self.histogram
            .iter()
            .map(|v| v / pairs)
            .chain(self.violence.iter().map(|v| v / changes))
            .chain(self.magnitudes.iter().map(|v| v / pairs))
            .map(|v| v as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(w: usize, h: usize, u: f32, v: f32) -> FlowField {
        FlowField {
            width: w,
            height: h,
            u: vec![u; w * h],
            v: vec![v; w * h],
        }
    }

    #[test]
    fn steady_motion_fills_one_direction_and_no_violence() {
        let mut descriptor = FlowDescriptor::default();
        for _ in 0..5 {
            descriptor.add(&uniform(32, 24, 2.0, 0.0));
        }
        let d = descriptor.finish();
        assert_eq!(d.len(), WIDTH);
        // Every cell: all of its 2 px mean magnitude in direction bin 0 (rightwards).
        for cell in 0..GRID * GRID {
            assert!((d[cell * DIRECTIONS] - 2.0).abs() < 1e-6);
            assert!(
                d[cell * DIRECTIONS + 1..(cell + 1) * DIRECTIONS]
                    .iter()
                    .all(|v| *v == 0.0)
            );
        }
        let vif = &d[GRID * GRID * DIRECTIONS..GRID * GRID * DIRECTIONS + GRID * GRID];
        assert!(vif.iter().all(|v| *v == 0.0));
        // 2 px falls in bin 4, [2, 4).
        let magnitudes = &d[WIDTH - MAGNITUDES..];
        assert_eq!(magnitudes[magnitude_bin(2.0)], 1.0);
    }

    #[test]
    fn erratic_motion_raises_violent_flows() {
        let mut steady = FlowDescriptor::default();
        let mut erratic = FlowDescriptor::default();
        for pair in 0..6 {
            steady.add(&uniform(16, 16, 3.0, 0.0));
            let speed = if pair % 2 == 0 { 0.5 } else { 6.0 };
            erratic.add(&uniform(16, 16, 0.0, speed));
        }
        let vif = |d: &[f32]| -> f32 { d[GRID * GRID * DIRECTIONS..][..GRID * GRID].iter().sum() };
        assert_eq!(vif(&steady.finish()), 0.0);
        assert!((vif(&erratic.finish()) - 16.0 * 5.5).abs() < 1e-3);
        // Downwards motion lands in the quarter-turn bin.
        assert!(erratic.finish()[DIRECTIONS / 4] > 0.0);
        assert_eq!(FlowDescriptor::default().finish(), vec![0.0; WIDTH]);
    }
}
