//! Heatmap snapshots written next to an alert: one PNG an operator understands at a glance,
//! two panels side by side at the frame's full resolution, split by a thin separator.
//!
//! - Left, the frame as captured: the defect boxes outlined and, when the model saw only part
//!   of the frame, that region outlined with a thin dashed line of another colour.
//! - Right, the heatmap: a grey, dimmed copy of the frame with the anomaly map over the
//!   model's region in colour, the same boxes, and a colour bar with the score range.
//!
//! How the heatmap is drawn:
//! - The S×S map is resized to the region bilinearly with half-pixel centres, the inverse of
//!   the resize that made the model's input, so the heat sits over the pixels that caused it.
//! - Scores are normalised by a fixed [`ScoreRange`] (typically 0 to twice the pixel
//!   threshold), never by the frame's own maximum, so a colour means the same score in every
//!   snapshot and a clean frame does not light up.
//! - Colour: an inferno-like ramp (black → purple → red → orange → pale yellow) of nine control
//!   points chosen here, interpolated linearly. Its lightness rises monotonically, so it reads
//!   correctly in greyscale and to colour-blind viewers.
//! - The frame under it is turned grey and dimmed so that colour only ever means score.
//!   Blend: out = grey + (colour − grey) · α with α rising from [`MIN_ALPHA`] to [`MAX_ALPHA`]
//!   over the range. At or below the range's low end, and outside the region, the grey frame
//!   is left as it is, so the region the model saw shows as the tinted part.
//! - The colour bar (top right) runs from the range's low end (bottom) to its high end (top),
//!   with ticks and values at both ends and in the middle (the pixel threshold, for
//!   [`ScoreRange::up_to_twice`]).
//!
//! Lines scale with the frame: box outlines are 2 px at 640×480 ([`Layout::line`]).
//!
//! The file is written under a temporary name and renamed into place, so a reader never sees
//! half an image. It is not fsynced: a snapshot lost to a power cut costs a picture, not an
//! alert (alerts are journaled separately). PNG only: it keeps the frame's pixels exact for
//! later review; the fast deflate keeps a 640×480 snapshot to a few milliseconds.

use std::path::{Path, PathBuf};

use super::boxes::DefectBox;
use crate::prepare::resize::Crop;

/// Blend weight of the heat colour just above the range's low end.
pub const MIN_ALPHA: f32 = 0.6;
/// Blend weight of the heat colour at the top of the range: the grey frame still shows the
/// defect's texture faintly under it.
pub const MAX_ALPHA: f32 = 0.9;
/// Share of the grey frame's brightness kept on the heatmap panel.
pub const DIM: f32 = 0.6;
/// Outline colour of defect boxes, a hue the ramp never reaches.
pub const BOX_COLOUR: [u8; 3] = [0, 255, 255];
/// The dark edge around box outlines, so they stand out on light and cyan-ish frames too.
pub const BOX_EDGE_COLOUR: [u8; 3] = [0, 0, 0];
/// Dashed outline of the model's region on the frame panel.
pub const REGION_COLOUR: [u8; 3] = [255, 64, 255];
/// The line between the two panels.
pub const SEPARATOR_COLOUR: [u8; 3] = [255, 255, 255];
/// Ticks, labels and the bar's border in the colour bar.
pub const LEGEND_COLOUR: [u8; 3] = [255, 255, 255];

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
/// Frame height (of a 4:3 frame) at which lines are [`BASE_LINE_PX`] thick.
const BASE_SHORT_SIDE: usize = 480;
const BASE_LINE_PX: usize = 2;

/// A 3×5 pixel font for the colour bar's labels: the digits, `.`, `-` and `e`, each row's
/// bits left to right (`.` is one pixel wide, the rest three).
const GLYPHS: [(char, [u8; 5]); 13] = [
    ('0', [0b111, 0b101, 0b101, 0b101, 0b111]),
    ('1', [0b010, 0b110, 0b010, 0b010, 0b111]),
    ('2', [0b111, 0b001, 0b111, 0b100, 0b111]),
    ('3', [0b111, 0b001, 0b111, 0b001, 0b111]),
    ('4', [0b101, 0b101, 0b111, 0b001, 0b001]),
    ('5', [0b111, 0b100, 0b111, 0b001, 0b111]),
    ('6', [0b111, 0b100, 0b111, 0b101, 0b111]),
    ('7', [0b111, 0b001, 0b001, 0b001, 0b001]),
    ('8', [0b111, 0b101, 0b111, 0b101, 0b111]),
    ('9', [0b111, 0b101, 0b111, 0b001, 0b111]),
    ('.', [0b0, 0b0, 0b0, 0b0, 0b1]),
    ('-', [0b000, 0b000, 0b111, 0b000, 0b000]),
    ('e', [0b000, 0b011, 0b111, 0b100, 0b011]),
];
const GLYPH_WIDTH: usize = 3;
const GLYPH_HEIGHT: usize = 5;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverlayError {
    #[error(
        "frame size {width}×{height} is not usable: each side must be at least 1 and the \
         two-panel snapshot must fit a PNG (width under 2³¹)"
    )]
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
    #[error(
        "map region {width}×{height} at ({x}, {y}) is not inside the \
         {frame_width}×{frame_height} frame: it must be at least 1×1 and end within the frame"
    )]
    RegionOutsideFrame {
        x: usize,
        y: usize,
        width: usize,
        height: usize,
        frame_width: usize,
        frame_height: usize,
    },
    #[error("score range {low}..{high} is not usable: both must be finite and low < high")]
    InvalidRange { low: f32, high: f32 },
    #[error("snapshot name {stem:?} is not a plain file name (empty, `.`, `..` or a separator)")]
    InvalidStem { stem: String },
    #[error("heatmap snapshot not written ({reason}): {}", path.display())]
    Write { reason: String, path: PathBuf },
}

/// An 8-bit RGB image, row-major, `width·height·3` bytes: a camera frame, or the snapshot
/// [`HeatmapOverlay::render`] composes.
#[derive(Debug, Clone, Copy)]
pub struct FrameRgb<'a> {
    pub rgb: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// A square anomaly map, row-major, as [`AnomalyMapper::map`](super::anomaly_map::AnomalyMapper::map)
/// writes it, and the rectangle of the frame it covers (the region the model saw;
/// [`Crop::whole`] for the whole frame).
#[derive(Debug, Clone, Copy)]
pub struct MapView<'a> {
    pub scores: &'a [f32],
    pub side: usize,
    pub region: Crop,
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

    /// 0 to twice the pixel threshold: the threshold itself lands mid-ramp (red), so what
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

/// A rectangle in panel pixels, `x1` and `y1` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Rect {
    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// Where the snapshot's parts go for one frame size: two `frame_width`×`frame_height` panels
/// with a separator between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub frame_width: usize,
    pub frame_height: usize,
    /// Thickness of box outlines: 2 px at 640×480, in proportion to the frame's shorter side,
    /// at least 1. The region outline, box edges and the bar's border are half of it (≥ 1).
    pub line: usize,
    /// Width of the separator between the panels.
    pub separator: usize,
    /// Left column of the heatmap panel in the snapshot.
    pub heat_x: usize,
    /// The snapshot's size.
    pub width: usize,
    pub height: usize,
}

impl Layout {
    /// The layout for a frame; `None` if the snapshot would not fit a PNG (sides in
    /// 1..2³¹) or memory.
    pub fn new(frame_width: usize, frame_height: usize) -> Option<Self> {
        let short = frame_width.min(frame_height);
        let line = ((short * BASE_LINE_PX + BASE_SHORT_SIDE / 2) / BASE_SHORT_SIDE).max(1);
        let separator = 2 * line;
        let heat_x = frame_width.checked_add(separator)?;
        let width = heat_x.checked_add(frame_width)?;
        let fits = |n: usize| n > 0 && n <= i32::MAX as usize;
        if !(fits(frame_width) && fits(frame_height) && fits(width)) {
            return None;
        }
        width.checked_mul(frame_height)?.checked_mul(3)?;
        Some(Self {
            frame_width,
            frame_height,
            line,
            separator,
            heat_x,
            width,
            height: frame_height,
        })
    }

    /// Thickness of the thin lines: region outline, box edges, the bar's border and ticks.
    pub fn thin(&self) -> usize {
        (self.line / 2).max(1)
    }

    /// The colour bar's block (bar, ticks, labels and their dark backing) in heatmap-panel
    /// pixels; `None` when the panel is too small to hold it, and none is drawn.
    pub fn legend(&self, range: ScoreRange) -> Option<Rect> {
        self.legend_parts(range).map(|parts| parts.block)
    }

    fn legend_parts(&self, range: ScoreRange) -> Option<LegendParts> {
        let line = self.line;
        let glyph = line; // 3×5 glyphs drawn at `line` pixels per font pixel
        let margin = 3 * line;
        let pad = 2 * line;
        let bar_width = 4 * line;
        let tick = 2 * line;
        let bar_height = self.frame_height / 3;
        let (low, high) = (label(range.low), label(range.high));
        let mid = label(range.low + (range.high - range.low) / 2.0);
        let label_width = [&low, &mid, &high]
            .map(|text| text_width(text, glyph))
            .into_iter()
            .max()
            .unwrap_or(0);
        let half_glyph = GLYPH_HEIGHT * glyph / 2 + 1;

        let block_x1 = self.frame_width.checked_sub(margin)?;
        let bar_x1 = block_x1.checked_sub(pad)?;
        let bar_x0 = bar_x1.checked_sub(bar_width)?;
        let label_x1 = bar_x0.checked_sub(tick + glyph)?;
        let block_x0 = label_x1.checked_sub(label_width + pad)?;
        let block_y0 = margin;
        let bar_y0 = block_y0 + pad + half_glyph;
        let bar_y1 = bar_y0 + bar_height;
        let block_y1 = bar_y1 + half_glyph + pad;
        if bar_height < 2 || block_y1 > self.frame_height {
            return None;
        }
        Some(LegendParts {
            block: Rect {
                x0: block_x0,
                y0: block_y0,
                x1: block_x1,
                y1: block_y1,
            },
            bar: Rect {
                x0: bar_x0,
                y0: bar_y0,
                x1: bar_x1,
                y1: bar_y1,
            },
            tick,
            glyph,
            label_x1,
            low,
            mid,
            high,
        })
    }
}

/// The colour bar's parts, in heatmap-panel pixels, all inside the panel.
struct LegendParts {
    block: Rect,
    bar: Rect,
    tick: usize,
    glyph: usize,
    /// Right end of the labels.
    label_x1: usize,
    low: Label,
    /// The middle of the range: the pixel threshold for [`ScoreRange::up_to_twice`].
    mid: Label,
    high: Label,
}

type Label = heapless::String<16>;

/// A score as the colour bar writes it: three significant digits or so, in at most
/// eight characters of the font's alphabet.
fn label(value: f32) -> Label {
    use std::fmt::Write as _;
    let mut text = Label::new();
    let magnitude = value.abs();
    // Each fits 16 bytes (the longest, `-1.0e-38`, is 8), so `write!` cannot fail.
    let _ = if magnitude == 0.0 {
        write!(text, "0")
    } else if !(0.01..1000.0).contains(&magnitude) {
        write!(text, "{value:.1e}")
    } else if magnitude >= 100.0 {
        write!(text, "{value:.0}")
    } else if magnitude >= 10.0 {
        write!(text, "{value:.1}")
    } else {
        write!(text, "{value:.2}")
    };
    text
}

/// Where one output column (or row) samples the map: two neighbours and the weight of the second.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    lower: usize,
    upper: usize,
    weight: f32,
}

/// Renders heatmap snapshots, reusing its image, sampling and PNG buffers between snapshots.
#[derive(Debug, Clone)]
pub struct HeatmapOverlay {
    colours: [[u8; 3]; TABLE_LEN],
    column_taps: Vec<Tap>,
    rgb: Vec<u8>,
    png: Vec<u8>,
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
            png: Vec::new(),
        }
    }

    /// The ramp's colour for a normalised score `t` in [0, 1] (clamped).
    pub fn colour(&self, t: f32) -> [u8; 3] {
        self.colours[table_index(t)]
    }

    /// The snapshot: frame panel, separator and heatmap panel side by side, each panel the
    /// frame's size ([`Layout`] gives the geometry).
    pub fn render(
        &mut self,
        frame: FrameRgb<'_>,
        map: MapView<'_>,
        range: ScoreRange,
        boxes: &[DefectBox],
    ) -> Result<FrameRgb<'_>, OverlayError> {
        let layout = check_frame(frame)?;
        check_map(map)?;
        check_region(map.region, frame)?;
        let (width, height, side, region) = (frame.width, frame.height, map.side, map.region);
        let stride = layout.width * 3;

        // Both panels start as the frame: as captured on the left, grey and dimmed on the right.
        self.rgb.clear();
        self.rgb.resize(stride * height, 0);
        for (row, source) in self
            .rgb
            .chunks_exact_mut(stride)
            .zip(frame.rgb.chunks_exact(width * 3))
        {
            let (left, rest) = row.split_at_mut(width * 3);
            left.copy_from_slice(source);
            let (separator, right) = rest.split_at_mut(layout.separator * 3);
            for pixel in separator.chunks_exact_mut(3) {
                pixel.copy_from_slice(&SEPARATOR_COLOUR);
            }
            for (pixel, rgb) in right.chunks_exact_mut(3).zip(source.chunks_exact(3)) {
                pixel.copy_from_slice(&dimmed_grey(rgb));
            }
        }

        // The map, resized to the region, over the grey.
        self.column_taps.clear();
        self.column_taps
            .extend((0..region.width).map(|x| tap(x, region.width, side)));
        let span = range.high - range.low;
        for y in 0..region.height {
            let row_tap = tap(y, region.height, side);
            let upper_row = &map.scores[row_tap.upper * side..(row_tap.upper + 1) * side];
            let lower_row = &map.scores[row_tap.lower * side..(row_tap.lower + 1) * side];
            let start = ((region.y + y) * layout.width + layout.heat_x + region.x) * 3;
            let row = &mut self.rgb[start..start + region.width * 3];
            for (pixel, column) in row.chunks_exact_mut(3).zip(&self.column_taps) {
                let along = |r: &[f32]| {
                    r[column.lower] + (r[column.upper] - r[column.lower]) * column.weight
                };
                let (top, bottom) = (along(lower_row), along(upper_row));
                let score = top + (bottom - top) * row_tap.weight;
                let t = ((score - range.low) / span).clamp(0.0, 1.0);
                if t == 0.0 {
                    continue;
                }
                let colour = self.colours[table_index(t)];
                let alpha = MIN_ALPHA + (MAX_ALPHA - MIN_ALPHA) * t;
                for (channel, &heat) in pixel.iter_mut().zip(&colour) {
                    let base = f32::from(*channel);
                    *channel = (base + (f32::from(heat) - base) * alpha).round() as u8;
                }
            }
        }

        let thin = layout.thin();
        let mut left = Canvas {
            rgb: &mut self.rgb,
            stride,
            x: 0,
            width,
            height,
        };
        if region != Crop::whole(width, height) {
            let rect = Rect {
                x0: region.x,
                y0: region.y,
                x1: region.x + region.width,
                y1: region.y + region.height,
            };
            left.dashed_ring(rect, thin, 4 * layout.line, REGION_COLOUR);
        }
        draw_boxes(&mut left, boxes, layout);
        let mut right = Canvas {
            x: layout.heat_x,
            ..left
        };
        draw_boxes(&mut right, boxes, layout);
        if let Some(legend) = layout.legend_parts(range) {
            draw_legend(&mut right, &legend, &self.colours, thin);
        }
        Ok(FrameRgb {
            rgb: &self.rgb,
            width: layout.width,
            height: layout.height,
        })
    }

    /// Renders the snapshot and writes it as `dir/<stem>.heatmap.png`; returns that path.
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
        let image = self.render(frame, map, range, boxes)?;
        let (width, height) = (image.width, image.height);
        encode_png(&mut self.png, &self.rgb, width, height).map_err(|reason| {
            OverlayError::Write {
                reason,
                path: path.clone(),
            }
        })?;
        // Hidden and suffixed, so a reader globbing `*.heatmap.png` never opens it half-written.
        let partial = dir.join(format!(".{stem}.heatmap.png.partial"));
        let written = std::fs::write(&partial, &self.png)
            .map_err(|err| format!("writing: {err}"))
            .and_then(|()| {
                std::fs::rename(&partial, &path)
                    .map_err(|err| format!("renaming into place: {err}"))
            });
        if let Err(reason) = written {
            // Best effort: the write's failure is the error to report, and a leftover
            // `.partial` file is hidden and overwritten by the next try of this name.
            let _ = std::fs::remove_file(&partial);
            return Err(OverlayError::Write { reason, path });
        }
        Ok(path)
    }
}

/// Encodes RGB8 pixels as a PNG into `out` (cleared first), with the fast deflate: a 640×480
/// snapshot takes a few milliseconds instead of tens with the default level.
fn encode_png(out: &mut Vec<u8>, rgb: &[u8], width: usize, height: usize) -> Result<(), String> {
    let failed = |err: png::EncodingError| format!("encoding: {err}");
    // `Layout::new` keeps both sides under 2³¹.
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(format!("encoding: {width}×{height} is too large for a PNG"));
    };
    out.clear();
    let mut encoder = png::Encoder::new(&mut *out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(rgb).map_err(failed)?;
    writer.finish().map_err(failed)
}

/// Rec. 709 luma of a pixel, dimmed by [`DIM`], as a grey pixel.
fn dimmed_grey(rgb: &[u8]) -> [u8; 3] {
    let [r, g, b] = [rgb[0], rgb[1], rgb[2]].map(u32::from);
    // Weights 0.2126, 0.7152, 0.0722 in 1/256ths (54 + 183 + 19 = 256).
    let luma = (54 * r + 183 * g + 19 * b + 128) >> 8;
    let grey = (luma as f32 * DIM).round() as u8;
    [grey; 3]
}

/// One panel of the snapshot buffer: drawing is clipped to it, so nothing a caller passes
/// (a box running off the frame) reaches the other panel or past the buffer.
struct Canvas<'a> {
    rgb: &'a mut [u8],
    /// Bytes per row of the whole snapshot.
    stride: usize,
    /// The panel's left column in the snapshot.
    x: usize,
    width: usize,
    height: usize,
}

impl Canvas<'_> {
    fn fill(&mut self, rect: Rect, colour: [u8; 3]) {
        let (x1, y1) = (rect.x1.min(self.width), rect.y1.min(self.height));
        if rect.x0 >= x1 {
            return;
        }
        for y in rect.y0..y1 {
            let start = y * self.stride + (self.x + rect.x0) * 3;
            let end = y * self.stride + (self.x + x1) * 3;
            for pixel in self.rgb[start..end].chunks_exact_mut(3) {
                pixel.copy_from_slice(&colour);
            }
        }
    }

    /// Scales the pixels of `rect` by `keep` (a darker backing for the legend).
    fn darken(&mut self, rect: Rect, keep: f32) {
        let (x1, y1) = (rect.x1.min(self.width), rect.y1.min(self.height));
        if rect.x0 >= x1 {
            return;
        }
        for y in rect.y0..y1 {
            let start = y * self.stride + (self.x + rect.x0) * 3;
            let end = y * self.stride + (self.x + x1) * 3;
            for channel in &mut self.rgb[start..end] {
                *channel = (f32::from(*channel) * keep).round() as u8;
            }
        }
    }

    /// A `thickness`-pixel outline inside `rect`.
    fn ring(&mut self, rect: Rect, thickness: usize, colour: [u8; 3]) {
        let Rect { x0, y0, x1, y1 } = rect;
        let top = (y0 + thickness).min(y1);
        let bottom = y1.saturating_sub(thickness).max(y0);
        let left = (x0 + thickness).min(x1);
        let right = x1.saturating_sub(thickness).max(x0);
        self.fill(Rect { y1: top, ..rect }, colour);
        self.fill(Rect { y0: bottom, ..rect }, colour);
        self.fill(Rect { x1: left, ..rect }, colour);
        self.fill(Rect { x0: right, ..rect }, colour);
    }

    /// A dashed `thickness`-pixel outline inside `rect`: `dash` pixels on, `dash / 2` off.
    fn dashed_ring(&mut self, rect: Rect, thickness: usize, dash: usize, colour: [u8; 3]) {
        let period = dash + (dash / 2).max(1);
        let Rect { x0, y0, x1, y1 } = rect;
        let bottom = y1.saturating_sub(thickness).max(y0);
        let right = x1.saturating_sub(thickness).max(x0);
        for x in (x0..x1).filter(|x| (x - x0) % period < dash) {
            let column = Rect {
                x0: x,
                x1: x + 1,
                ..rect
            };
            self.fill(
                Rect {
                    y1: (y0 + thickness).min(y1),
                    ..column
                },
                colour,
            );
            self.fill(
                Rect {
                    y0: bottom,
                    ..column
                },
                colour,
            );
        }
        for y in (y0..y1).filter(|y| (y - y0) % period < dash) {
            let row = Rect {
                y0: y,
                y1: y + 1,
                ..rect
            };
            self.fill(
                Rect {
                    x1: (x0 + thickness).min(x1),
                    ..row
                },
                colour,
            );
            self.fill(Rect { x0: right, ..row }, colour);
        }
    }

    /// `text` in the 3×5 font at `scale` pixels per font pixel, its right end at `x1` and
    /// centred on row `centre`.
    fn text(&mut self, text: &str, x1: usize, centre: usize, scale: usize, colour: [u8; 3]) {
        let mut left = x1.saturating_sub(text_width(text, scale));
        let y0 = centre.saturating_sub(GLYPH_HEIGHT * scale / 2);
        for c in text.chars() {
            let glyph_width = glyph_width(c);
            let Some((_, rows)) = GLYPHS.iter().find(|(g, _)| *g == c) else {
                continue;
            };
            for (row, bits) in rows.iter().enumerate() {
                for column in 0..glyph_width {
                    if bits & (1 << (glyph_width - 1 - column)) != 0 {
                        let x = left + column * scale;
                        let y = y0 + row * scale;
                        self.fill(
                            Rect {
                                x0: x,
                                y0: y,
                                x1: x + scale,
                                y1: y + scale,
                            },
                            colour,
                        );
                    }
                }
            }
            left += (glyph_width + 1) * scale;
        }
    }
}

/// Font pixels across a glyph.
fn glyph_width(c: char) -> usize {
    if c == '.' { 1 } else { GLYPH_WIDTH }
}

/// Pixels across `text` at `scale`: each glyph and one font pixel between glyphs.
fn text_width(text: &str, scale: usize) -> usize {
    let font_pixels: usize = text.chars().map(|c| glyph_width(c) + 1).sum();
    font_pixels.saturating_sub(1) * scale
}

/// Box outlines, `layout.line` thick inside each box, with a thin dark edge just outside it.
/// All edges go first so no box's edge covers another's outline.
fn draw_boxes(canvas: &mut Canvas<'_>, boxes: &[DefectBox], layout: Layout) {
    let thin = layout.thin();
    let rects = || {
        boxes.iter().filter_map(|defect| {
            let (x0, y0) = (defect.x as usize, defect.y as usize);
            if x0 >= layout.frame_width || y0 >= layout.frame_height {
                return None;
            }
            Some(Rect {
                x0,
                y0,
                x1: x0.saturating_add(defect.width as usize),
                y1: y0.saturating_add(defect.height as usize),
            })
        })
    };
    for rect in rects() {
        let outer = Rect {
            x0: rect.x0.saturating_sub(thin),
            y0: rect.y0.saturating_sub(thin),
            x1: rect.x1.saturating_add(thin),
            y1: rect.y1.saturating_add(thin),
        };
        canvas.ring(outer, thin, BOX_EDGE_COLOUR);
    }
    for rect in rects() {
        let clipped = Rect {
            x1: rect.x1.min(layout.frame_width),
            y1: rect.y1.min(layout.frame_height),
            ..rect
        };
        canvas.ring(clipped, layout.line, BOX_COLOUR);
    }
}

/// The colour bar: the ramp from the range's low end (bottom) to its high end (top) on a dark
/// backing, bordered, with ticks and values at both ends and the middle.
fn draw_legend(
    canvas: &mut Canvas<'_>,
    legend: &LegendParts,
    colours: &[[u8; 3]; TABLE_LEN],
    thin: usize,
) {
    canvas.darken(legend.block, 0.3);
    let bar = legend.bar;
    let rows = bar.y1 - bar.y0;
    for y in bar.y0..bar.y1 {
        let t = (bar.y1 - 1 - y) as f32 / (rows - 1) as f32;
        canvas.fill(
            Rect {
                y0: y,
                y1: y + 1,
                ..bar
            },
            colours[table_index(t)],
        );
    }
    let border = Rect {
        x0: bar.x0 - thin,
        y0: bar.y0 - thin,
        x1: bar.x1 + thin,
        y1: bar.y1 + thin,
    };
    canvas.ring(border, thin, LEGEND_COLOUR);
    let (top, bottom) = (bar.y0, bar.y1 - 1);
    let middle = (top + bottom) / 2;
    for (y, text) in [
        (top, &legend.high),
        (middle, &legend.mid),
        (bottom, &legend.low),
    ] {
        let y0 = y.saturating_sub(thin / 2);
        let tick = Rect {
            x0: bar.x0 - thin - legend.tick,
            y0,
            x1: bar.x0,
            y1: y0 + thin,
        };
        canvas.fill(tick, LEGEND_COLOUR);
        canvas.text(text, legend.label_x1, y, legend.glyph, LEGEND_COLOUR);
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

fn check_frame(frame: FrameRgb<'_>) -> Result<Layout, OverlayError> {
    let (width, height) = (frame.width, frame.height);
    let (Some(layout), Some(expected)) = (
        Layout::new(width, height),
        width.checked_mul(height).and_then(|n| n.checked_mul(3)),
    ) else {
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
    Ok(layout)
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

fn check_region(region: Crop, frame: FrameRgb<'_>) -> Result<(), OverlayError> {
    let ends_within = |start: usize, len: usize, limit: usize| {
        len > 0 && start.checked_add(len).is_some_and(|end| end <= limit)
    };
    if ends_within(region.x, region.width, frame.width)
        && ends_within(region.y, region.height, frame.height)
    {
        Ok(())
    } else {
        Err(OverlayError::RegionOutsideFrame {
            x: region.x,
            y: region.y,
            width: region.width,
            height: region.height,
            frame_width: frame.width,
            frame_height: frame.height,
        })
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

    fn frame(rgb: &[u8], width: usize, height: usize) -> FrameRgb<'_> {
        FrameRgb { rgb, width, height }
    }

    fn whole(scores: &[f32], side: usize, width: usize, height: usize) -> MapView<'_> {
        MapView {
            scores,
            side,
            region: Crop::whole(width, height),
        }
    }

    fn defect(x: u32, y: u32, width: u32, height: u32) -> DefectBox {
        DefectBox {
            x,
            y,
            width,
            height,
            area_map_pixels: 1,
            peak_score: 1.0,
        }
    }

    #[test]
    fn lines_scale_with_the_frame() {
        let line = |w, h| Layout::new(w, h).unwrap().line;
        assert_eq!(line(640, 480), 2);
        assert_eq!(line(1280, 960), 4);
        assert_eq!(line(1920, 1080), 5);
        assert_eq!(line(64, 48), 1);
        assert_eq!(line(1, 1), 1);
        assert!(Layout::new(0, 10).is_none());
        assert!(
            Layout::new(1 << 30, 1).is_none(),
            "2·2³⁰ columns do not fit a PNG"
        );
    }

    #[test]
    fn the_snapshot_is_two_frame_sized_panels_and_its_png_round_trips() {
        let (width, height) = (37, 23);
        let rgb = test_frame(width, height);
        let scores: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let map = whole(&scores, 8, width, height);
        let range = ScoreRange::up_to_twice(20.0).unwrap();
        let mut overlay = HeatmapOverlay::new();
        let image = overlay
            .render(frame(&rgb, width, height), map, range, &[])
            .unwrap();
        let layout = Layout::new(width, height).unwrap();
        assert_eq!(
            (image.width, image.height),
            (2 * width + layout.separator, height)
        );
        assert_eq!(layout.heat_x, width + layout.separator);
        assert_eq!(image.rgb.len(), image.width * image.height * 3);
        let rendered = image.rgb.to_vec();

        let dir = tempfile::tempdir().unwrap();
        let path = overlay
            .write_png(
                frame(&rgb, width, height),
                map,
                range,
                &[],
                dir.path(),
                "cam0-17",
            )
            .unwrap();
        assert_eq!(path, dir.path().join("cam0-17.heatmap.png"));
        let decoded = crate::io::png::read_png(&path).unwrap();
        assert_eq!((decoded.width, decoded.height), (2 * width + 2, height));
        assert_eq!(decoded.pixels, rendered);
        // Written under a temporary name and renamed: nothing else is left in the folder.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cam0-17.heatmap.png"]);
    }

    #[test]
    fn a_zero_map_leaves_the_frame_on_the_left_and_its_grey_on_the_right() {
        let (width, height) = (64, 48);
        let rgb = test_frame(width, height);
        let scores = vec![0.0; 224 * 224];
        let range = ScoreRange::new(0.0, 1.0).unwrap();
        let layout = Layout::new(width, height).unwrap();
        let legend = layout.legend(range).expect("64×48 holds the colour bar");
        let mut overlay = HeatmapOverlay::new();
        let out = overlay
            .render(
                frame(&rgb, width, height),
                whole(&scores, 224, width, height),
                range,
                &[],
            )
            .unwrap();
        for y in 0..height {
            for x in 0..width {
                let original = pixel(&rgb, width, x, y);
                assert_eq!(pixel(out.rgb, out.width, x, y), original, "({x}, {y})");
                if !legend.contains(x, y) {
                    let heat = pixel(out.rgb, out.width, layout.heat_x + x, y);
                    assert_eq!(heat, dimmed_grey(&original), "({x}, {y})");
                }
            }
            for x in width..layout.heat_x {
                assert_eq!(pixel(out.rgb, out.width, x, y), SEPARATOR_COLOUR);
            }
        }
    }

    #[test]
    fn pixels_far_from_an_anomaly_stay_grey_and_the_hot_one_is_coloured() {
        let (width, height, side) = (160, 160, 16);
        let rgb = test_frame(width, height);
        let mut scores = vec![0.0; side * side];
        scores[side * side - 1] = 10.0; // bottom-right map pixel: frame pixels 150..160
        let mut overlay = HeatmapOverlay::new();
        let range = ScoreRange::new(0.0, 10.0).unwrap();
        let layout = Layout::new(width, height).unwrap();
        let legend = layout.legend(range).unwrap();
        let top = overlay.colour(1.0);
        let out = overlay
            .render(
                frame(&rgb, width, height),
                whole(&scores, side, width, height),
                range,
                &[],
            )
            .unwrap();
        // Bilinear reaches one map pixel (10 frame pixels) around the hot one, no further.
        for y in 0..135 {
            for x in (0..width).filter(|&x| !legend.contains(x, y)) {
                let heat = pixel(out.rgb, out.width, layout.heat_x + x, y);
                assert_eq!(heat, dimmed_grey(&pixel(&rgb, width, x, y)), "({x}, {y})");
            }
        }
        // The hot corner is blended at full strength with the ramp's top colour.
        let base = dimmed_grey(&pixel(&rgb, width, 159, 159));
        let expected: Vec<u8> = base
            .iter()
            .zip(&top)
            .map(|(&b, &c)| {
                (f32::from(b) + (f32::from(c) - f32::from(b)) * MAX_ALPHA).round() as u8
            })
            .collect();
        let corner = pixel(out.rgb, out.width, layout.heat_x + 159, 159);
        assert_eq!(corner.to_vec(), expected);
    }

    #[test]
    fn box_outlines_have_the_box_colour_in_both_panels() {
        let (width, height) = (640, 480);
        let rgb = vec![40; width * height * 3];
        let scores = vec![0.0; 4];
        let layout = Layout::new(width, height).unwrap();
        assert_eq!(layout.line, 2);
        // A second box running off the frame is clipped, not a panic nor a line in the
        // other panel.
        let boxes = [defect(100, 200, 300, 150), defect(600, 440, 100, 100)];
        let mut overlay = HeatmapOverlay::new();
        let out = overlay
            .render(
                frame(&rgb, width, height),
                whole(&scores, 2, width, height),
                ScoreRange::new(0.0, 1.0).unwrap(),
                &boxes,
            )
            .unwrap();
        let grey = dimmed_grey(&[40, 40, 40]);
        for panel in [0, layout.heat_x] {
            let at = |x: usize, y: usize| pixel(out.rgb, out.width, panel + x, y);
            // Two pixels thick, inside the box's extent, on all four sides.
            for (x, y) in [
                (100, 200),
                (101, 201),
                (399, 349),
                (398, 348),
                (250, 200),
                (250, 349),
                (100, 275),
                (399, 275),
                (639, 479),
                (638, 478),
                (620, 440),
                (600, 460),
            ] {
                assert_eq!(at(x, y), BOX_COLOUR, "panel at {panel}: ({x}, {y})");
            }
            // A dark edge just outside, for contrast.
            for (x, y) in [(99, 275), (400, 275), (250, 199), (250, 350)] {
                assert_eq!(at(x, y), BOX_EDGE_COLOUR, "panel at {panel}: ({x}, {y})");
            }
            let inside = if panel == 0 { [40; 3] } else { grey };
            for (x, y) in [(102, 202), (397, 347), (250, 275), (97, 275), (602, 442)] {
                assert_eq!(at(x, y), inside, "panel at {panel}: ({x}, {y})");
            }
        }
        for y in 0..height {
            for x in width..layout.heat_x {
                assert_eq!(pixel(out.rgb, out.width, x, y), SEPARATOR_COLOUR);
            }
        }
    }

    #[test]
    fn a_region_smaller_than_the_frame_gets_all_the_heat_and_an_outline() {
        let (width, height) = (120, 90);
        let rgb = test_frame(width, height);
        let range = ScoreRange::new(0.0, 1.0).unwrap();
        let region = Crop {
            x: 30,
            y: 25,
            width: 50,
            height: 40,
        };
        let layout = Layout::new(width, height).unwrap();
        let legend = layout.legend(range).unwrap();
        let inside = |x: usize, y: usize| {
            (region.x..region.x + region.width).contains(&x)
                && (region.y..region.y + region.height).contains(&y)
        };
        let mut overlay = HeatmapOverlay::new();

        // A hot map everywhere colours the region and nothing outside it.
        let hot = vec![1.0; 16];
        let map = MapView {
            scores: &hot,
            side: 4,
            region,
        };
        let out = overlay
            .render(frame(&rgb, width, height), map, range, &[])
            .unwrap();
        for y in 0..height {
            for x in (0..width).filter(|&x| !legend.contains(x, y)) {
                let grey = dimmed_grey(&pixel(&rgb, width, x, y));
                let heat = pixel(out.rgb, out.width, layout.heat_x + x, y);
                assert_eq!(heat == grey, !inside(x, y), "({x}, {y}): {heat:?}");
            }
        }
        // The model's region is outlined, dashed, on the frame panel.
        for (x, y) in [(30, 25), (31, 25), (79, 25), (30, 64), (30, 26)] {
            assert_eq!(pixel(out.rgb, out.width, x, y), REGION_COLOUR, "({x}, {y})");
        }
        let dashes = (region.x..region.x + region.width)
            .filter(|&x| pixel(out.rgb, out.width, x, region.y) != REGION_COLOUR)
            .count();
        assert!(dashes > 0, "the outline is dashed");

        // The map's corners land on the region's: its top-left pixel is hot, the rest cold.
        let mut corner = vec![0.0; 16];
        corner[0] = 1.0;
        let map = MapView {
            scores: &corner,
            side: 4,
            region,
        };
        let out = overlay
            .render(frame(&rgb, width, height), map, range, &[])
            .unwrap();
        let heat = |x: usize, y: usize| pixel(out.rgb, out.width, layout.heat_x + x, y);
        let grey = |x: usize, y: usize| dimmed_grey(&pixel(&rgb, width, x, y));
        assert_ne!(heat(30, 25), grey(30, 25));
        assert_eq!(heat(79, 64), grey(79, 64));
        assert_eq!(heat(29, 24), grey(29, 24));

        // The whole frame as the region draws no region outline.
        let out = overlay
            .render(
                frame(&rgb, width, height),
                whole(&corner, 4, width, height),
                range,
                &[],
            )
            .unwrap();
        assert!(
            out.rgb[..]
                .chunks_exact(3)
                .all(|p| p != REGION_COLOUR.as_slice()),
            "no region outline"
        );
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
            assert!(l > previous, "entry {i}: luma {l} after {previous}");
            previous = l;
        }
        assert_eq!(overlay.colour(-3.0), RAMP[0]);
        assert_eq!(overlay.colour(7.0), RAMP[8]);
    }

    #[test]
    fn the_colour_bar_runs_from_low_at_the_bottom_to_high_at_the_top() {
        let (width, height) = (640, 480);
        let rgb = vec![128; width * height * 3];
        let scores = vec![0.0; 4];
        let range = ScoreRange::up_to_twice(0.7).unwrap();
        let layout = Layout::new(width, height).unwrap();
        let legend = layout.legend_parts(range).unwrap();
        let mut overlay = HeatmapOverlay::new();
        let (top, bottom) = (overlay.colour(1.0), overlay.colour(0.0));
        let out = overlay
            .render(
                frame(&rgb, width, height),
                whole(&scores, 2, width, height),
                range,
                &[],
            )
            .unwrap();
        let x = layout.heat_x + (legend.bar.x0 + legend.bar.x1) / 2;
        assert_eq!(pixel(out.rgb, out.width, x, legend.bar.y0), top);
        assert_eq!(pixel(out.rgb, out.width, x, legend.bar.y1 - 1), bottom);
        let labels = [&legend.high, &legend.mid, &legend.low].map(|l| l.as_str());
        assert_eq!(labels, ["1.40", "0.70", "0"]);
        // The labels are drawn: some of the block left of the bar is in the legend colour.
        let written = (legend.block.y0..legend.block.y1)
            .flat_map(|y| (legend.block.x0..legend.label_x1).map(move |x| (x, y)))
            .filter(|&(x, y)| pixel(out.rgb, out.width, layout.heat_x + x, y) == LEGEND_COLOUR)
            .count();
        assert!(written > 20, "{written} label pixels");
    }

    #[test]
    fn labels_are_short_and_in_the_font() {
        for (value, text) in [
            (0.0, "0"),
            (1.4, "1.40"),
            (12.5, "12.5"),
            (640.0, "640"),
            (2000.0, "2.0e3"),
            (0.001, "1.0e-3"),
            (-0.5, "-0.50"),
            (-3.0e-38, "-3.0e-38"),
        ] {
            let label = label(value);
            assert_eq!(label.as_str(), text);
            assert!(
                label.chars().all(|c| GLYPHS.iter().any(|(g, _)| *g == c)),
                "{label}"
            );
        }
    }

    #[test]
    fn tiny_frames_render_without_a_colour_bar() {
        let range = ScoreRange::new(0.0, 1.0).unwrap();
        for (width, height) in [(1, 1), (4, 4), (2, 300), (300, 2)] {
            let rgb = test_frame(width, height);
            let layout = Layout::new(width, height).unwrap();
            assert_eq!(layout.legend(range), None, "{width}×{height}");
            let scores = vec![1.0; 9];
            let mut overlay = HeatmapOverlay::new();
            let out = overlay
                .render(
                    frame(&rgb, width, height),
                    whole(&scores, 3, width, height),
                    range,
                    &[defect(0, 0, 1000, 1000)],
                )
                .unwrap();
            assert_eq!(out.rgb.len(), layout.width * height * 3);
        }
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
                frame(&rgb, 4, 4),
                whole(&scores, 2, 4, 4),
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
    fn bad_inputs_are_errors_naming_what_was_wrong() {
        let rgb = test_frame(4, 4);
        let scores = vec![0.0; 4];
        let frame = frame(&rgb, 4, 4);
        let map = whole(&scores, 2, 4, 4);
        let range = ScoreRange::new(0.0, 1.0).unwrap();
        let mut overlay = HeatmapOverlay::new();
        let dir = Path::new("/tmp");
        for stem in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
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
        let render = |overlay: &mut HeatmapOverlay, frame, map| {
            overlay
                .render(frame, map, range, &[])
                .unwrap_err()
                .to_string()
        };

        let short = FrameRgb {
            rgb: &rgb[..47],
            ..frame
        };
        let err = render(&mut overlay, short, map);
        assert!(err.contains("47 bytes, expected 48"), "{err}");
        let empty = FrameRgb {
            rgb: &[],
            width: 0,
            height: 4,
        };
        let err = render(&mut overlay, empty, map);
        assert!(err.contains("frame size 0×4"), "{err}");

        let nan = [0.0, f32::NAN, 0.0, 0.0];
        let err = render(
            &mut overlay,
            frame,
            MapView {
                scores: &nan,
                ..map
            },
        );
        assert!(err.contains("map[1] (row 0, column 1) is NaN"), "{err}");
        let err = render(&mut overlay, frame, MapView { side: 3, ..map });
        assert!(err.contains("holds 4 values, expected 9"), "{err}");
        let err = render(&mut overlay, frame, MapView { side: 0, ..map });
        assert!(err.contains("map side 0"), "{err}");

        for (region, text) in [
            (Crop { x: 1, ..map.region }, "map region 4×4 at (1, 0)"),
            (
                Crop {
                    y: 3,
                    height: 2,
                    ..map.region
                },
                "map region 4×2 at (0, 3)",
            ),
            (
                Crop {
                    width: 0,
                    ..map.region
                },
                "map region 0×4 at (0, 0)",
            ),
            (
                Crop {
                    x: usize::MAX,
                    ..map.region
                },
                "4×4 at (18446744073709551615, 0)",
            ),
        ] {
            let err = render(&mut overlay, frame, MapView { region, ..map });
            assert!(err.contains(text) && err.contains("4×4 frame"), "{err}");
        }
        assert!(ScoreRange::new(1.0, 1.0).is_err());
        assert!(ScoreRange::up_to_twice(f32::NAN).is_err());
    }
}
