//! ISSTAD stage 2's self-made anomalies: a normal training image, corrupted under a random mask
//! of shapes, and the mask as its pixel label (after the authors' `util/mvtecad_aug.py`).
//!
//! With probability [`CorruptionConfig::probability`] an image is corrupted: 1…`max_shapes`
//! rectangles, ellipses or polygons are drawn inside the largest foreground box (or the whole
//! image), and the pixels under them are replaced by a transformed copy of the same image: a
//! colour change (jitter, grayscale, blur, or two of them), a flip, or a half blend with noise.
//! The network learns to find, and repair, exactly those pixels.
//!
//! The image operations reproduce what the reference runs on PIL images, because that is what the
//! published numbers were trained on: grey is Pillow's fixed-point ITU-R 601-2 luma, the colour
//! adjustments are Pillow's `ImageEnhance` blends (which torchvision's `ColorJitter` calls for PIL
//! input) with their truncation, and hue goes through Pillow's 8-bit HSV.
//!
//! A fill can leave some masked pixels unchanged (a flip of a symmetric region, a blur of a flat
//! one, grey of a grey one); the label still marks them, as in the reference.

use burn::config::Config;

use crate::rng::SplitMix64;
use crate::train::image::{Crop, Rgb8, resample_plane};

/// Why an image, a mask or a configuration was refused; names the bad value.
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    #[error("a {width}x{height} image needs {expected} RGB bytes, got {got}")]
    PixelCount {
        width: usize,
        height: usize,
        expected: usize,
        got: usize,
    },
    #[error("the image is {width}x{height}; corruption needs at least one pixel")]
    EmptyImage { width: usize, height: usize },
    #[error("a {width}x{height} mask needs {expected} values, got {got}")]
    MaskLength {
        width: usize,
        height: usize,
        expected: usize,
        got: usize,
    },
    #[error("label size is {size}; it must be at least 1")]
    LabelSize { size: usize },
    #[error("corruption probability {probability} is not within [0, 1]")]
    Probability { probability: f64 },
    #[error("max_shapes is {max_shapes}; at least 1 shape is needed")]
    MaxShapes { max_shapes: usize },
    #[error("min_shape_side is {min_shape_side}; it must be at least 1 pixel")]
    MinShapeSide { min_shape_side: usize },
}

/// How stage 2 corrupts a training image. The defaults are the authors' settings for most MVTec
/// AD categories; they use `max_shapes` 1 for capsule and carpet, the whole image
/// (`use_foreground_box` false) for capsule, carpet and zipper, and `replace_dark_with_mean` for
/// carpet and zipper.
#[derive(Config, Debug)]
pub struct CorruptionConfig {
    /// Chance that an image is corrupted at all: the rest keep an all-zero label, so the
    /// classifier also sees clean images. The reference's `randint(0, 2) != 0` is 2/3.
    #[config(default = "2.0 / 3.0")]
    pub probability: f64,
    /// Each mask has 1..=max_shapes shapes, uniformly.
    #[config(default = 3)]
    pub max_shapes: usize,
    /// The least width and height of a shape's bounding box, in pixels.
    #[config(default = 10)]
    pub min_shape_side: usize,
    /// A shape's top-left corner is drawn at least this far from the area's right and bottom
    /// edges (the reference's `randint(x, x2 - 50)`), which favours large shapes. It is capped at
    /// half the area's side so that small areas, where the reference fails, still vary.
    #[config(default = 50)]
    pub corner_margin: usize,
    /// Place shapes inside the padded box of the largest bright component (objects); false
    /// places them anywhere (textures, and objects that fill the frame).
    #[config(default = true)]
    pub use_foreground_box: bool,
    /// Before transforming, replace the pixels darker than the mean grey by the mean colour of
    /// the others, so that a fill does not paste dark gaps (the authors do it for carpet and
    /// zipper). Only the fill source changes; pixels outside the mask stay as they were.
    #[config(default = false)]
    pub replace_dark_with_mean: bool,
}

impl CorruptionConfig {
    /// Refuses settings that would make [`corrupt`] draw from an empty range.
    pub fn check(&self) -> Result<(), CorruptError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(CorruptError::Probability {
                probability: self.probability,
            });
        }
        if self.max_shapes == 0 {
            return Err(CorruptError::MaxShapes {
                max_shapes: self.max_shapes,
            });
        }
        if self.min_shape_side == 0 {
            return Err(CorruptError::MinShapeSide {
                min_shape_side: self.min_shape_side,
            });
        }
        Ok(())
    }
}

/// A training image after [`corrupt`], with its pixel label.
#[derive(Debug, Clone)]
pub struct Corrupted {
    pub image: Rgb8,
    /// 1 where a shape was drawn, 0 elsewhere; `width * height` values, row-major.
    pub mask: Vec<u8>,
    /// Whether the probability draw chose to corrupt this image; when false the image is the
    /// input and the mask is all zero.
    pub corrupted: bool,
}

/// Corrupts `image` (at full resolution) as ISSTAD's stage 2 does; the outcome depends only on
/// the image, the configuration and the state of `rng`.
///
/// Pixels outside the mask are bit-identical to the input.
pub fn corrupt(
    image: &Rgb8,
    config: &CorruptionConfig,
    rng: &mut SplitMix64,
) -> Result<Corrupted, CorruptError> {
    check_image(image)?;
    config.check()?;
    let (width, height) = (image.width, image.height);
    // `uniform` is below 1, so probability 1 always corrupts and 0 never does.
    if rng.uniform() >= config.probability {
        return Ok(Corrupted {
            image: image.clone(),
            mask: vec![0; width * height],
            corrupted: false,
        });
    }
    let area = if config.use_foreground_box {
        foreground_box(image)
    } else {
        PixelBox::whole(width, height)
    };
    let area = widen_to(area, config.min_shape_side, width, height);
    let mut mask = vec![0; width * height];
    for shape in draw_shapes(area, config, rng) {
        fill_shape(&shape, &mut mask, width);
    }
    let mut source = image.clone();
    if config.replace_dark_with_mean {
        replace_dark_with_mean(&mut source);
    }
    let fill = draw_fill(rng);
    apply_fill(&mut source, &fill);
    let mut corrupted = image.clone();
    for ((pixel, replacement), &marked) in corrupted
        .pixels
        .chunks_exact_mut(3)
        .zip(source.pixels.chunks_exact(3))
        .zip(&mask)
    {
        if marked != 0 {
            pixel.copy_from_slice(replacement);
        }
    }
    Ok(Corrupted {
        image: corrupted,
        mask,
        corrupted: true,
    })
}

/// The mask as the network's `size × size` label: resized as torchvision's `Resize` resizes a
/// tensor in the reference (bilinear, `align_corners` false, no antialias, in f32), then cut to
/// an integer with `.long()`.
///
/// `.long()` truncates toward zero, so a label pixel is 1 only where the interpolated value
/// reaches 1, that is where every source pixel with a non-zero weight is marked; partly covered
/// pixels become 0 (not a 0.5 threshold). The label is therefore the mask shrunk by under one
/// source pixel. Any non-zero mask value counts as marked.
pub fn mask_to_label(
    mask: &[u8],
    width: usize,
    height: usize,
    size: usize,
) -> Result<Vec<f32>, CorruptError> {
    if width == 0 || height == 0 {
        return Err(CorruptError::EmptyImage { width, height });
    }
    if mask.len() != width * height {
        return Err(CorruptError::MaskLength {
            width,
            height,
            expected: width * height,
            got: mask.len(),
        });
    }
    if size == 0 {
        return Err(CorruptError::LabelSize { size });
    }
    let marked: Vec<f32> = mask
        .iter()
        .map(|&m| if m != 0 { 1.0 } else { 0.0 })
        .collect();
    let mut label = vec![0.0f32; size * size];
    let whole = Crop::whole(width, height);
    resample_plane(&marked, width, whole, size, false, &mut label);
    // Interpolating as `a + (b − a)·t` gives exactly 1 between two marked samples, so the
    // truncation keeps every fully covered pixel.
    for value in &mut label {
        *value = value.trunc();
    }
    Ok(label)
}

fn check_image(image: &Rgb8) -> Result<(), CorruptError> {
    let (width, height) = (image.width, image.height);
    if width == 0 || height == 0 {
        return Err(CorruptError::EmptyImage { width, height });
    }
    if image.pixels.len() != width * height * 3 {
        return Err(CorruptError::PixelCount {
            width,
            height,
            expected: width * height * 3,
            got: image.pixels.len(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Where shapes go: the largest foreground box.

/// A half-open pixel rectangle: columns `left..right`, rows `top..bottom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub left: usize,
    pub top: usize,
    pub right: usize,
    pub bottom: usize,
}

impl PixelBox {
    pub fn whole(width: usize, height: usize) -> Self {
        Self {
            left: 0,
            top: 0,
            right: width,
            bottom: height,
        }
    }

    pub fn width(&self) -> usize {
        self.right.saturating_sub(self.left)
    }

    pub fn height(&self) -> usize {
        self.bottom.saturating_sub(self.top)
    }

    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.left..self.right).contains(&x) && (self.top..self.bottom).contains(&y)
    }
}

/// Pillow's `convert("L")`: ITU-R 601-2 luma (299, 587, 114 per mille) in 16-bit fixed point,
/// rounded; the weights sum to 65536, so a grey pixel keeps its level.
pub fn luma(red: u8, green: u8, blue: u8) -> u8 {
    let weighted = u32::from(red) * 19595 + u32::from(green) * 38470 + u32::from(blue) * 7471;
    // At most 255 * 65536 + 0x8000, so the shifted value fits a byte.
    ((weighted + 0x8000) >> 16) as u8
}

/// The luma of every pixel, row-major.
pub fn grey_levels(image: &Rgb8) -> Vec<u8> {
    image
        .pixels
        .chunks_exact(3)
        .map(|pixel| luma(pixel[0], pixel[1], pixel[2]))
        .collect()
}

/// Otsu's threshold as OpenCV's `THRESH_OTSU` returns it: the level `t` that maximises the
/// between-class variance of `≤ t` against `> t` (the first such level on ties). Foreground is
/// `level > t`. A single-level image has no split and gets 0.
pub fn otsu_threshold(grey: &[u8]) -> u8 {
    let mut histogram = [0u64; 256];
    for &level in grey {
        histogram[usize::from(level)] += 1;
    }
    let total = grey.len() as f64;
    let total_sum: f64 = histogram
        .iter()
        .enumerate()
        .map(|(level, &count)| level as f64 * count as f64)
        .sum();
    let (mut below_count, mut below_sum) = (0.0, 0.0);
    let (mut best_level, mut best_variance) = (0u8, 0.0);
    for (level, &count) in histogram.iter().enumerate() {
        below_count += count as f64;
        below_sum += level as f64 * count as f64;
        let above_count = total - below_count;
        if below_count == 0.0 || above_count == 0.0 {
            continue;
        }
        let below_mean = below_sum / below_count;
        let above_mean = (total_sum - below_sum) / above_count;
        // w0 w1 (μ0 − μ1)², up to the constant factor 1/N².
        let variance = below_count * above_count * (below_mean - above_mean).powi(2);
        if variance > best_variance {
            best_variance = variance;
            // `level` counts a 256-entry histogram.
            best_level = level as u8;
        }
    }
    best_level
}

/// The bounding box of the largest 8-connected component of `foreground` (by pixel count; the
/// first in row-major order on ties), or `None` if nothing is foreground or the slice is not
/// `width * height` long.
///
/// The reference ranks OpenCV's outer contours by enclosed area instead; the two agree except
/// for rings and hairline shapes, where the enclosed area counts the hole.
pub fn largest_component_box(foreground: &[bool], width: usize, height: usize) -> Option<PixelBox> {
    if foreground.len() != width * height {
        return None;
    }
    let mut seen = vec![false; foreground.len()];
    let mut stack = Vec::new();
    let mut best: Option<(usize, PixelBox)> = None;
    for start in 0..foreground.len() {
        if !foreground[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (x, y) = (start % width, start / width);
        let mut bounds = PixelBox {
            left: x,
            top: y,
            right: x + 1,
            bottom: y + 1,
        };
        let mut count = 0;
        while let Some(index) = stack.pop() {
            count += 1;
            let (x, y) = (index % width, index / width);
            bounds.left = bounds.left.min(x);
            bounds.right = bounds.right.max(x + 1);
            bounds.top = bounds.top.min(y);
            bounds.bottom = bounds.bottom.max(y + 1);
            for ny in y.saturating_sub(1)..(y + 2).min(height) {
                for nx in x.saturating_sub(1)..(x + 2).min(width) {
                    let neighbour = ny * width + nx;
                    if foreground[neighbour] && !seen[neighbour] {
                        seen[neighbour] = true;
                        stack.push(neighbour);
                    }
                }
            }
        }
        if best.is_none_or(|(best_count, _)| count > best_count) {
            best = Some((count, bounds));
        }
    }
    best.map(|(_, bounds)| bounds)
}

/// Where the reference places shapes on objects: the box of the largest component brighter than
/// Otsu's threshold, each side pushed out by a tenth of the box's width (a fifth of its height),
/// floored and clipped to the image.
///
/// The clipping follows the reference: the padded width is kept after a clip on the left, so such
/// a box reaches further right. An image with no bright pixel (all one dark level) gets the whole
/// image, where the reference fails; an all-bright one gets the whole image naturally.
pub fn foreground_box(image: &Rgb8) -> PixelBox {
    let (width, height) = (image.width, image.height);
    let grey = grey_levels(image);
    let threshold = otsu_threshold(&grey);
    let foreground: Vec<bool> = grey.iter().map(|&level| level > threshold).collect();
    let Some(found) = largest_component_box(&foreground, width, height) else {
        return PixelBox::whole(width, height);
    };
    let pad_x = found.width() / 10;
    let pad_y = found.height() / 5;
    let left = found.left.saturating_sub(pad_x);
    let top = found.top.saturating_sub(pad_y);
    PixelBox {
        left,
        top,
        right: left + (found.width() + 2 * pad_x).min(width - left),
        bottom: top + (found.height() + 2 * pad_y).min(height - top),
    }
}

/// Grows a box narrower or shorter than `min_side` about its centre (within the image), so that
/// every shape can meet the minimum; only an image smaller than `min_side` stays smaller.
fn widen_to(area: PixelBox, min_side: usize, width: usize, height: usize) -> PixelBox {
    let (left, right) = widen_span(area.left, area.right, min_side, width);
    let (top, bottom) = widen_span(area.top, area.bottom, min_side, height);
    PixelBox {
        left,
        top,
        right,
        bottom,
    }
}

fn widen_span(start: usize, end: usize, min_side: usize, limit: usize) -> (usize, usize) {
    let side = end.saturating_sub(start);
    let wanted = min_side.min(limit);
    if side >= wanted {
        return (start, end);
    }
    let start = start
        .saturating_sub((wanted - side) / 2)
        .min(limit - wanted);
    (start, start + wanted)
}

// ---------------------------------------------------------------------------------------------
// The mask: shapes and their scanline rasterisation.

/// One shape of a mask. Pixel (x, y) covers [x, x+1) × [y, y+1) and is inside a shape when its
/// centre is.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Rectangle(PixelBox),
    /// The ellipse inscribed in the box.
    Ellipse(PixelBox),
    /// Vertices in drawing order, spanning `bounds` exactly; it may cross itself, and is then
    /// filled even-odd.
    Polygon {
        bounds: PixelBox,
        vertices: Vec<(f64, f64)>,
    },
}

impl Shape {
    pub fn bounds(&self) -> PixelBox {
        match self {
            Shape::Rectangle(bounds) | Shape::Ellipse(bounds) => *bounds,
            Shape::Polygon { bounds, .. } => *bounds,
        }
    }
}

/// Draws 1..=`max_shapes` shapes inside `area`, each kind equally likely.
///
/// Every shape's bounding box is at least `min_shape_side` wide and high (or the whole area, if
/// that is smaller). The reference only enforces this for rectangles and ellipses, whose boxes
/// it draws as here; its polygon vertices range over the whole area. Here a polygon's vertices
/// are drawn in a box like the others and stretched to span it, so it meets the minimum too.
pub fn draw_shapes(area: PixelBox, config: &CorruptionConfig, rng: &mut SplitMix64) -> Vec<Shape> {
    let count = 1 + rng.below(config.max_shapes.max(1));
    (0..count)
        .map(|_| {
            let kind = rng.below(3);
            let (left, right) = draw_span(area.left, area.right, config, rng);
            let (top, bottom) = draw_span(area.top, area.bottom, config, rng);
            let bounds = PixelBox {
                left,
                top,
                right,
                bottom,
            };
            match kind {
                0 => Shape::Rectangle(bounds),
                1 => Shape::Ellipse(bounds),
                _ => Shape::Polygon {
                    bounds,
                    vertices: draw_polygon(bounds, rng),
                },
            }
        })
        .collect()
}

/// A random interval of `start..end`: its start at least `corner_margin` (at most half the span)
/// before `end`, its length at least `min_shape_side` (at most the span).
fn draw_span(
    start: usize,
    end: usize,
    config: &CorruptionConfig,
    rng: &mut SplitMix64,
) -> (usize, usize) {
    let span = end.saturating_sub(start).max(1);
    let least = config.min_shape_side.clamp(1, span);
    let reserve = config.corner_margin.min(span / 2).max(least);
    let first = start + rng.below(span - reserve + 1);
    let length = least + rng.below(start + span - first - least + 1);
    (first, first + length)
}

/// 3–8 uniform vertices, stretched so their extremes touch the edges of `bounds`.
fn draw_polygon(bounds: PixelBox, rng: &mut SplitMix64) -> Vec<(f64, f64)> {
    let count = 3 + rng.below(6);
    let unit: Vec<(f64, f64)> = (0..count).map(|_| (rng.uniform(), rng.uniform())).collect();
    let stretch = |values: Vec<f64>, low: usize, high: usize| -> Vec<f64> {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = max - min;
        values
            .into_iter()
            .map(|value| {
                // All-equal draws (probability ~0) have no extent to stretch; keep them as drawn.
                let fraction = if range > 0.0 {
                    (value - min) / range
                } else {
                    value
                };
                low as f64 + fraction * (high - low) as f64
            })
            .collect()
    };
    let xs = stretch(
        unit.iter().map(|point| point.0).collect(),
        bounds.left,
        bounds.right,
    );
    let ys = stretch(
        unit.iter().map(|point| point.1).collect(),
        bounds.top,
        bounds.bottom,
    );
    xs.into_iter().zip(ys).collect()
}

/// Sets to 1 the pixels of `mask` (row-major, `width` per row) whose centres lie inside `shape`,
/// one scanline at a time; parts outside the mask are cut off.
pub fn fill_shape(shape: &Shape, mask: &mut [u8], width: usize) {
    if width == 0 {
        return;
    }
    let bounds = shape.bounds();
    let mut crossings = Vec::new();
    for (y, row) in mask
        .chunks_exact_mut(width)
        .enumerate()
        .take(bounds.bottom)
        .skip(bounds.top)
    {
        let centre_y = y as f64 + 0.5;
        match shape {
            Shape::Rectangle(bounds) => {
                fill_span(row, bounds.left as f64, bounds.right as f64);
            }
            Shape::Ellipse(bounds) => {
                let centre_x = (bounds.left + bounds.right) as f64 / 2.0;
                let radius_x = bounds.width() as f64 / 2.0;
                let radius_y = bounds.height() as f64 / 2.0;
                let offset = (centre_y - (bounds.top + bounds.bottom) as f64 / 2.0) / radius_y;
                if offset.abs() < 1.0 {
                    let half = radius_x * (1.0 - offset * offset).sqrt();
                    fill_span(row, centre_x - half, centre_x + half);
                }
            }
            Shape::Polygon { vertices, .. } => {
                crossings.clear();
                let edges = vertices.iter().zip(vertices.iter().cycle().skip(1));
                for (&(x0, y0), &(x1, y1)) in edges {
                    // Half-open in y, so a scanline through a vertex counts each edge once.
                    if (y0 <= centre_y) != (y1 <= centre_y) {
                        crossings.push(x0 + (centre_y - y0) * (x1 - x0) / (y1 - y0));
                    }
                }
                crossings.sort_by(f64::total_cmp);
                for pair in crossings.chunks_exact(2) {
                    fill_span(row, pair[0], pair[1]);
                }
            }
        }
    }
}

/// Marks the pixels of `row` whose centres lie in [start, end).
fn fill_span(row: &mut [u8], start: f64, end: f64) {
    let last = (end - 0.5).ceil().clamp(0.0, row.len() as f64);
    let first = (start - 0.5).ceil().clamp(0.0, last);
    // Both are whole numbers within 0..=row.len().
    if let Some(span) = row.get_mut(first as usize..last as usize) {
        span.fill(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The fill: a transformed copy of the image.

/// One colour operation of a fill, with its drawn strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColourOp {
    Brightness(f32),
    Contrast(f32),
    Saturation(f32),
    Hue(f32),
    Grayscale,
    Blur { sigma: f32 },
}

/// What replaces the masked pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Fill {
    /// Operations applied in order.
    Colour(Vec<ColourOp>),
    Flip {
        horizontal: bool,
        vertical: bool,
    },
    /// A 50 % blend with uniform RGB noise drawn from this seed.
    Noise {
        seed: u64,
    },
}

/// The reference's `ImageTrans`: colour, flip or noise, equally likely. Colour is one of jitter,
/// grayscale, blur, jitter + grayscale, jitter + blur, grayscale + blur; flip is horizontal,
/// vertical or both.
pub fn draw_fill(rng: &mut SplitMix64) -> Fill {
    match rng.below(3) {
        0 => {
            let (jitter, grayscale, blur) = match rng.below(6) {
                0 => (true, false, false),
                1 => (false, true, false),
                2 => (false, false, true),
                3 => (true, true, false),
                4 => (true, false, true),
                _ => (false, true, true),
            };
            let mut ops = Vec::new();
            if jitter {
                ops.extend(draw_colour_jitter(rng));
            }
            if grayscale {
                ops.push(ColourOp::Grayscale);
            }
            if blur {
                ops.push(ColourOp::Blur {
                    sigma: rng.range(15.0, 20.0) as f32,
                });
            }
            Fill::Colour(ops)
        }
        1 => {
            let (horizontal, vertical) = match rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            };
            Fill::Flip {
                horizontal,
                vertical,
            }
        }
        _ => Fill::Noise {
            seed: rng.next_u64(),
        },
    }
}

/// torchvision's `ColorJitter(0.8, 0.8, 0.8, 0.4)`: brightness, contrast and saturation factors
/// uniform in [0.2, 1.8], a hue shift uniform in [-0.4, 0.4], applied in a random order.
fn draw_colour_jitter(rng: &mut SplitMix64) -> [ColourOp; 4] {
    let mut order = [0, 1, 2, 3];
    rng.shuffle(&mut order);
    let brightness = rng.range(0.2, 1.8) as f32;
    let contrast = rng.range(0.2, 1.8) as f32;
    let saturation = rng.range(0.2, 1.8) as f32;
    let hue = rng.range(-0.4, 0.4) as f32;
    order.map(|op| match op {
        0 => ColourOp::Brightness(brightness),
        1 => ColourOp::Contrast(contrast),
        2 => ColourOp::Saturation(saturation),
        _ => ColourOp::Hue(hue),
    })
}

/// Applies `fill` to the whole image.
pub fn apply_fill(image: &mut Rgb8, fill: &Fill) {
    match fill {
        Fill::Colour(ops) => {
            for op in ops {
                match *op {
                    ColourOp::Brightness(factor) => adjust_brightness(image, factor),
                    ColourOp::Contrast(factor) => adjust_contrast(image, factor),
                    ColourOp::Saturation(factor) => adjust_saturation(image, factor),
                    ColourOp::Hue(factor) => adjust_hue(image, factor),
                    ColourOp::Grayscale => to_grayscale(image),
                    ColourOp::Blur { sigma } => gaussian_blur(image, sigma),
                }
            }
        }
        Fill::Flip {
            horizontal,
            vertical,
        } => flip(image, *horizontal, *vertical),
        Fill::Noise { seed } => blend_noise(image, &mut SplitMix64::new(*seed)),
    }
}

/// Pillow's `Image.blend(first, second, alpha)` on one byte: `first + alpha (second − first)`
/// in f32, clipped to [0, 255] and truncated (not rounded), as Pillow's C code does.
fn blend(first: u8, second: u8, alpha: f32) -> u8 {
    let mixed = f32::from(first) + alpha * (f32::from(second) - f32::from(first));
    mixed.clamp(0.0, 255.0) as u8
}

/// Brightness as torchvision on PIL images (`ImageEnhance.Brightness`): a blend with black.
pub fn adjust_brightness(image: &mut Rgb8, factor: f32) {
    for value in &mut image.pixels {
        *value = blend(0, *value, factor);
    }
}

/// Contrast as `ImageEnhance.Contrast`: a blend with a flat grey at the image's mean luma,
/// rounded to a whole level.
pub fn adjust_contrast(image: &mut Rgb8, factor: f32) {
    let grey = grey_levels(image);
    let mean = grey.iter().map(|&level| f64::from(level)).sum::<f64>() / grey.len().max(1) as f64;
    // Within 0..=255, so the cast keeps the value.
    let mean_level = (mean + 0.5) as u8;
    for value in &mut image.pixels {
        *value = blend(mean_level, *value, factor);
    }
}

/// Saturation as `ImageEnhance.Color`: a blend with the image's own luma.
pub fn adjust_saturation(image: &mut Rgb8, factor: f32) {
    for pixel in image.pixels.chunks_exact_mut(3) {
        let level = luma(pixel[0], pixel[1], pixel[2]);
        for value in pixel {
            *value = blend(level, *value, factor);
        }
    }
}

/// Hue as torchvision's PIL path: convert to Pillow's 8-bit HSV, add `factor × 255` (truncated
/// to an int8, wrapping) to the hue byte, convert back. `factor` is in [-0.5, 0.5].
pub fn adjust_hue(image: &mut Rgb8, factor: f32) {
    // numpy's `np.int8(hue_factor * 255)` truncates toward zero; adding it as uint8 wraps.
    let shift = (factor * 255.0) as i8 as u8;
    for pixel in image.pixels.chunks_exact_mut(3) {
        let [hue, saturation, value] = rgb_to_hsv(pixel[0], pixel[1], pixel[2]);
        pixel.copy_from_slice(&hsv_to_rgb(hue.wrapping_add(shift), saturation, value));
    }
}

/// Pillow's RGB → HSV (after Python's `colorsys`), each component scaled to a byte and
/// truncated; the same mix of f32 and f64 steps as its C code.
fn rgb_to_hsv(red: u8, green: u8, blue: u8) -> [u8; 3] {
    let max = red.max(green).max(blue);
    let min = red.min(green).min(blue);
    if max == min {
        return [0, 0, max];
    }
    let range = f32::from(max - min);
    let saturation = range / f32::from(max);
    let red_c = f32::from(max - red) / range;
    let green_c = f32::from(max - green) / range;
    let blue_c = f32::from(max - blue) / range;
    let sector = if red == max {
        f64::from(blue_c - green_c)
    } else if green == max {
        2.0 + f64::from(red_c) - f64::from(blue_c)
    } else {
        4.0 + f64::from(green_c) - f64::from(red_c)
    } as f32;
    let hue = ((f64::from(sector) / 6.0 + 1.0) % 1.0) as f32;
    let to_byte = |unit: f64| (unit * 255.0).clamp(0.0, 255.0) as u8;
    [to_byte(f64::from(hue)), to_byte(f64::from(saturation)), max]
}

/// Pillow's HSV → RGB: six sectors, each component rounded half away from zero.
fn hsv_to_rgb(hue: u8, saturation: u8, value: u8) -> [u8; 3] {
    if saturation == 0 {
        return [value; 3];
    }
    let position = f64::from(hue) * 6.0 / 255.0;
    let sector = position.floor();
    let fraction = (position - sector) as f32;
    let saturation = (f64::from(saturation) / 255.0) as f32;
    let level = f64::from(value);
    let to_byte = |unit: f64| (level * unit).round().clamp(0.0, 255.0) as u8;
    let p = to_byte(1.0 - f64::from(saturation));
    let q = to_byte(1.0 - f64::from(saturation * fraction));
    let t = to_byte(1.0 - f64::from(saturation) * (1.0 - f64::from(fraction)));
    // `sector` is 0..=6: hue 255 lands exactly on 6, which is sector 0 again.
    match sector as u32 % 6 {
        0 => [value, t, p],
        1 => [q, value, p],
        2 => [p, value, t],
        3 => [p, q, value],
        4 => [t, p, value],
        _ => [value, p, q],
    }
}

/// torchvision's `RandomGrayscale(p=1)` on RGB: luma in all three channels.
pub fn to_grayscale(image: &mut Rgb8) {
    for pixel in image.pixels.chunks_exact_mut(3) {
        pixel.fill(luma(pixel[0], pixel[1], pixel[2]));
    }
}

/// A Gaussian blur of standard deviation `sigma` pixels, separable, in f32, rounded back to bytes.
///
/// The reference's `ImageFilter.GaussianBlur(radius)` takes `radius` as the standard deviation
/// (Pillow's documentation: "Standard deviation of the Gaussian kernel"), so σ = radius here.
/// Pillow approximates the Gaussian by three extended box blurs; this uses the sampled Gaussian
/// truncated at ⌈3σ⌉, close to the same support. Edges repeat the border pixel, as Pillow's box
/// blur does.
pub fn gaussian_blur(image: &mut Rgb8, sigma: f32) {
    let (width, height) = (image.width, image.height);
    if sigma.is_nan() || sigma <= 0.0 || width == 0 || height == 0 {
        return;
    }
    if image.pixels.len() != width * height * 3 {
        return;
    }
    let kernel = gaussian_kernel(sigma);
    let reach = kernel.len() / 2;
    let stride = width * 3;

    let mut horizontal = vec![0.0f32; width * height * 3];
    let mut padded = vec![0.0f32; (width + 2 * reach) * 3];
    for (source, target) in image
        .pixels
        .chunks_exact(stride)
        .zip(horizontal.chunks_exact_mut(stride))
    {
        for (index, pixel) in padded.chunks_exact_mut(3).enumerate() {
            let x = index.saturating_sub(reach).min(width - 1);
            for (value, &byte) in pixel.iter_mut().zip(&source[x * 3..x * 3 + 3]) {
                *value = f32::from(byte);
            }
        }
        for (x, pixel) in target.chunks_exact_mut(3).enumerate() {
            let window = &padded[x * 3..(x + kernel.len()) * 3];
            let mut sum = [0.0f32; 3];
            for (&weight, neighbour) in kernel.iter().zip(window.chunks_exact(3)) {
                for (total, &value) in sum.iter_mut().zip(neighbour) {
                    *total += weight * value;
                }
            }
            pixel.copy_from_slice(&sum);
        }
    }

    let mut sum = vec![0.0f32; stride];
    for (y, target) in image.pixels.chunks_exact_mut(stride).enumerate() {
        sum.fill(0.0);
        for (offset, &weight) in kernel.iter().enumerate() {
            let source_y = (y + offset).saturating_sub(reach).min(height - 1);
            let source = &horizontal[source_y * stride..(source_y + 1) * stride];
            for (total, &value) in sum.iter_mut().zip(source) {
                *total += weight * value;
            }
        }
        for (byte, &total) in target.iter_mut().zip(&sum) {
            *byte = (total + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
}

/// Normalised weights of a Gaussian of standard deviation `sigma` over −⌈3σ⌉..=⌈3σ⌉.
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let reach = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f64> = (-reach..=reach)
        .map(|offset| (-((offset * offset) as f64) / (2.0 * f64::from(sigma).powi(2))).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    weights
        .into_iter()
        .map(|weight| (weight / total) as f32)
        .collect()
}

/// Mirrors the image left–right and/or top–bottom.
pub fn flip(image: &mut Rgb8, horizontal: bool, vertical: bool) {
    let stride = image.width * 3;
    if stride == 0 {
        return;
    }
    let mut rows: Vec<&[u8]> = image.pixels.chunks_exact(stride).collect();
    if vertical {
        rows.reverse();
    }
    let mut flipped = Vec::with_capacity(image.pixels.len());
    for row in rows {
        if horizontal {
            for pixel in row.chunks_exact(3).rev() {
                flipped.extend_from_slice(pixel);
            }
        } else {
            flipped.extend_from_slice(row);
        }
    }
    image.pixels = flipped;
}

/// `Image.blend(image, noise, 0.5)` with uniform random RGB noise.
pub fn blend_noise(image: &mut Rgb8, rng: &mut SplitMix64) {
    let mut bits = 0u64;
    let mut bytes_left = 0;
    for value in &mut image.pixels {
        if bytes_left == 0 {
            bits = rng.next_u64();
            bytes_left = 8;
        }
        // The low byte of the remaining bits: each of the 8 bytes is uniform.
        let noise = bits as u8;
        bits >>= 8;
        bytes_left -= 1;
        *value = blend(*value, noise, 0.5);
    }
}

/// The reference's `remove_black`: pixels whose luma is not above the mean luma take the mean
/// colour (truncated) of the pixels that are. An image of one grey level has no such pixels and
/// stays as it is (the reference would fill it with NaN).
pub fn replace_dark_with_mean(image: &mut Rgb8) {
    let grey = grey_levels(image);
    let mean = grey.iter().map(|&level| f64::from(level)).sum::<f64>() / grey.len().max(1) as f64;
    let mut sums = [0.0f64; 3];
    let mut count = 0.0;
    for (pixel, &level) in image.pixels.chunks_exact(3).zip(&grey) {
        if f64::from(level) > mean {
            for (sum, &value) in sums.iter_mut().zip(pixel) {
                *sum += f64::from(value);
            }
            count += 1.0;
        }
    }
    if count == 0.0 {
        return;
    }
    // Means of bytes are within 0..=255; numpy's `astype(int)` truncates.
    let colour = sums.map(|sum| (sum / count) as u8);
    for (pixel, &level) in image.pixels.chunks_exact_mut(3).zip(&grey) {
        if f64::from(level) <= mean {
            pixel.copy_from_slice(&colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(width: usize, height: usize, colour: [u8; 3]) -> Rgb8 {
        Rgb8 {
            width,
            height,
            pixels: colour.repeat(width * height),
        }
    }

    /// A dark, slightly noisy background with a bright noisy square at `square`.
    fn object_image(width: usize, height: usize, square: PixelBox, seed: u64) -> Rgb8 {
        let mut rng = SplitMix64::new(seed);
        let mut image = flat(width, height, [0; 3]);
        for (index, pixel) in image.pixels.chunks_exact_mut(3).enumerate() {
            let (x, y) = (index % width, index / width);
            let base = if square.contains(x, y) { 190 } else { 20 };
            for (channel, value) in pixel.iter_mut().enumerate() {
                *value = base + (channel as u8) * 10 + rng.below(20) as u8;
            }
        }
        image
    }

    fn mask_area(shape: &Shape, width: usize, height: usize) -> usize {
        let mut mask = vec![0; width * height];
        fill_shape(shape, &mut mask, width);
        mask.iter().filter(|&&value| value != 0).count()
    }

    fn always() -> CorruptionConfig {
        CorruptionConfig::new().with_probability(1.0)
    }

    #[test]
    fn otsu_separates_two_modes() {
        let mut rng = SplitMix64::new(1);
        let grey: Vec<u8> = (0..2000)
            .map(|index| {
                let centre = if index % 3 == 0 { 60 } else { 180 };
                centre - 15 + rng.below(31) as u8
            })
            .collect();
        let threshold = otsu_threshold(&grey);
        assert!((75..165).contains(&threshold), "threshold {threshold}");
        assert_eq!(otsu_threshold(&[7; 50]), 0);
    }

    #[test]
    fn foreground_box_pads_a_bright_square() {
        let square = PixelBox {
            left: 40,
            top: 30,
            right: 70,
            bottom: 60,
        };
        let image = object_image(120, 100, square, 3);
        // Width 30 → 3 px each side; height 30 → 6 px each side.
        let expected = PixelBox {
            left: 37,
            top: 24,
            right: 73,
            bottom: 66,
        };
        assert_eq!(foreground_box(&image), expected);
    }

    #[test]
    fn foreground_box_keeps_the_largest_component_and_clips() {
        let mut foreground = vec![false; 50 * 40];
        let mut mark = |left: usize, top: usize, right: usize, bottom: usize| {
            for y in top..bottom {
                for x in left..right {
                    foreground[y * 50 + x] = true;
                }
            }
        };
        mark(1, 1, 5, 5);
        mark(20, 10, 48, 38);
        // Touches the big one diagonally: 8-connected, so part of it.
        mark(48, 38, 50, 40);
        let found = largest_component_box(&foreground, 50, 40);
        assert_eq!(
            found,
            Some(PixelBox {
                left: 20,
                top: 10,
                right: 50,
                bottom: 40
            })
        );
        assert_eq!(largest_component_box(&[false; 12], 4, 3), None);
        assert_eq!(largest_component_box(&[true; 5], 4, 3), None);
    }

    #[test]
    fn foreground_box_of_a_uniform_image_is_the_whole_image() {
        for level in [0, 128, 255] {
            let image = flat(30, 20, [level; 3]);
            assert_eq!(
                foreground_box(&image),
                PixelBox::whole(30, 20),
                "level {level}"
            );
        }
    }

    #[test]
    fn rectangle_area_is_exact() {
        let shape = Shape::Rectangle(PixelBox {
            left: 5,
            top: 7,
            right: 25,
            bottom: 19,
        });
        assert_eq!(mask_area(&shape, 40, 30), 20 * 12);
        // Clipped at the mask's edge.
        let beyond = Shape::Rectangle(PixelBox {
            left: 30,
            top: 25,
            right: 60,
            bottom: 50,
        });
        assert_eq!(mask_area(&beyond, 40, 30), 10 * 5);
    }

    #[test]
    fn ellipse_area_is_close_to_pi_a_b() {
        let shape = Shape::Ellipse(PixelBox {
            left: 10,
            top: 20,
            right: 90,
            bottom: 70,
        });
        let expected = std::f64::consts::PI * 40.0 * 25.0;
        let area = mask_area(&shape, 100, 100) as f64;
        assert!((area / expected - 1.0).abs() < 0.02, "area {area}");
    }

    #[test]
    fn triangle_area_is_close_to_half_base_times_height() {
        let shape = Shape::Polygon {
            bounds: PixelBox {
                left: 10,
                top: 10,
                right: 90,
                bottom: 70,
            },
            vertices: vec![(10.0, 10.0), (90.0, 10.0), (10.0, 70.0)],
        };
        let area = mask_area(&shape, 100, 100) as f64;
        assert!((area / 2400.0 - 1.0).abs() < 0.03, "area {area}");
    }

    #[test]
    fn self_crossing_star_is_filled_even_odd() {
        let (centre, radius) = (50.0f64, 40.0f64);
        let corners: Vec<(f64, f64)> = (0..5)
            .map(|k| {
                let angle = std::f64::consts::TAU * k as f64 / 5.0 - std::f64::consts::FRAC_PI_2;
                (centre + radius * angle.cos(), centre + radius * angle.sin())
            })
            .collect();
        let vertices: Vec<(f64, f64)> = [0, 2, 4, 1, 3].iter().map(|&k| corners[k]).collect();
        let shape = Shape::Polygon {
            bounds: PixelBox::whole(100, 100),
            vertices,
        };
        let mut mask = vec![0; 100 * 100];
        fill_shape(&shape, &mut mask, 100);
        // The centre pentagon is crossed twice, so it stays empty; a point's tip is filled.
        assert_eq!(mask[50 * 100 + 50], 0);
        assert_eq!(mask[15 * 100 + 50], 1);
    }

    #[test]
    fn shapes_fit_their_area_and_meet_the_minimum_side() {
        let area = PixelBox {
            left: 13,
            top: 21,
            right: 83,
            bottom: 60,
        };
        let config = always();
        let mut kinds = [0; 3];
        for seed in 0..300 {
            let mut rng = SplitMix64::new(seed);
            let shapes = draw_shapes(area, &config, &mut rng);
            assert!((1..=3).contains(&shapes.len()));
            for shape in shapes {
                let bounds = shape.bounds();
                assert!(bounds.width() >= 10 && bounds.height() >= 10, "{shape:?}");
                assert!(
                    bounds.left >= area.left && bounds.right <= area.right,
                    "{shape:?}"
                );
                assert!(
                    bounds.top >= area.top && bounds.bottom <= area.bottom,
                    "{shape:?}"
                );
                assert!(mask_area(&shape, 100, 80) > 0, "{shape:?}");
                kinds[match shape {
                    Shape::Rectangle(_) => 0,
                    Shape::Ellipse(_) => 1,
                    Shape::Polygon { .. } => 2,
                }] += 1;
            }
        }
        assert!(kinds.iter().all(|&count| count > 100), "{kinds:?}");
    }

    #[test]
    fn mask_stays_inside_the_foreground_box() {
        let square = PixelBox {
            left: 40,
            top: 30,
            right: 70,
            bottom: 60,
        };
        let image = object_image(120, 100, square, 5);
        let allowed = foreground_box(&image);
        for seed in 0..40 {
            let result = corrupt(&image, &always(), &mut SplitMix64::new(seed)).unwrap();
            for (index, &marked) in result.mask.iter().enumerate() {
                if marked != 0 {
                    assert!(allowed.contains(index % 120, index / 120), "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn pixels_change_only_under_the_mask() {
        let square = PixelBox {
            left: 10,
            top: 12,
            right: 50,
            bottom: 44,
        };
        let image = object_image(64, 56, square, 9);
        let mut changed_images = 0;
        for seed in 0..60 {
            let config = always().with_replace_dark_with_mean(seed % 2 == 0);
            let result = corrupt(&image, &config, &mut SplitMix64::new(seed)).unwrap();
            let mut changed = false;
            for ((before, after), &marked) in image
                .pixels
                .chunks_exact(3)
                .zip(result.image.pixels.chunks_exact(3))
                .zip(&result.mask)
            {
                if marked == 0 {
                    assert_eq!(before, after, "seed {seed}");
                } else {
                    changed |= before != after;
                }
            }
            changed_images += usize::from(changed);
        }
        assert!(changed_images > 50, "only {changed_images} images changed");
    }

    #[test]
    fn probability_zero_changes_nothing() {
        let image = object_image(40, 30, PixelBox::whole(20, 20), 2);
        let config = CorruptionConfig::new().with_probability(0.0);
        for seed in 0..20 {
            let result = corrupt(&image, &config, &mut SplitMix64::new(seed)).unwrap();
            assert!(!result.corrupted);
            assert_eq!(result.image.pixels, image.pixels);
            assert!(result.mask.iter().all(|&value| value == 0));
        }
    }

    #[test]
    fn probability_one_always_marks_pixels() {
        let image = object_image(48, 40, PixelBox::whole(30, 25), 4);
        for use_foreground_box in [true, false] {
            let config = always().with_use_foreground_box(use_foreground_box);
            for seed in 0..40 {
                let result = corrupt(&image, &config, &mut SplitMix64::new(seed)).unwrap();
                assert!(result.corrupted);
                assert_eq!(result.mask.len(), 48 * 40);
                assert!(result.mask.contains(&1), "seed {seed}");
                assert!(result.mask.iter().all(|&value| value <= 1));
            }
        }
    }

    #[test]
    fn same_seed_same_output_different_seed_differs() {
        let image = object_image(50, 40, PixelBox::whole(35, 30), 8);
        let run = |seed| corrupt(&image, &always(), &mut SplitMix64::new(seed)).unwrap();
        let (first, again, other) = (run(77), run(77), run(78));
        assert_eq!(first.image.pixels, again.image.pixels);
        assert_eq!(first.mask, again.mask);
        assert!(first.mask != other.mask || first.image.pixels != other.image.pixels);
    }

    #[test]
    fn about_two_thirds_are_corrupted() {
        let image = object_image(24, 24, PixelBox::whole(12, 12), 6);
        let config = CorruptionConfig::new();
        let mut rng = SplitMix64::new(2024);
        let corrupted = (0..300)
            .filter(|_| corrupt(&image, &config, &mut rng).unwrap().corrupted)
            .count();
        // 200 expected; the binomial standard deviation is about 8.
        assert!((170..=230).contains(&corrupted), "{corrupted} of 300");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let image = flat(4, 3, [9; 3]);
        let mut rng = SplitMix64::new(0);
        let config = CorruptionConfig::new().with_probability(1.5);
        assert!(matches!(
            corrupt(&image, &config, &mut rng),
            Err(CorruptError::Probability { .. })
        ));
        let config = CorruptionConfig::new().with_max_shapes(0);
        assert!(matches!(
            corrupt(&image, &config, &mut rng),
            Err(CorruptError::MaxShapes { max_shapes: 0 })
        ));
        let short = Rgb8 {
            width: 4,
            height: 3,
            pixels: vec![0; 35],
        };
        let error = corrupt(&short, &CorruptionConfig::new(), &mut rng).unwrap_err();
        assert!(error.to_string().contains("got 35"), "{error}");
        assert!(matches!(
            mask_to_label(&[0; 11], 4, 3, 8),
            Err(CorruptError::MaskLength { got: 11, .. })
        ));
    }

    #[test]
    fn mask_to_label_truncates_partly_covered_pixels() {
        // Columns 0..=50 of 100 marked; halving puts output column x between 2x and 2x + 1.
        let mask: Vec<u8> = (0..100 * 100)
            .map(|index| u8::from(index % 100 <= 50))
            .collect();
        let label = mask_to_label(&mask, 100, 100, 50).unwrap();
        assert_eq!(label.len(), 50 * 50);
        for row in label.chunks_exact(50) {
            // Column 25 reads source columns 50 (marked) and 51 (not) at 0.5 each: truncated.
            let expected: Vec<f32> = (0..50).map(|x| if x < 25 { 1.0 } else { 0.0 }).collect();
            assert_eq!(row, &expected[..]);
        }
        assert!(
            mask_to_label(&[1; 30], 6, 5, 224)
                .unwrap()
                .iter()
                .all(|&value| value == 1.0)
        );
        assert!(
            mask_to_label(&[0; 30], 6, 5, 7)
                .unwrap()
                .iter()
                .all(|&value| value == 0.0)
        );
    }

    #[test]
    fn blur_keeps_a_constant_image() {
        for level in [0, 1, 127, 254, 255] {
            let mut image = flat(37, 23, [level, 255 - level, 99]);
            let before = image.pixels.clone();
            gaussian_blur(&mut image, 17.5);
            assert_eq!(image.pixels, before, "level {level}");
        }
    }

    #[test]
    fn blur_spreads_a_dot_symmetrically() {
        let mut image = flat(41, 41, [0; 3]);
        let centre = (20 * 41 + 20) * 3;
        image.pixels[centre..centre + 3].fill(255);
        gaussian_blur(&mut image, 1.5);
        let at = |x: usize, y: usize| image.pixels[(y * 41 + x) * 3];
        assert!(at(20, 20) < 255 && at(20, 20) > at(21, 20));
        assert_eq!(at(19, 20), at(21, 20));
        assert_eq!(at(20, 18), at(18, 20));
        assert_eq!(at(0, 0), 0);
    }

    #[test]
    fn brightness_one_is_identity_and_zero_is_black() {
        let original = object_image(16, 9, PixelBox::whole(8, 8), 1);
        let mut image = original.clone();
        adjust_brightness(&mut image, 1.0);
        assert_eq!(image.pixels, original.pixels);
        adjust_brightness(&mut image, 0.0);
        assert!(image.pixels.iter().all(|&value| value == 0));
        // Pillow truncates: 101 × 1.5 = 151.5 → 151; 200 × 1.5 clips at 255.
        let mut image = flat(1, 1, [101, 200, 0]);
        adjust_brightness(&mut image, 1.5);
        assert_eq!(image.pixels, [151, 255, 0]);
    }

    #[test]
    fn grayscale_of_a_grey_image_is_identity() {
        let mut image = Rgb8 {
            width: 256,
            height: 1,
            pixels: (0..=255u8).flat_map(|level| [level; 3]).collect(),
        };
        let before = image.pixels.clone();
        to_grayscale(&mut image);
        assert_eq!(image.pixels, before);
        // ITU-R 601-2: 0.299 × 255 = 76.2, 0.587 × 255 = 149.7, 0.114 × 255 = 29.1.
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn saturation_zero_is_grayscale_and_contrast_zero_is_mean_grey() {
        let original = object_image(12, 10, PixelBox::whole(6, 6), 11);
        let mut desaturated = original.clone();
        adjust_saturation(&mut desaturated, 0.0);
        let mut grey = original.clone();
        to_grayscale(&mut grey);
        assert_eq!(desaturated.pixels, grey.pixels);

        let mut flattened = original.clone();
        adjust_contrast(&mut flattened, 0.0);
        let levels = grey_levels(&original);
        let mean = levels.iter().map(|&level| f64::from(level)).sum::<f64>() / levels.len() as f64;
        let expected = (mean + 0.5) as u8;
        assert!(flattened.pixels.iter().all(|&value| value == expected));
    }

    #[test]
    fn hue_shift_of_a_third_turns_red_into_green() {
        let mut image = flat(2, 1, [255, 0, 0]);
        // 0.334 × 255 = 85.2 → a shift of 85 levels, a third of the hue circle.
        adjust_hue(&mut image, 0.334);
        assert_eq!(image.pixels, [0, 255, 0, 0, 255, 0]);
        let mut grey = flat(1, 1, [90; 3]);
        adjust_hue(&mut grey, -0.3);
        assert_eq!(grey.pixels, [90; 3]);
        // Pillow's 8-bit HSV round trip is close to, not exactly, the identity.
        let original = object_image(20, 20, PixelBox::whole(10, 10), 12);
        let mut image = original.clone();
        adjust_hue(&mut image, 0.0);
        let worst = image
            .pixels
            .iter()
            .zip(&original.pixels)
            .map(|(&after, &before)| after.abs_diff(before))
            .max();
        assert!(worst <= Some(6), "{worst:?}");
    }

    #[test]
    fn flips_mirror_the_image() {
        let original = Rgb8 {
            width: 3,
            height: 2,
            pixels: (0..18).collect(),
        };
        let mut image = original.clone();
        flip(&mut image, true, false);
        assert_eq!(
            image.pixels,
            [6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11]
        );
        let mut image = original.clone();
        flip(&mut image, false, true);
        assert_eq!(
            image.pixels,
            [9, 10, 11, 12, 13, 14, 15, 16, 17, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        let mut image = original.clone();
        flip(&mut image, true, true);
        flip(&mut image, true, true);
        assert_eq!(image.pixels, original.pixels);
    }

    #[test]
    fn noise_blend_lands_halfway() {
        let mut image = flat(30, 30, [200, 0, 100]);
        blend_noise(&mut image, &mut SplitMix64::new(3));
        for pixel in image.pixels.chunks_exact(3) {
            // value + (noise − value) / 2 for noise in 0..=255, truncated.
            assert!((100..=227).contains(&pixel[0]));
            assert!(pixel[1] <= 127);
            assert!((50..=177).contains(&pixel[2]));
        }
        assert!(image.pixels.chunks_exact(3).any(|pixel| pixel[0] != 100));
    }

    #[test]
    fn dark_pixels_take_the_mean_of_the_bright_ones() {
        let mut image = Rgb8 {
            width: 4,
            height: 1,
            pixels: vec![10, 10, 10, 200, 100, 50, 210, 110, 61, 0, 0, 0],
        };
        replace_dark_with_mean(&mut image);
        assert_eq!(
            image.pixels,
            [205, 105, 55, 200, 100, 50, 210, 110, 61, 205, 105, 55]
        );
        let mut uniform = flat(3, 3, [40; 3]);
        replace_dark_with_mean(&mut uniform);
        assert_eq!(uniform.pixels, [40; 27]);
    }

    #[test]
    fn every_fill_kind_is_drawn() {
        let mut rng = SplitMix64::new(10);
        let mut seen = [false; 3];
        for _ in 0..60 {
            match draw_fill(&mut rng) {
                Fill::Colour(ops) => {
                    assert!(!ops.is_empty() && ops.len() <= 5);
                    seen[0] = true;
                }
                Fill::Flip {
                    horizontal,
                    vertical,
                } => {
                    assert!(horizontal || vertical);
                    seen[1] = true;
                }
                Fill::Noise { .. } => seen[2] = true,
            }
        }
        assert_eq!(seen, [true; 3]);
    }
}
