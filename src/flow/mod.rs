//! Dense optical flow between consecutive frames, by Dense Inverse Search (Kroeger et al.,
//! ECCV 2016), the method behind OpenCV's `DISOpticalFlow`.
//!
//! Coarse to fine over an image pyramid: at each level, square patches on a regular grid each
//! find their displacement by inverse-compositional Lucas–Kanade (the template's gradients and
//! Hessian are computed once per patch, so an iteration costs one bilinear warp of the patch),
//! starting from the coarser level's flow; then every pixel averages the displacements of the
//! patches covering it, weighted by how well each explains that pixel. Residuals are taken
//! after subtracting each patch's mean, which makes the search robust to brightness changes.
//! The variational refinement of the paper's slower presets is not done: [`bench`] measures
//! what that costs in accuracy against OpenCV's presets on sequences with known motion.

pub mod bench;
pub mod descriptor;
mod image;

pub use image::{GrayImage, ImageError};

/// The search settings, as OpenCV names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisParams {
    /// Side of the square patches.
    pub patch: usize,
    /// Distance between neighbouring patches (smaller: more overlap, smoother, slower).
    pub stride: usize,
    /// Gauss–Newton iterations per patch.
    pub iterations: usize,
    /// Pyramid level whose flow is upsampled to full resolution (0: computed at full size).
    pub finest_level: usize,
}

impl DisParams {
    /// OpenCV's `PRESET_ULTRAFAST` search settings (its variational refinement is off there).
    pub const ULTRAFAST: Self = Self {
        patch: 8,
        stride: 6,
        iterations: 16,
        finest_level: 2,
    };
    /// OpenCV's `PRESET_FAST` search settings, without its 5 variational iterations.
    pub const FAST: Self = Self {
        patch: 8,
        stride: 4,
        iterations: 16,
        finest_level: 2,
    };
    /// OpenCV's `PRESET_MEDIUM` search settings, without its variational iterations.
    pub const MEDIUM: Self = Self {
        patch: 12,
        stride: 8,
        iterations: 25,
        finest_level: 1,
    };
}

impl Default for DisParams {
    fn default() -> Self {
        Self::FAST
    }
}

/// A dense flow field: pixel `(x, y)` of the first frame moved by `(u, v)` in the second.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowField {
    pub width: usize,
    pub height: usize,
    pub u: Vec<f32>,
    pub v: Vec<f32>,
}

impl FlowField {
    fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            u: vec![0.0; width * height],
            v: vec![0.0; width * height],
        }
    }

    /// Mean endpoint error against a reference field of the same size.
    pub fn endpoint_error(&self, truth: &FlowField) -> Option<f64> {
        if (self.width, self.height) != (truth.width, truth.height) || self.u.is_empty() {
            return None;
        }
        let total: f64 = (0..self.u.len())
            .map(|i| {
                let du = f64::from(self.u[i] - truth.u[i]);
                let dv = f64::from(self.v[i] - truth.v[i]);
                (du * du + dv * dv).sqrt()
            })
            .sum();
        Some(total / self.u.len() as f64)
    }

    /// Bilinear resize to `width × height`, scaling the vectors with the image.
    fn resized(&self, width: usize, height: usize) -> FlowField {
        let (sx, sy) = (
            self.width as f32 / width as f32,
            self.height as f32 / height as f32,
        );
        let u = GrayImage::from_values(self.width, self.height, self.u.clone());
        let v = GrayImage::from_values(self.width, self.height, self.v.clone());
        let mut out = FlowField::zeros(width, height);
        for y in 0..height {
            for x in 0..width {
                // Pixel centres line up: the centre of output pixel x is at (x + ½)·sx − ½.
                let (fx, fy) = ((x as f32 + 0.5) * sx - 0.5, (y as f32 + 0.5) * sy - 0.5);
                out.u[y * width + x] = u.sample(fx, fy) / sx;
                out.v[y * width + x] = v.sample(fx, fy) / sy;
            }
        }
        out
    }
}

/// Why flow could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("frames differ in size: {first:?} then {second:?}")]
    SizeMismatch {
        first: (usize, usize),
        second: (usize, usize),
    },
    #[error("frames of {width}×{height} are smaller than one {patch}-pixel patch")]
    TooSmall {
        width: usize,
        height: usize,
        patch: usize,
    },
    #[error("bad flow settings: {0}")]
    Params(&'static str),
}

/// Pyramid levels by OpenCV's rule: the coarsest scale is about `log2(max side / (4·patch))`
/// halvings down, and never smaller than one patch on its short side.
fn pyramid_levels(width: usize, height: usize, patch: usize) -> usize {
    let ratio = width.max(height) as f64 / (4 * patch) as f64;
    let wanted = if ratio > 1.0 {
        ratio.log2().round() as usize
    } else {
        0
    };
    let mut levels = 1;
    let (mut w, mut h) = (width, height);
    while levels <= wanted && w.div_ceil(2) >= patch && h.div_ceil(2) >= patch {
        w = w.div_ceil(2);
        h = h.div_ceil(2);
        levels += 1;
    }
    levels
}

/// Dense flow from `first` to `second` (grey, same size).
pub fn dense_flow(
    first: &GrayImage,
    second: &GrayImage,
    params: &DisParams,
) -> Result<FlowField, FlowError> {
    if (first.width, first.height) != (second.width, second.height) {
        return Err(FlowError::SizeMismatch {
            first: (first.width, first.height),
            second: (second.width, second.height),
        });
    }
    if params.patch < 2 || params.stride == 0 || params.iterations == 0 {
        return Err(FlowError::Params(
            "patch must be at least 2, stride and iterations at least 1",
        ));
    }
    if first.width < params.patch || first.height < params.patch {
        return Err(FlowError::TooSmall {
            width: first.width,
            height: first.height,
            patch: params.patch,
        });
    }
    let levels = pyramid_levels(first.width, first.height, params.patch);
    let first_pyramid = first.pyramid(levels);
    let second_pyramid = second.pyramid(levels);
    let finest = params.finest_level.min(levels - 1);
    let mut flow: Option<FlowField> = None;
    for level in (finest..levels).rev() {
        let (i0, i1) = (&first_pyramid[level], &second_pyramid[level]);
        let initial = match flow {
            Some(coarser) => coarser.resized(i0.width, i0.height),
            None => FlowField::zeros(i0.width, i0.height),
        };
        flow = Some(search_level(i0, i1, &initial, params));
    }
    let flow = flow.unwrap_or_else(|| FlowField::zeros(first.width, first.height));
    Ok(if finest > 0 {
        flow.resized(first.width, first.height)
    } else {
        flow
    })
}

/// One patch's inverse search, returning its displacement.
struct PatchSearch<'a> {
    i0: &'a GrayImage,
    i1: &'a GrayImage,
    gx: &'a GrayImage,
    gy: &'a GrayImage,
    patch: usize,
}

impl PatchSearch<'_> {
    /// The mean-normalised sum of squared differences of the patch at `(x0, y0)` displaced by
    /// `(u, v)`: how well a candidate start explains the patch.
    fn cost(&self, x0: usize, y0: usize, (u, v): (f32, f32)) -> f32 {
        let p = self.patch;
        let n = (p * p) as f32;
        let (mut sum0, mut sum1, mut sum00, mut sum11, mut sum01) = (0.0f32, 0.0, 0.0, 0.0, 0.0);
        for y in y0..y0 + p {
            for x in x0..x0 + p {
                let a = self.i0.at(x, y);
                let b = self.i1.sample(x as f32 + u, y as f32 + v);
                sum0 += a;
                sum1 += b;
                sum00 += a * a;
                sum11 += b * b;
                sum01 += a * b;
            }
        }
        // Σ((b − b̄) − (a − ā))² expanded.
        (sum11 - sum1 * sum1 / n) + (sum00 - sum0 * sum0 / n) - 2.0 * (sum01 - sum0 * sum1 / n)
    }

    fn run(&self, x0: usize, y0: usize, initial: (f32, f32), iterations: usize) -> (f32, f32) {
        let p = self.patch;
        let n = (p * p) as f32;
        // Template: mean-normalised patch of I0 and its gradients; Hessian of the
        // mean-normalised gradients.
        let mut template = Vec::with_capacity(p * p);
        let mut grads = Vec::with_capacity(p * p);
        for y in y0..y0 + p {
            for x in x0..x0 + p {
                template.push(self.i0.at(x, y));
                grads.push((self.gx.at(x, y), self.gy.at(x, y)));
            }
        }
        let template_mean = template.iter().sum::<f32>() / n;
        let (gx_mean, gy_mean) = grads
            .iter()
            .fold((0.0, 0.0), |(a, b), (gx, gy)| (a + gx, b + gy));
        let (gx_mean, gy_mean) = (gx_mean / n, gy_mean / n);
        let (mut hxx, mut hxy, mut hyy) = (0.0f32, 0.0f32, 0.0f32);
        for (gx, gy) in &mut grads {
            *gx -= gx_mean;
            *gy -= gy_mean;
            hxx += *gx * *gx;
            hxy += *gx * *gy;
            hyy += *gy * *gy;
        }
        let det = hxx * hyy - hxy * hxy;
        if det.abs() < 1e-6 {
            // A flat or one-dimensional patch: keep what the coarser level said.
            return initial;
        }
        let (u0, v0) = initial;
        let (mut u, mut v) = initial;
        let mut warped = vec![0.0f32; p * p];
        for _ in 0..iterations {
            let mut sum = 0.0;
            for (k, value) in warped.iter_mut().enumerate() {
                let (dx, dy) = ((k % p) as f32, (k / p) as f32);
                *value = self.i1.sample(x0 as f32 + dx + u, y0 as f32 + dy + v);
                sum += *value;
            }
            let warped_mean = sum / n;
            let (mut bx, mut by) = (0.0f32, 0.0f32);
            for k in 0..p * p {
                let residual = (warped[k] - warped_mean) - (template[k] - template_mean);
                bx += grads[k].0 * residual;
                by += grads[k].1 * residual;
            }
            let du = (hyy * bx - hxy * by) / det;
            let dv = (hxx * by - hxy * bx) / det;
            u -= du;
            v -= dv;
            if du * du + dv * dv < 1e-4 {
                break;
            }
        }
        // A search that wandered further than a patch from its start has lost track.
        if (u - u0).abs() > p as f32
            || (v - v0).abs() > p as f32
            || !u.is_finite()
            || !v.is_finite()
        {
            return initial;
        }
        (u, v)
    }
}

/// Patch origins along one axis: every `stride` pixels, with the last patch flush with the
/// border so that every pixel is covered.
fn origins(size: usize, patch: usize, stride: usize) -> Vec<usize> {
    let last = size - patch;
    let mut positions: Vec<usize> = (0..=last).step_by(stride).collect();
    if positions.last() != Some(&last) {
        positions.push(last);
    }
    positions
}

fn search_level(
    i0: &GrayImage,
    i1: &GrayImage,
    initial: &FlowField,
    params: &DisParams,
) -> FlowField {
    let (width, height) = (i0.width, i0.height);
    let p = params.patch.min(width).min(height);
    let (gx, gy) = i0.gradients();
    let search = PatchSearch {
        i0,
        i1,
        gx: &gx,
        gy: &gy,
        patch: p,
    };
    let xs = origins(width, p, params.stride);
    let ys = origins(height, p, params.stride);
    // Densification: per pixel, Σ w·flow and Σ w over the patches covering it.
    let mut sum_u = vec![0.0f32; width * height];
    let mut sum_v = vec![0.0f32; width * height];
    let mut sum_w = vec![0.0f32; width * height];
    // Spatial propagation, as DIS does: a patch may start from its left or upper neighbour's
    // result instead of the coarser flow, whichever explains it best. Motion found where
    // texture is strong thus spreads to patches that could not find it alone.
    let mut found: Vec<(f32, f32)> = Vec::with_capacity(xs.len() * ys.len());
    for (row, &y0) in ys.iter().enumerate() {
        for (column, &x0) in xs.iter().enumerate() {
            let centre = (y0 + p / 2) * width + x0 + p / 2;
            let mut start = (initial.u[centre], initial.v[centre]);
            let mut best = search.cost(x0, y0, start);
            let left = (column > 0).then(|| found[row * xs.len() + column - 1]);
            let up = (row > 0).then(|| found[(row - 1) * xs.len() + column]);
            for candidate in [left, up].into_iter().flatten() {
                let cost = search.cost(x0, y0, candidate);
                if cost < best {
                    (start, best) = (candidate, cost);
                }
            }
            let (u, v) = search.run(x0, y0, start, params.iterations);
            found.push((u, v));
            for y in y0..y0 + p {
                for x in x0..x0 + p {
                    let residual = (i1.sample(x as f32 + u, y as f32 + v) - i0.at(x, y)).abs();
                    let weight = 1.0 / residual.max(1.0 / 255.0);
                    let index = y * width + x;
                    sum_u[index] += weight * u;
                    sum_v[index] += weight * v;
                    sum_w[index] += weight;
                }
            }
        }
    }
    let mut flow = FlowField::zeros(width, height);
    for index in 0..width * height {
        if sum_w[index] > 0.0 {
            flow.u[index] = sum_u[index] / sum_w[index];
            flow.v[index] = sum_v[index] / sum_w[index];
        }
    }
    flow
}

#[cfg(test)]
mod tests;
