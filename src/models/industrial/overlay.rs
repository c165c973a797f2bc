//! Heatmap snapshots written next to an alert: the camera frame with the anomaly map laid over
//! it in colour and the defect boxes outlined, as a PNG an operator can open anywhere.
//!
//! - The S×S map is upsampled to the frame bilinearly with half-pixel centres, the inverse of
//!   the resize that made the model's input, so the heat sits over the pixels that caused it.
//! - Scores are normalised by a fixed [`ScoreRange`] (typically 0 to twice the alert
//!   threshold), never by the frame's own maximum, so a colour means the same score in every
//!   snapshot and a clean frame does not light up.
//! - Colour: an inferno-like ramp (black → purple → red → orange → pale yellow) of nine control
//!   points chosen here, interpolated linearly. Its lightness rises monotonically, so it reads
//!   correctly in greyscale and to colour-blind viewers.
//! - Blend: out = frame + (colour − frame) · α with α = [`MAX_ALPHA`] · t, t the normalised
//!   score in [0, 1]. Where the score is at or below the range's low end the frame is left
//!   exactly as it was; hot regions are tinted strongly but stay see-through.
//! - Boxes are [`BOX_LINE_PX`]-pixel outlines in [`BOX_COLOUR`] (cyan, a hue the ramp never
//!   reaches), drawn inside their extents so they stay within the frame.
//!
//! PNG only: a JPEG encoder would be one more dependency for a file written once per alert,
//! and PNG keeps the frame's pixels exact for later review.

use std::path::{Path, PathBuf};

use super::boxes::DefectBox;

/// Strongest blend weight of the heat colour, reached at the top of the range: the defect
/// itself stays visible under the colour.
pub const MAX_ALPHA: f32 = 0.65;
/// Outline colour of defect boxes.
pub const BOX_COLOUR: [u8; 3] = [0, 255, 255];
/// Outline thickness of defect boxes, in frame pixels.
pub const BOX_LINE_PX: usize = 2;

/// Control points of the ramp, evenly spaced over [0, 1]. Picked by eye along an
/// inferno-like path with rising lightness (Rec. 709 luma 0, 19, 37, 60, 85, 116, 155, 202, 247).
const RAMP: [[u8; 3]; 9] = [
    [0, 0, 4],
    [30, 11, 70],
    [84, 16, 110],
    [136, 33, 106],
    [187, 55, 84],
    [228, 90, 49],
    [248, 142, 9],
    [245, 204, 52],
    [252, 254, 164],
];
/// Entries of the colour table the ramp is sampled into once, so a pixel costs one look-up.
const TABLE_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverlayError {
    #[error("frame size {width}×{height} is not usable: each side must be in 1..=u32::MAX")]
    InvalidFrame { width: usize, height: usize },
    #[error("frame holds {got} bytes, expected {expected} for {width}×{height} RGB8")]
    FrameLength {
        width: usize,
        height: usize,
        expected: usize,
        got: usize,
    },
    #[error("map side {side} is not usable: it must be at least 1 and side² must fit in memory")]
    InvalidSide { side: usize },
    #[error("anomaly map holds {got} values, expected {expected} for a {side}×{side} map")]
    MapLength {
        side: usize,
        expected: usize,
        got: usize,
    },
    #[error("anomaly map[{index}] (row {row}, column {column}) is {value}, not a finite number")]
    NonFiniteScore {
        index: usize,
        row: usize,
        column: usize,
        value: f32,
    },
    #[error("score range {low}..{high} is not usable: both must be finite and low < high")]
    InvalidRange { low: f32, high: f32 },
    #[error("snapshot name {stem:?} is not a plain file name (empty, `.`, `..` or a separator)")]
    InvalidStem { stem: String },
    #[error("heatmap snapshot not written ({reason}): {}", path.display())]
    Write { reason: String, path: PathBuf },
}

/// A camera frame: 8-bit RGB, row-major, `width·height·3` bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameRgb<'a> {
    pub rgb: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// A square anomaly map, row-major, as [`AnomalyMapper::map`](super::anomaly_map::AnomalyMapper::map)
/// writes it.
#[derive(Debug, Clone, Copy)]
pub struct MapView<'a> {
    pub scores: &'a [f32],
    pub side: usize,
}

/// The scores mapped onto the colour ramp: `low` and below is left uncoloured, `high` and above
/// gets the ramp's top colour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    low: f32,
    high: f32,
}

impl ScoreRange {
    pub fn new(low: f32, high: f32) -> Result<Self, OverlayError> {
        if low.is_finite() && high.is_finite() && low < high {
            Ok(Self { low, high })
        } else {
            Err(OverlayError::InvalidRange { low, high })
        }
    }

    /// 0 to twice the alert threshold: the threshold itself lands mid-ramp (red), so what
    /// alerted is clearly coloured and there is headroom to show how far above it a defect is.
    pub fn up_to_twice(threshold: f32) -> Result<Self, OverlayError> {
        Self::new(0.0, 2.0 * threshold)
    }

    pub fn low(&self) -> f32 {
        self.low
    }

    pub fn high(&self) -> f32 {
        self.high
    }
}

/// Where one output column (or row) samples the map: two neighbours and the weight of the second.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    lower: usize,
    upper: usize,
    weight: f32,
}

/// Renders heatmap overlays, reusing its image and sampling buffers between snapshots.
#[derive(Debug, Clone)]
pub struct HeatmapOverlay {
    colours: [[u8; 3]; TABLE_LEN],
    column_taps: Vec<Tap>,
    rgb: Vec<u8>,
}

impl Default for HeatmapOverlay {
    fn default() -> Self {
        Self::new()
    }
}

impl HeatmapOverlay {
    pub fn new() -> Self {
        let mut colours = [[0u8; 3]; TABLE_LEN];
        for (i, colour) in colours.iter_mut().enumerate() {
            *colour = ramp_colour(i as f32 / (TABLE_LEN - 1) as f32);
        }
        Self {
            colours,
            column_taps: Vec::new(),
            rgb: Vec::new(),
        }
    }

    /// The ramp's colour for a normalised score `t` in [0, 1] (clamped).
    pub fn colour(&self, t: f32) -> [u8; 3] {
        self.colours[table_index(t)]
    }

    /// The overlay image, `frame.width·frame.height·3` bytes of RGB8.
    pub fn render(
        &mut self,
        frame: FrameRgb<'_>,
        map: MapView<'_>,
        range: ScoreRange,
        boxes: &[DefectBox],
    ) -> Result<&[u8], OverlayError> {
        check_frame(frame)?;
        check_map(map)?;
        let (width, height, side) = (frame.width, frame.height, map.side);

        self.column_taps.clear();
        self.column_taps
            .extend((0..width).map(|x| tap(x, width, side)));
        self.rgb.clear();
        self.rgb.extend_from_slice(frame.rgb);

        let span = range.high - range.low;
        for (y, row) in self.rgb.chunks_exact_mut(width * 3).enumerate() {
            let row_tap = tap(y, height, side);
            let upper_row = &map.scores[row_tap.upper * side..(row_tap.upper + 1) * side];
            let lower_row = &map.scores[row_tap.lower * side..(row_tap.lower + 1) * side];
            for (pixel, column) in row.chunks_exact_mut(3).zip(&self.column_taps) {
                let along = |r: &[f32]| {
                    r[column.lower] + (r[column.upper] - r[column.lower]) * column.weight
                };
                let (top, bottom) = (along(lower_row), along(upper_row));
                let score = top + (bottom - top) * row_tap.weight;
                let t = ((score - range.low) / span).clamp(0.0, 1.0);
                if t == 0.0 {
                    // Left exactly as captured (the blend would give the same; this skips it).
                    continue;
                }
                let colour = self.colours[table_index(t)];
                let alpha = MAX_ALPHA * t;
                for (channel, &heat) in pixel.iter_mut().zip(&colour) {
                    let base = f32::from(*channel);
                    *channel = (base + (f32::from(heat) - base) * alpha).round() as u8;
                }
            }
        }

        for defect in boxes {
            outline(&mut self.rgb, width, height, defect);
        }
        Ok(&self.rgb)
    }

    /// Renders the overlay and writes it as `dir/<stem>.heatmap.png`; returns that path.
    pub fn write_png(
        &mut self,
        frame: FrameRgb<'_>,
        map: MapView<'_>,
        range: ScoreRange,
        boxes: &[DefectBox],
        dir: &Path,
        stem: &str,
    ) -> Result<PathBuf, OverlayError> {
        // A stem with a separator could write outside `dir`; refuse it rather than sanitise it,
        // so the caller's alert and its snapshot keep the same name.
        if stem.is_empty() || stem == "." || stem == ".." || stem.contains(['/', '\\', '\0']) {
            return Err(OverlayError::InvalidStem {
                stem: stem.to_owned(),
            });
        }
        let path = dir.join(format!("{stem}.heatmap.png"));
        self.render(frame, map, range, boxes)?;
        crate::io::png::write_rgb(&path, frame.width, frame.height, &self.rgb).map_err(
            |message| {
                // write_rgb's message is "<path>: <cause>"; keep the cause, put the path last.
                let prefix = format!("{}: ", path.display());
                let reason = message
                    .strip_prefix(&prefix)
                    .map_or_else(|| message.clone(), str::to_owned);
                OverlayError::Write {
                    reason,
                    path: path.clone(),
                }
            },
        )?;
        Ok(path)
    }
}

/// The ramp at `t` in [0, 1], interpolated linearly between control points.
fn ramp_colour(t: f32) -> [u8; 3] {
    let position = t.clamp(0.0, 1.0) * (RAMP.len() - 1) as f32;
    let lower = (position.floor() as usize).min(RAMP.len() - 2);
    let weight = position - lower as f32;
    let (a, b) = (RAMP[lower], RAMP[lower + 1]);
    let mut out = [0u8; 3];
    for ((o, &ca), &cb) in out.iter_mut().zip(&a).zip(&b) {
        let (ca, cb) = (f32::from(ca), f32::from(cb));
        *o = (ca + (cb - ca) * weight).round() as u8;
    }
    out
}

fn table_index(t: f32) -> usize {
    // NaN cannot reach here (scores are checked finite, the range is finite and non-empty).
    ((t.clamp(0.0, 1.0) * (TABLE_LEN - 1) as f32).round() as usize).min(TABLE_LEN - 1)
}

/// Bilinear sampling position of output index `i` of `out_len` in a map of `map_len`: the
/// half-pixel-centre convention of a resize with `align_corners=False`, clamped at the borders.
fn tap(i: usize, out_len: usize, map_len: usize) -> Tap {
    let source =
        ((i as f32 + 0.5) * map_len as f32 / out_len as f32 - 0.5).clamp(0.0, (map_len - 1) as f32);
    let lower = source.floor() as usize;
    Tap {
        lower,
        upper: (lower + 1).min(map_len - 1),
        weight: source - lower as f32,
    }
}

/// Draws the box's outline inside its extent, clipped to the frame.
fn outline(rgb: &mut [u8], width: usize, height: usize, defect: &DefectBox) {
    let (x0, y0) = (defect.x as usize, defect.y as usize);
    if x0 >= width || y0 >= height {
        return;
    }
    let x1 = x0.saturating_add(defect.width as usize).min(width);
    let y1 = y0.saturating_add(defect.height as usize).min(height);
    let mut fill = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        for y in rows {
            for x in cols.clone() {
                let at = (y * width + x) * 3;
                rgb[at..at + 3].copy_from_slice(&BOX_COLOUR);
            }
        }
    };
    fill(y0..(y0 + BOX_LINE_PX).min(y1), x0..x1);
    fill(y1.saturating_sub(BOX_LINE_PX).max(y0)..y1, x0..x1);
    fill(y0..y1, x0..(x0 + BOX_LINE_PX).min(x1));
    fill(y0..y1, x1.saturating_sub(BOX_LINE_PX).max(x0)..x1);
}

fn check_frame(frame: FrameRgb<'_>) -> Result<(), OverlayError> {
    let (width, height) = (frame.width, frame.height);
    let usable = |n: usize| n > 0 && u32::try_from(n).is_ok();
    let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
    let (true, true, Some(expected)) = (usable(width), usable(height), expected) else {
        return Err(OverlayError::InvalidFrame { width, height });
    };
    if frame.rgb.len() != expected {
        return Err(OverlayError::FrameLength {
            width,
            height,
            expected,
            got: frame.rgb.len(),
        });
    }
    Ok(())
}

fn check_map(map: MapView<'_>) -> Result<(), OverlayError> {
    let side = map.side;
    let expected = match side.checked_mul(side) {
        Some(n) if n > 0 => n,
        _ => return Err(OverlayError::InvalidSide { side }),
    };
    if map.scores.len() != expected {
        return Err(OverlayError::MapLength {
            side,
            expected,
            got: map.scores.len(),
        });
    }
    match map.scores.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(OverlayError::NonFiniteScore {
            index,
            row: index / side,
            column: index % side,
            value: map.scores[index],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a distinct colour per pixel, so a pixel left alone is recognisable.
    fn test_frame(width: usize, height: usize) -> Vec<u8> {
        (0..width * height)
            .flat_map(|i| [(i % 251) as u8, (i * 7 % 253) as u8, (i * 13 % 241) as u8])
            .collect()
    }

    fn pixel(rgb: &[u8], width: usize, x: usize, y: usize) -> [u8; 3] {
        let at = (y * width + x) * 3;
        [rgb[at], rgb[at + 1], rgb[at + 2]]
    }

    #[test]
    fn output_size_equals_frame_size_and_png_round_trips() {
        let (width, height) = (37, 23);
        let rgb = test_frame(width, height);
        let frame = FrameRgb {
            rgb: &rgb,
            width,
            height,
        };
        let scores: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let map = MapView {
            scores: &scores,
            side: 8,
        };
        let range = ScoreRange::up_to_twice(20.0).unwrap();
        let mut overlay = HeatmapOverlay::new();
        let rendered = overlay.render(frame, map, range, &[]).unwrap().to_vec();
        assert_eq!(rendered.len(), width * height * 3);

        let dir = tempfile::tempdir().unwrap();
        let path = overlay
            .write_png(frame, map, range, &[], dir.path(), "cam0-17")
            .unwrap();
        assert_eq!(path, dir.path().join("cam0-17.heatmap.png"));
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut decoded = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut decoded).unwrap();
        assert_eq!((info.width, info.height), (37, 23));
        assert_eq!(&decoded[..info.buffer_size()], &rendered[..]);
    }

    #[test]
    fn a_zero_map_leaves_the_frame_unchanged() {
        let (width, height) = (64, 48);
        let rgb = test_frame(width, height);
        let scores = vec![0.0; 224 * 224];
        let mut overlay = HeatmapOverlay::new();
        let out = overlay
            .render(
                FrameRgb {
                    rgb: &rgb,
                    width,
                    height,
                },
                MapView {
                    scores: &scores,
                    side: 224,
                },
                ScoreRange::new(0.0, 1.0).unwrap(),
                &[],
            )
            .unwrap();
        assert_eq!(out, &rgb[..]);
    }

    #[test]
    fn pixels_far_from_an_anomaly_keep_the_frame_colour() {
        let (width, height, side) = (160, 160, 16);
        let rgb = test_frame(width, height);
        let mut scores = vec![0.0; side * side];
        scores[side * side - 1] = 10.0; // bottom-right map pixel: frame pixels 150..160
        let mut overlay = HeatmapOverlay::new();
        let range = ScoreRange::new(0.0, 10.0).unwrap();
        let top = overlay.colour(1.0);
        let out = overlay
            .render(
                FrameRgb {
                    rgb: &rgb,
                    width,
                    height,
                },
                MapView {
                    scores: &scores,
                    side,
                },
                range,
                &[],
            )
            .unwrap();
        // Bilinear reaches one map pixel (10 frame pixels) around the hot one, no further.
        for y in 0..135 {
            for x in 0..width {
                assert_eq!(
                    pixel(out, width, x, y),
                    pixel(&rgb, width, x, y),
                    "({x}, {y})"
                );
            }
        }
        // The hot corner is blended at full strength with the ramp's top colour.
        let base = pixel(&rgb, width, 159, 159);
        let expected: Vec<u8> = base
            .iter()
            .zip(&top)
            .map(|(&b, &c)| {
                (f32::from(b) + (f32::from(c) - f32::from(b)) * MAX_ALPHA).round() as u8
            })
            .collect();
        assert_eq!(pixel(out, width, 159, 159).to_vec(), expected);
    }

    #[test]
    fn box_outlines_have_the_box_colour() {
        let (width, height) = (100, 80);
        let rgb = vec![40; width * height * 3];
        let scores = vec![0.0; 4];
        let defect = DefectBox {
            x: 10,
            y: 20,
            width: 30,
            height: 15,
            area_map_pixels: 1,
            peak_score: 1.0,
        };
        // A second box running off the frame is clipped, not a panic.
        let edge = DefectBox {
            x: 90,
            y: 70,
            width: 50,
            height: 50,
            area_map_pixels: 1,
            peak_score: 1.0,
        };
        let mut overlay = HeatmapOverlay::new();
        let out = overlay
            .render(
                FrameRgb {
                    rgb: &rgb,
                    width,
                    height,
                },
                MapView {
                    scores: &scores,
                    side: 2,
                },
                ScoreRange::new(0.0, 1.0).unwrap(),
                &[defect, edge],
            )
            .unwrap();
        for (x, y) in [
            (10, 20),
            (11, 21),
            (39, 34),
            (38, 33),
            (25, 20),
            (25, 34),
            (10, 27),
            (39, 27),
            (99, 79),
            (90, 75),
        ] {
            assert_eq!(pixel(out, width, x, y), BOX_COLOUR, "({x}, {y})");
        }
        for (x, y) in [
            (12, 22),
            (37, 32),
            (25, 27),
            (9, 20),
            (40, 27),
            (25, 35),
            (92, 72),
        ] {
            assert_eq!(pixel(out, width, x, y), [40, 40, 40], "({x}, {y})");
        }
    }

    #[test]
    fn the_ramp_gets_lighter_from_bottom_to_top() {
        let overlay = HeatmapOverlay::new();
        let luma = |c: [u8; 3]| {
            0.2126 * f32::from(c[0]) + 0.7152 * f32::from(c[1]) + 0.0722 * f32::from(c[2])
        };
        let mut previous = -1.0;
        for i in 0..TABLE_LEN {
            let l = luma(overlay.colour(i as f32 / (TABLE_LEN - 1) as f32));
            assert!(l >= previous, "entry {i}: luma {l} after {previous}");
            previous = l;
        }
        assert_eq!(overlay.colour(-3.0), RAMP[0]);
        assert_eq!(overlay.colour(7.0), RAMP[8]);
    }

    #[test]
    fn an_unwritable_path_gives_an_error_naming_it() {
        let rgb = test_frame(4, 4);
        let scores = vec![0.0; 4];
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the folder should be.
        let not_a_dir = dir.path().join("alerts");
        std::fs::write(&not_a_dir, b"").unwrap();
        let err = HeatmapOverlay::new()
            .write_png(
                FrameRgb {
                    rgb: &rgb,
                    width: 4,
                    height: 4,
                },
                MapView {
                    scores: &scores,
                    side: 2,
                },
                ScoreRange::new(0.0, 1.0).unwrap(),
                &[],
                &not_a_dir,
                "cam0-1",
            )
            .unwrap_err();
        let message = err.to_string();
        let path = not_a_dir.join("cam0-1.heatmap.png");
        assert!(message.ends_with(&path.display().to_string()), "{message}");
        assert!(matches!(err, OverlayError::Write { .. }), "{err:?}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let rgb = test_frame(4, 4);
        let scores = vec![0.0; 4];
        let frame = FrameRgb {
            rgb: &rgb,
            width: 4,
            height: 4,
        };
        let map = MapView {
            scores: &scores,
            side: 2,
        };
        let range = ScoreRange::new(0.0, 1.0).unwrap();
        let mut overlay = HeatmapOverlay::new();
        let dir = Path::new("/tmp");
        for stem in ["", "..", "a/b", "a\\b"] {
            let err = overlay
                .write_png(frame, map, range, &[], dir, stem)
                .unwrap_err();
            assert_eq!(
                err,
                OverlayError::InvalidStem {
                    stem: stem.to_owned()
                }
            );
        }
        let short = FrameRgb {
            rgb: &rgb[..47],
            width: 4,
            height: 4,
        };
        let err = overlay.render(short, map, range, &[]).unwrap_err();
        assert!(err.to_string().contains("47 bytes, expected 48"), "{err}");
        let nan = [0.0, f32::NAN, 0.0, 0.0];
        let err = overlay
            .render(
                frame,
                MapView {
                    scores: &nan,
                    side: 2,
                },
                range,
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains("map[1]"), "{err}");
        let err = overlay
            .render(
                frame,
                MapView {
                    scores: &scores,
                    side: 3,
                },
                range,
                &[],
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("holds 4 values, expected 9"),
            "{err}"
        );
        assert!(ScoreRange::new(1.0, 1.0).is_err());
        assert!(ScoreRange::up_to_twice(f32::NAN).is_err());
    }
}
