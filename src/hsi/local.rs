//! Detectors that judge a pixel against its neighbourhood rather than the whole scene: local RX
//! and collaborative representation (CRD) on a dual window, and the FERD authors' simplified
//! local RX (SLRX) on blocks.
//!
//! All three first min–max the cube to [0, 1] as the FERS/FERD code does, because their
//! regularisers (SLRX's 1e-6·I, CRD's λ) are absolute and only mean something on that scale.
//! Pixels are independent, so rows are shared out among `threads` scoped threads.

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Par, Side};

use super::background::{Background, CovarianceAccumulator};
use super::{Cube, HsiError};

/// Inner (guard) and outer window sizes of a dual-window detector, both odd, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DualWindow {
    pub inner: usize,
    pub outer: usize,
}

impl DualWindow {
    pub fn validate(&self) -> Result<(), HsiError> {
        if self.inner.is_multiple_of(2) || self.outer.is_multiple_of(2) || self.inner >= self.outer
        {
            return Err(HsiError::Detector(format!(
                "a dual window needs odd sizes with inner < outer, got inner {} and outer {}",
                self.inner, self.outer
            )));
        }
        Ok(())
    }

    /// The background ring of pixel `(row, col)`, clipped to the image, row-major.
    fn ring(
        &self,
        rows: usize,
        cols: usize,
        row: usize,
        col: usize,
    ) -> impl Iterator<Item = (usize, usize)> {
        let (outer, inner) = (self.outer / 2, self.inner / 2);
        let (r0, r1) = (row.saturating_sub(outer), (row + outer).min(rows - 1));
        let (c0, c1) = (col.saturating_sub(outer), (col + outer).min(cols - 1));
        (r0..=r1)
            .flat_map(move |r| (c0..=c1).map(move |c| (r, c)))
            .filter(move |&(r, c)| r.abs_diff(row) > inner || c.abs_diff(col) > inner)
    }

    /// The spectra of pixel `(row, col)`'s ring, BIP, from the `rows × cols × bands` cube `data`.
    fn ring_spectra(
        &self,
        data: &[f32],
        (rows, cols, bands): (usize, usize, usize),
        row: usize,
        col: usize,
    ) -> Vec<f32> {
        let mut spectra = Vec::new();
        for (r, c) in self.ring(rows, cols, row, col) {
            let start = (r * cols + c) * bands;
            spectra.extend_from_slice(&data[start..start + bands]);
        }
        spectra
    }
}

/// The cube's values min–maxed to [0, 1] over all bands and pixels, BIP.
pub fn normalised(cube: &Cube) -> Result<Vec<f32>, HsiError> {
    cube.check_finite()?;
    let (min, max) = cube
        .data()
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if max <= min {
        return Err(HsiError::Detector(format!(
            "the cube is constant ({min}): there is nothing to detect"
        )));
    }
    let scale = 1.0 / (f64::from(max) - f64::from(min));
    Ok(cube
        .data()
        .iter()
        .map(|&v| ((f64::from(v) - f64::from(min)) * scale) as f32)
        .collect())
}

/// Runs `score_pixel(row, col)` for every pixel, rows shared among `threads` threads.
fn per_pixel<F>(
    rows: usize,
    cols: usize,
    threads: usize,
    score_pixel: F,
) -> Result<Vec<f32>, HsiError>
where
    F: Fn(usize, usize) -> Result<f32, HsiError> + Sync,
{
    let mut scores = vec![0.0f32; rows * cols];
    let rows_per_thread = rows.div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let workers: Vec<_> = scores
            .chunks_mut(rows_per_thread * cols)
            .enumerate()
            .map(|(chunk, out)| {
                let score_pixel = &score_pixel;
                scope.spawn(move || -> Result<(), HsiError> {
                    for (i, score) in out.iter_mut().enumerate() {
                        let pixel = chunk * rows_per_thread * cols + i;
                        *score = score_pixel(pixel / cols, pixel % cols)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| HsiError::Detector("a detector thread panicked".into()))?
        })
    })?;
    Ok(scores)
}

/// Local RX: the squared Mahalanobis distance of each pixel to the mean and covariance of its
/// dual-window ring. A ring of ~200 pixels rarely has a full-rank covariance at 200 bands, so it
/// is ridged with δ = 1e-3·trace(Σ)/B (plus 1e-12 for a flat ring).
pub fn local_rx(cube: &Cube, window: DualWindow, threads: usize) -> Result<Vec<f32>, HsiError> {
    window.validate()?;
    let data = normalised(cube)?;
    let (rows, cols, bands) = (cube.rows(), cube.cols(), cube.bands());
    per_pixel(rows, cols, threads, |row, col| {
        let ring = window.ring_spectra(&data, (rows, cols, bands), row, col);
        let mut accumulator = CovarianceAccumulator::new(bands, Par::Seq);
        accumulator.add(&ring)?;
        let mut covariance = accumulator.covariance(0.0)?;
        let trace: f64 = (0..bands).map(|b| covariance[(b, b)]).sum();
        let ridge = 1e-3 * trace / bands as f64 + 1e-12;
        for b in 0..bands {
            covariance[(b, b)] += ridge;
        }
        let background =
            Background::new(accumulator.mean().to_vec(), covariance.as_ref(), Par::Seq)?;
        let start = (row * cols + col) * bands;
        Ok(background.score(&data[start..start + bands])?[0])
    })
}

/// Collaborative-representation detector (Li & Du 2015): the residual norm of the pixel
/// represented by its ring, `α = (XᵀX + λΓ²)⁻¹Xᵀy` with `Γ = diag(‖y − xᵢ‖)`, so ring pixels
/// unlike the centre cost more to use.
pub fn crd(
    cube: &Cube,
    window: DualWindow,
    lambda: f64,
    threads: usize,
) -> Result<Vec<f32>, HsiError> {
    window.validate()?;
    if !(lambda > 0.0 && lambda.is_finite()) {
        return Err(HsiError::Detector(format!(
            "CRD's λ must be positive, got {lambda}"
        )));
    }
    let data = normalised(cube)?;
    let (rows, cols, bands) = (cube.rows(), cube.cols(), cube.bands());
    per_pixel(rows, cols, threads, |row, col| {
        let ring = window.ring_spectra(&data, (rows, cols, bands), row, col);
        let ring: Vec<f64> = ring.iter().map(|&v| f64::from(v)).collect();
        let k = ring.len() / bands;
        let ring = MatRef::from_column_major_slice(&ring, bands, k);
        let start = (row * cols + col) * bands;
        let centre: Vec<f64> = data[start..start + bands]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let centre = MatRef::from_column_major_slice(&centre, bands, 1);
        let mut gram = ring.transpose() * ring;
        for i in 0..k {
            let distance_sq: f64 = (0..bands)
                .map(|b| (centre[(b, 0)] - ring[(b, i)]).powi(2))
                .sum();
            gram[(i, i)] += lambda * distance_sq;
        }
        let rhs = ring.transpose() * centre;
        let alpha = solve_spd(gram, rhs.as_ref())?;
        let residual = centre - ring * &alpha;
        Ok(residual.col(0).iter().map(|v| v * v).sum::<f64>().sqrt() as f32)
    })
}

/// Solves a symmetric positive (semi)definite system; a ring pixel equal to the centre makes the
/// system only semidefinite, which a trace-relative jitter of 1e-10 repairs.
fn solve_spd(mut matrix: Mat<f64>, rhs: MatRef<'_, f64>) -> Result<Mat<f64>, HsiError> {
    if let Ok(factor) = matrix.llt(Side::Lower) {
        return Ok(factor.solve(rhs));
    }
    let n = matrix.nrows();
    let trace: f64 = (0..n).map(|i| matrix[(i, i)]).sum();
    let jitter = 1e-10 * trace / n as f64 + 1e-300;
    for i in 0..n {
        matrix[(i, i)] += jitter;
    }
    matrix
        .llt(Side::Lower)
        .map(|factor| factor.solve(rhs))
        .map_err(|e| HsiError::Detector(format!("CRD's system is not positive definite: {e:?}")))
}

/// SLRX as the FERD authors' `Supp_Exp/utils/SLRX.py` computes it: the product of three
/// min–maxed Mahalanobis distances (square-rooted, covariance + 1e-6·I) of each pixel against
/// its own b×b block, against the union of the up to 8 blocks around it, and against the scene;
/// b = ⌊H / block_num⌋, and leftover rows and columns join the last block.
pub fn slrx(cube: &Cube, block_num: usize) -> Result<Vec<f32>, HsiError> {
    const RIDGE: f64 = 1e-6;
    let data = normalised(cube)?;
    let (rows, cols, bands) = (cube.rows(), cube.cols(), cube.bands());
    let block = rows / block_num.max(1);
    if block_num == 0 || block < 2 || cols < block {
        return Err(HsiError::Detector(format!(
            "SLRX with block_num {block_num} on a {rows}×{cols} cube leaves blocks of {block} pixels (need ≥ 2)"
        )));
    }
    let (block_rows, block_cols) = (rows / block, cols / block);
    let block_of = |r: usize, c: usize| {
        (
            (r / block).min(block_rows - 1),
            (c / block).min(block_cols - 1),
        )
    };

    // Per-block statistics, then unions by merging them.
    let mut blocks = vec![CovarianceAccumulator::new(bands, Par::Seq); block_rows * block_cols];
    // Each block's spectra, and which pixels they are, in the same order.
    let mut members: Vec<Vec<f32>> = vec![Vec::new(); block_rows * block_cols];
    let mut member_pixels: Vec<Vec<usize>> = vec![Vec::new(); block_rows * block_cols];
    for r in 0..rows {
        for c in 0..cols {
            let (i, j) = block_of(r, c);
            let pixel = r * cols + c;
            members[i * block_cols + j]
                .extend_from_slice(&data[pixel * bands..(pixel + 1) * bands]);
            member_pixels[i * block_cols + j].push(pixel);
        }
    }
    for (accumulator, spectra) in blocks.iter_mut().zip(&members) {
        accumulator.add(spectra)?;
    }
    let ridged = |accumulator: &CovarianceAccumulator| -> Result<Background, HsiError> {
        let covariance = accumulator.covariance(RIDGE)?;
        Background::new(accumulator.mean().to_vec(), covariance.as_ref(), Par::Seq)
    };
    let mut global = CovarianceAccumulator::new(bands, Par::Seq);
    global.add(&data)?;
    let global = ridged(&global)?;

    let mut own = vec![0.0f32; rows * cols];
    let mut neighbours = vec![0.0f32; rows * cols];
    let mut scratch = Vec::new();
    for i in 0..block_rows {
        for j in 0..block_cols {
            let own_background = ridged(&blocks[i * block_cols + j])?;
            let mut union = CovarianceAccumulator::new(bands, Par::Seq);
            for di in -1i64..=1 {
                for dj in -1i64..=1 {
                    let (ni, nj) = (i as i64 + di, j as i64 + dj);
                    if (di, dj) != (0, 0)
                        && ni >= 0
                        && nj >= 0
                        && (ni as usize) < block_rows
                        && (nj as usize) < block_cols
                    {
                        union.merge(&blocks[ni as usize * block_cols + nj as usize])?;
                    }
                }
            }
            let union_background = ridged(&union)?;
            // Score the block's own pixels against both.
            let spectra = &members[i * block_cols + j];
            scratch.resize(spectra.len() / bands, 0.0);
            let pixels = &member_pixels[i * block_cols + j];
            own_background.score_into(spectra, &mut scratch)?;
            for (&pixel, score) in pixels.iter().zip(&scratch) {
                own[pixel] = score.max(0.0).sqrt();
            }
            union_background.score_into(spectra, &mut scratch)?;
            for (&pixel, score) in pixels.iter().zip(&scratch) {
                neighbours[pixel] = score.max(0.0).sqrt();
            }
        }
    }
    let global: Vec<f32> = global
        .score(&data)?
        .iter()
        .map(|s| s.max(0.0).sqrt())
        .collect();
    let (own, neighbours, global) = (min_max(&own), min_max(&neighbours), min_max(&global));
    Ok(own
        .iter()
        .zip(&neighbours)
        .zip(&global)
        .map(|((a, b), c)| a * b * c)
        .collect())
}

/// Min–max to [0, 1]; a constant map becomes zeros.
pub fn min_max(scores: &[f32]) -> Vec<f32> {
    let (min, max) = scores
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = max - min;
    scores
        .iter()
        .map(|&v| if range > 0.0 { (v - min) / range } else { 0.0 })
        .collect()
}
