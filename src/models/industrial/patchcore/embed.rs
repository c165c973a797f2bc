//! Locally aware patch features, as PatchCore builds them from a backbone's intermediate maps:
//! each map is averaged over every 3×3 neighbourhood (stride 1, zero padding counted, as
//! `AvgPool2d(3, 1, 1)`), the deeper, coarser maps are resized bilinearly to the first map's
//! grid (`interpolate(mode="bilinear", align_corners=False)`), and the channels are
//! concatenated: one feature vector per cell of the first map's grid.
//!
//! The fit (`vigil-train industrial fit`) and the runtime both go through [`PatchEmbedder`], so
//! the bank holds exactly what a frame is compared with.

use serde::{Deserialize, Serialize};

use crate::prepare::resize::bilinear_taps;

/// One backbone output the patch features are cut from: `[1, channels, height, width]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapShape {
    /// The graph's output name.
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl TapShape {
    pub fn new(name: &str, channels: usize, height: usize, width: usize) -> Self {
        Self {
            name: name.into(),
            channels,
            height,
            width,
        }
    }

    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for TapShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}×{}×{}]",
            self.name, self.channels, self.height, self.width
        )
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    #[error("no feature layers given")]
    NoTaps,
    #[error("feature layer {tap} is empty")]
    EmptyTap { tap: String },
    #[error("feature layer {tap} is finer than the patch grid {height}×{width} of the first layer")]
    FinerThanGrid {
        tap: String,
        height: usize,
        width: usize,
    },
    #[error("{what}: got {got} values, expected {expected}")]
    Length {
        what: String,
        expected: usize,
        got: usize,
    },
}

/// Turns one frame's backbone outputs into `patches × dim` features, reusing its buffers.
#[derive(Debug, Clone)]
pub struct PatchEmbedder {
    taps: Vec<TapShape>,
    dim: usize,
    /// One tap after the 3×3 average, channel-major.
    pooled: Vec<f32>,
}

impl PatchEmbedder {
    pub fn new(taps: Vec<TapShape>) -> Result<Self, EmbedError> {
        let Some(first) = taps.first() else {
            return Err(EmbedError::NoTaps);
        };
        let (height, width) = (first.height, first.width);
        for tap in &taps {
            if tap.is_empty() {
                return Err(EmbedError::EmptyTap {
                    tap: tap.to_string(),
                });
            }
            if tap.height > height || tap.width > width {
                return Err(EmbedError::FinerThanGrid {
                    tap: tap.to_string(),
                    height,
                    width,
                });
            }
        }
        Ok(Self {
            dim: taps.iter().map(|tap| tap.channels).sum(),
            taps,
            pooled: Vec::new(),
        })
    }

    pub fn taps(&self) -> &[TapShape] {
        &self.taps
    }

    /// Values per patch.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The patch grid, `(rows, columns)`: the first tap's.
    pub fn grid(&self) -> (usize, usize) {
        (self.taps[0].height, self.taps[0].width)
    }

    pub fn patches(&self) -> usize {
        let (rows, columns) = self.grid();
        rows * columns
    }

    /// Writes the features of one frame, whose tap outputs are `outputs` (in [`Self::taps`]'s
    /// order, each `[channels, height, width]`), into `out` (`patches × dim`, row-major).
    pub fn embed(&mut self, outputs: &[&[f32]], out: &mut [f32]) -> Result<(), EmbedError> {
        if outputs.len() != self.taps.len() {
            return Err(EmbedError::Length {
                what: "backbone outputs".into(),
                expected: self.taps.len(),
                got: outputs.len(),
            });
        }
        let expected = self.patches() * self.dim;
        if out.len() != expected {
            return Err(EmbedError::Length {
                what: "patch features".into(),
                expected,
                got: out.len(),
            });
        }
        let (rows, columns) = self.grid();
        let mut offset = 0;
        for (tap, values) in self.taps.iter().zip(outputs) {
            if values.len() != tap.len() {
                return Err(EmbedError::Length {
                    what: format!("backbone output {tap}"),
                    expected: tap.len(),
                    got: values.len(),
                });
            }
            average_3x3(values, tap, &mut self.pooled);
            let plane = tap.height * tap.width;
            if (tap.height, tap.width) == (rows, columns) {
                for (channel, map) in self.pooled.chunks_exact(plane).enumerate() {
                    for (cell, &value) in map.iter().enumerate() {
                        out[cell * self.dim + offset + channel] = value;
                    }
                }
            } else {
                let row_taps: Vec<_> = (0..rows)
                    .map(|y| bilinear_taps(y, tap.height, rows))
                    .collect();
                let column_taps: Vec<_> = (0..columns)
                    .map(|x| bilinear_taps(x, tap.width, columns))
                    .collect();
                for (channel, map) in self.pooled.chunks_exact(plane).enumerate() {
                    for (y, &(top, bottom, fy)) in row_taps.iter().enumerate() {
                        let upper_row = &map[top * tap.width..][..tap.width];
                        let lower_row = &map[bottom * tap.width..][..tap.width];
                        for (x, &(left, right, fx)) in column_taps.iter().enumerate() {
                            let upper = upper_row[left] + (upper_row[right] - upper_row[left]) * fx;
                            let lower = lower_row[left] + (lower_row[right] - lower_row[left]) * fx;
                            out[(y * columns + x) * self.dim + offset + channel] =
                                upper + (lower - upper) * fy;
                        }
                    }
                }
            }
            offset += tap.channels;
        }
        Ok(())
    }
}

/// `AvgPool2d(kernel 3, stride 1, padding 1)` with the padded zeros counted (PyTorch's default),
/// on a `[channels, height, width]` map, into `out`.
fn average_3x3(values: &[f32], tap: &TapShape, out: &mut Vec<f32>) {
    let (height, width) = (tap.height, tap.width);
    out.clear();
    out.resize(values.len(), 0.0);
    let plane = height * width;
    for (map, pooled) in values.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for y in 0..height {
            let rows = y.saturating_sub(1)..(y + 2).min(height);
            for x in 0..width {
                let columns = x.saturating_sub(1)..(x + 2).min(width);
                let mut sum = 0.0;
                for row in rows.clone() {
                    sum += map[row * width + columns.start..row * width + columns.end]
                        .iter()
                        .sum::<f32>();
                }
                pooled[y * width + x] = sum / 9.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbourhood_average_counts_the_zero_padding() {
        let tap = TapShape::new("t", 1, 2, 3);
        let mut out = Vec::new();
        average_3x3(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &tap, &mut out);
        // Corner (0, 0): 1 + 2 + 4 + 5 = 12, over 9.
        let expected = [12.0, 21.0, 16.0, 12.0, 21.0, 16.0].map(|v| v / 9.0);
        for (got, want) in out.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn coarse_layers_are_upsampled_to_the_grid_and_concatenated() {
        // Constant maps stay constant under the average only away from the border; use the
        // centre of a 4×4 grid fed by a 2×2 layer whose pooled values are all 4/9.
        let taps = vec![
            TapShape::new("fine", 1, 4, 4),
            TapShape::new("coarse", 2, 2, 2),
        ];
        let mut embedder = PatchEmbedder::new(taps).unwrap();
        assert_eq!((embedder.dim(), embedder.patches()), (3, 16));
        let fine: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let coarse = [[1.0f32; 4], [2.0f32; 4]].concat();
        let mut out = vec![0.0; 48];
        embedder.embed(&[&fine, &coarse], &mut out).unwrap();
        // Cell (1, 1) of the fine map: mean of 0,1,2,4,5,6,8,9,10 = 5.
        assert!((out[5 * 3] - 5.0).abs() < 1e-6);
        // The 2×2 coarse map pools to 4/9 everywhere (each 3×3 window sees all four cells), so
        // its upsampled channels are 4/9 and 8/9 at every cell.
        for cell in 0..16 {
            assert!((out[cell * 3 + 1] - 4.0 / 9.0).abs() < 1e-6);
            assert!((out[cell * 3 + 2] - 8.0 / 9.0).abs() < 1e-6);
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert_eq!(PatchEmbedder::new(vec![]).unwrap_err(), EmbedError::NoTaps);
        let err = PatchEmbedder::new(vec![
            TapShape::new("a", 1, 2, 2),
            TapShape::new("b", 1, 4, 4),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("finer than the patch grid"), "{err}");
        let mut embedder = PatchEmbedder::new(vec![TapShape::new("a", 2, 2, 2)]).unwrap();
        let err = embedder
            .embed(&[&[0.0; 7]], &mut [0.0; 8])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backbone output a [2×2×2]: got 7 values, expected 8"),
            "{err}"
        );
    }
}
