//! Defect boxes: the 8-connected regions of the pixel map above the alert threshold, as boxes in
//! the camera frame's pixels.
//!
//! The map is S×S (224 for ISSTAD) and the frame was resized to it whole (bilinear, half-pixel
//! centres), so map pixel c covers frame columns [c·W/S, (c+1)·W/S); a box is the smallest
//! whole-pixel rectangle covering its map pixels. Components smaller than a minimum area are
//! dropped so isolated noisy pixels never alert; the rest are ranked by peak score and capped.

use serde::{Deserialize, Serialize};

use crate::alert::{MAX_REGIONS, Region};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoxError {
    #[error("box threshold {threshold} is not a finite number")]
    InvalidThreshold { threshold: f32 },
    #[error("map side {side} is not usable: it must be at least 1 and side² must fit in u32")]
    InvalidSide { side: usize },
    #[error("pixel map holds {got} values, expected {expected} for a {side}×{side} map")]
    MapLength {
        side: usize,
        expected: usize,
        got: usize,
    },
    #[error("pixel map[{index}] (row {row}, column {column}) is {value}, not a finite number")]
    NonFiniteScore {
        index: usize,
        row: usize,
        column: usize,
        value: f32,
    },
    #[error("frame size {width}×{height} is not usable: each side must be in 1..=u32::MAX")]
    InvalidFrame { width: usize, height: usize },
}

/// One defect: where it is in the frame and how strong it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DefectBox {
    /// Left column and top row in frame pixels.
    pub x: u32,
    pub y: u32,
    /// Extent in frame pixels (at least 1 each).
    pub width: u32,
    pub height: u32,
    /// Pixels of the S×S anomaly map in this component (map pixels, not frame pixels: the
    /// minimum-area filter works on the map so it means the same for every camera).
    pub area_map_pixels: u32,
    /// Highest pixel-map score in the component.
    pub peak_score: f32,
}

impl DefectBox {
    /// The alert region for this box, scored by its peak.
    pub fn to_region(&self) -> Region {
        Region {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
            score: self.peak_score,
            map_xy: None,
        }
    }
}

/// How boxes are filtered, from the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoxConfig {
    /// Components with fewer map pixels are dropped. The default, 16 (a 4×4 patch, 0.03 % of a
    /// 224×224 map), is well above what one hot pixel spreads to after the σ = 4 blur crosses a
    /// threshold, and well below MVTec's smallest annotated defects.
    pub min_area_map_pixels: u32,
    /// Most boxes kept per frame, strongest first; by default as many as an alert carries.
    pub max_boxes: usize,
}

impl Default for BoxConfig {
    fn default() -> Self {
        Self {
            min_area_map_pixels: 16,
            max_boxes: MAX_REGIONS,
        }
    }
}

/// One frame's boxes, and what was left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoundBoxes<'a> {
    /// Strongest peak first (ties: larger, then upper, then lefter first).
    pub boxes: &'a [DefectBox],
    /// Components large enough but beyond `max_boxes`.
    pub dropped_over_cap: usize,
    /// Components smaller than `min_area_map_pixels`.
    pub dropped_too_small: usize,
}

/// Finds defect boxes frame after frame, reusing its buffers.
#[derive(Debug, Clone, Default)]
pub struct BoxFinder {
    config: BoxConfig,
    /// Map pixels already given to a component (or below threshold and looked at).
    visited: Vec<bool>,
    /// Pixels of the current component still to expand: an explicit stack, so a large
    /// component cannot overflow the call stack.
    pending: Vec<u32>,
    found: Vec<DefectBox>,
}

/// A component's extent while it is being grown, in map pixels.
struct Extent {
    min_x: usize,
    max_x: usize,
    min_y: usize,
    max_y: usize,
    area: u32,
    peak: f32,
}

impl BoxFinder {
    pub fn new(config: BoxConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn config(&self) -> BoxConfig {
        self.config
    }

    /// Boxes of the components of `pixel_map` (`side`×`side`) whose scores are above
    /// `threshold`, in the coordinates of a `frame_width`×`frame_height` frame.
    pub fn find(
        &mut self,
        pixel_map: &[f32],
        side: usize,
        threshold: f32,
        frame_width: usize,
        frame_height: usize,
    ) -> Result<FoundBoxes<'_>, BoxError> {
        if !threshold.is_finite() {
            return Err(BoxError::InvalidThreshold { threshold });
        }
        let pixels = match side.checked_mul(side) {
            Some(n) if n > 0 && u32::try_from(n).is_ok() => n,
            _ => return Err(BoxError::InvalidSide { side }),
        };
        if pixel_map.len() != pixels {
            return Err(BoxError::MapLength {
                side,
                expected: pixels,
                got: pixel_map.len(),
            });
        }
        if let Some(index) = pixel_map.iter().position(|v| !v.is_finite()) {
            return Err(BoxError::NonFiniteScore {
                index,
                row: index / side,
                column: index % side,
                value: pixel_map[index],
            });
        }
        let (Ok(frame_w), Ok(frame_h)) = (u32::try_from(frame_width), u32::try_from(frame_height))
        else {
            return Err(BoxError::InvalidFrame {
                width: frame_width,
                height: frame_height,
            });
        };
        if frame_w == 0 || frame_h == 0 {
            return Err(BoxError::InvalidFrame {
                width: frame_width,
                height: frame_height,
            });
        }

        self.visited.clear();
        self.visited.resize(pixels, false);
        self.found.clear();
        let mut dropped_too_small = 0;
        for start in 0..pixels {
            if self.visited[start] || pixel_map[start] <= threshold {
                continue;
            }
            let extent = self.grow(pixel_map, side, threshold, start);
            if extent.area < self.config.min_area_map_pixels {
                dropped_too_small += 1;
                continue;
            }
            self.found.push(to_frame(
                &extent,
                side,
                u64::from(frame_w),
                u64::from(frame_h),
            ));
        }

        self.found.sort_unstable_by(|a, b| {
            b.peak_score
                .total_cmp(&a.peak_score)
                .then(b.area_map_pixels.cmp(&a.area_map_pixels))
                .then(a.y.cmp(&b.y))
                .then(a.x.cmp(&b.x))
        });
        let dropped_over_cap = self.found.len().saturating_sub(self.config.max_boxes);
        self.found.truncate(self.config.max_boxes);
        Ok(FoundBoxes {
            boxes: &self.found,
            dropped_over_cap,
            dropped_too_small,
        })
    }

    /// Flood-fills the 8-connected component above `threshold` that contains `start`.
    fn grow(&mut self, map: &[f32], side: usize, threshold: f32, start: usize) -> Extent {
        let (sx, sy) = (start % side, start / side);
        let mut extent = Extent {
            min_x: sx,
            max_x: sx,
            min_y: sy,
            max_y: sy,
            area: 0,
            peak: map[start],
        };
        self.pending.clear();
        self.visited[start] = true;
        // `find` checked side² fits in u32.
        self.pending.push(start as u32);
        while let Some(index) = self.pending.pop() {
            let index = index as usize;
            let (x, y) = (index % side, index / side);
            extent.min_x = extent.min_x.min(x);
            extent.max_x = extent.max_x.max(x);
            extent.min_y = extent.min_y.min(y);
            extent.max_y = extent.max_y.max(y);
            extent.area += 1;
            extent.peak = extent.peak.max(map[index]);
            for ny in y.saturating_sub(1)..=(y + 1).min(side - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(side - 1) {
                    let neighbour = ny * side + nx;
                    if !self.visited[neighbour] && map[neighbour] > threshold {
                        self.visited[neighbour] = true;
                        self.pending.push(neighbour as u32);
                    }
                }
            }
        }
        extent
    }
}

/// Scales a component's map extent to frame pixels: first column ⌊min·W/S⌋, end column
/// ⌈(max+1)·W/S⌉ (exclusive), likewise for rows. The end is always past the start, so a box is
/// never empty, even when the frame is smaller than the map.
fn to_frame(extent: &Extent, side: usize, frame_w: u64, frame_h: u64) -> DefectBox {
    let s = side as u64;
    let start = |c: usize, f: u64| c as u64 * f / s;
    let end = |c: usize, f: u64| ((c as u64 + 1) * f).div_ceil(s);
    let (x0, x1) = (start(extent.min_x, frame_w), end(extent.max_x, frame_w));
    let (y0, y1) = (start(extent.min_y, frame_h), end(extent.max_y, frame_h));
    // All four are at most the frame's u32 size, since min ≤ max < S.
    DefectBox {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
        area_map_pixels: extent.area,
        peak_score: extent.peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min_area: u32, max_boxes: usize) -> BoxConfig {
        BoxConfig {
            min_area_map_pixels: min_area,
            max_boxes,
        }
    }

    fn paint(
        map: &mut [f32],
        side: usize,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        v: f32,
    ) {
        for y in rows {
            for x in cols.clone() {
                map[y * side + x] = v;
            }
        }
    }

    #[test]
    fn two_separate_blobs_give_two_boxes_with_exact_extents() {
        let side = 32;
        let mut map = vec![0.1; side * side];
        paint(&mut map, side, 2..5, 3..9, 2.0); // 3 rows × 6 columns
        paint(&mut map, side, 20..30, 10..12, 5.0); // 10 rows × 2 columns
        map[25 * side + 11] = 7.0;
        let mut finder = BoxFinder::new(config(1, 10));
        let found = finder.find(&map, side, 1.0, side, side).unwrap();
        assert_eq!(found.dropped_over_cap, 0);
        assert_eq!(found.dropped_too_small, 0);
        assert_eq!(
            found.boxes,
            &[
                DefectBox {
                    x: 10,
                    y: 20,
                    width: 2,
                    height: 10,
                    area_map_pixels: 20,
                    peak_score: 7.0
                },
                DefectBox {
                    x: 3,
                    y: 2,
                    width: 6,
                    height: 3,
                    area_map_pixels: 18,
                    peak_score: 2.0
                },
            ]
        );
    }

    #[test]
    fn diagonal_neighbours_join_under_8_connectivity() {
        let side = 10;
        let mut map = vec![0.0; side * side];
        // A staircase touching only at corners.
        for i in 2..7 {
            map[i * side + i] = 1.0 + i as f32;
        }
        let mut finder = BoxFinder::new(config(1, 10));
        let found = finder.find(&map, side, 0.5, side, side).unwrap();
        assert_eq!(
            found.boxes,
            &[DefectBox {
                x: 2,
                y: 2,
                width: 5,
                height: 5,
                area_map_pixels: 5,
                peak_score: 7.0
            }]
        );
    }

    #[test]
    fn extents_scale_to_a_640x480_frame() {
        let side = 224;
        let mut map = vec![0.0; side * side];
        paint(&mut map, side, 14..21, 7..14, 3.0);
        paint(&mut map, side, 223..224, 223..224, 1.0); // the bottom-right map pixel
        let mut finder = BoxFinder::new(config(1, 10));
        let found = finder.find(&map, side, 0.5, 640, 480).unwrap();
        // Columns 7..14 → [7·640/224, 14·640/224) = [20, 40); rows 14..21 → [30, 45).
        assert_eq!(
            found.boxes[0],
            DefectBox {
                x: 20,
                y: 30,
                width: 20,
                height: 15,
                area_map_pixels: 49,
                peak_score: 3.0
            }
        );
        // 223·640/224 = 637.14… → 637 up to the frame's edge.
        assert_eq!(
            found.boxes[1],
            DefectBox {
                x: 637,
                y: 477,
                width: 3,
                height: 3,
                area_map_pixels: 1,
                peak_score: 1.0
            }
        );
    }

    #[test]
    fn a_map_all_below_threshold_gives_no_boxes() {
        let side = 16;
        let map = vec![0.99; side * side];
        let mut finder = BoxFinder::new(BoxConfig::default());
        let found = finder.find(&map, side, 1.0, 100, 100).unwrap();
        assert!(found.boxes.is_empty());
        assert_eq!((found.dropped_over_cap, found.dropped_too_small), (0, 0));
        // Equal to the threshold is not above it.
        let found = finder
            .find(&vec![1.0; side * side], side, 1.0, 100, 100)
            .unwrap();
        assert!(found.boxes.is_empty());
    }

    #[test]
    fn small_components_and_those_over_the_cap_are_counted_as_dropped() {
        let side = 40;
        let mut map = vec![0.0; side * side];
        map[side + 1] = 9.0; // one hot pixel: noise
        paint(&mut map, side, 5..9, 5..9, 2.0);
        paint(&mut map, side, 5..9, 20..24, 4.0);
        paint(&mut map, side, 20..24, 5..9, 3.0);
        let mut finder = BoxFinder::new(config(16, 2));
        let found = finder.find(&map, side, 1.0, side, side).unwrap();
        assert_eq!(found.dropped_too_small, 1);
        assert_eq!(found.dropped_over_cap, 1);
        let peaks: Vec<f32> = found.boxes.iter().map(|b| b.peak_score).collect();
        assert_eq!(peaks, [4.0, 3.0]);
    }

    #[test]
    fn a_component_filling_the_whole_map_needs_no_recursion() {
        let side = 224;
        let map = vec![1.0; side * side];
        let mut finder = BoxFinder::new(BoxConfig::default());
        let found = finder.find(&map, side, 0.0, 1920, 1080).unwrap();
        assert_eq!(
            found.boxes,
            &[DefectBox {
                x: 0,
                y: 0,
                width: 1920,
                height: 1080,
                area_map_pixels: 50176,
                peak_score: 1.0
            }]
        );
        assert_eq!(found.boxes[0].to_region().width, 1920);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let mut finder = BoxFinder::new(BoxConfig::default());
        let map = vec![0.0; 16];
        let err = finder.find(&map, 4, f32::NAN, 8, 8).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
        let err = finder.find(&map[..15], 4, 1.0, 8, 8).unwrap_err();
        assert_eq!(
            err,
            BoxError::MapLength {
                side: 4,
                expected: 16,
                got: 15
            }
        );
        let mut bad = map.clone();
        bad[6] = f32::INFINITY;
        let err = finder.find(&bad, 4, 1.0, 8, 8).unwrap_err();
        assert!(
            err.to_string().contains("map[6] (row 1, column 2) is inf"),
            "{err}"
        );
        let err = finder.find(&map, 4, 1.0, 0, 8).unwrap_err();
        assert!(err.to_string().contains("0×8"), "{err}");
        assert_eq!(
            finder.find(&[], 0, 1.0, 8, 8).unwrap_err(),
            BoxError::InvalidSide { side: 0 }
        );
    }

    #[test]
    fn box_config_deserialises_with_defaults() {
        let c: BoxConfig = toml::from_str("max_boxes = 4").unwrap();
        assert_eq!(c, config(16, 4));
        assert!(toml::from_str::<BoxConfig>("min_area = 3").is_err());
    }
}
