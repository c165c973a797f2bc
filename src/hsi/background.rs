//! Background statistics — mean and covariance of "normal" spectra — and the squared Mahalanobis
//! distance to them, the quantity every RX-family detector scores.
//!
//! Precision is split by where it matters. ABU scenes have covariance condition numbers near
//! 1e9, so a float32 covariance loses the smallest eigen-directions (beach-1's AUC falls from
//! 0.9807 to 0.9638): the covariance and its factorisation are float64. Once the covariance is
//! factored, whitening spectra with the factor loses only ~1e-6 relative in float32, which leaves
//! every ABU AUC unchanged to 1e-5, so the O(N·B²) whitening runs in float32.
//!
//! The inverse follows the Moore–Penrose pseudo-inverse with NumPy's `rcond = 1e-15` that the
//! FERS code uses. When the covariance is safely positive definite the pseudo-inverse *is* the
//! inverse, and a Cholesky factor `Σ = L·Lᵀ` gives `d² = ‖y‖²` with `L·y = x − μ`, a triangular
//! solve (half the flops of a dense product). A singular or nearly singular covariance (fewer
//! pixels than bands, duplicated bands) takes the eigendecomposition path instead, which drops
//! the directions below the cut-off exactly as `pinv` does.

use std::sync::OnceLock;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::{Accum, Mat, MatRef, Par, Side};

use super::HsiError;
use super::kernels::{self, Isa, Whitener};

/// `pinv`'s relative cut-off on eigenvalues, as NumPy's default and the FERS code have it.
pub const PINV_RCOND: f64 = 1e-15;

/// A Cholesky pivot smaller than this fraction of the largest variance sends the covariance to
/// the eigendecomposition path. The smallest pivot bounds the smallest eigenvalue from above, so
/// 1e-13 keeps 100× margin over `PINV_RCOND`'s region while ABU scenes (≥ 2e-10) stay on the
/// fast path.
const CHOLESKY_MIN_PIVOT: f64 = 1e-13;

/// Spectra per worker below which splitting a batch costs more than it saves.
const MIN_SPECTRA_PER_WORKER: usize = 256;

/// Workers a `Par` asks for.
fn workers(par: Par) -> usize {
    match par {
        Par::Seq => 1,
        Par::Rayon(n) => n.get(),
    }
}

/// A batch of spectra reduced by [`CovarianceAccumulator::reduce`], not yet merged.
#[derive(Debug, Default)]
pub struct BatchStatistics {
    bands: usize,
    parts: Vec<BatchPart>,
}

/// One worker's share of a batch.
#[derive(Debug)]
enum BatchPart {
    Scatter(kernels::BatchScatter),
    Accumulated(CovarianceAccumulator),
}

impl Default for BatchPart {
    fn default() -> BatchPart {
        BatchPart::Scatter(kernels::BatchScatter::default())
    }
}

/// Running sums for a mean and covariance, merged batch by batch with Chan et al.'s pairwise
/// update, which stays accurate where the textbook `Σx·xᵀ − n·μ·μᵀ` cancels catastrophically.
#[derive(Debug, Clone)]
pub struct CovarianceAccumulator {
    bands: usize,
    count: usize,
    mean: Vec<f64>,
    /// Σ (x − μ)(x − μ)ᵀ, lower triangle valid.
    scatter: Mat<f64>,
    par: Par,
    isa: Isa,
}

impl CovarianceAccumulator {
    pub fn new(bands: usize, par: Par) -> CovarianceAccumulator {
        CovarianceAccumulator {
            bands,
            count: 0,
            mean: vec![0.0; bands],
            scatter: Mat::zeros(bands, bands),
            par,
            isa: Isa::detect(),
        }
    }

    /// The same accumulator on a chosen kernel implementation, so tests can hold the
    /// AVX-512 kernels to faer's products on one machine.
    #[cfg(test)]
    pub(crate) fn with_isa(mut self, isa: Isa) -> CovarianceAccumulator {
        self.isa = isa;
        self
    }

    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Spectra accumulated so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds a batch of spectra, BIP (`len = k·bands`): a rank-k update of the scatter matrix.
    pub fn add(&mut self, spectra: &[f32]) -> Result<(), HsiError> {
        let batch = self.reduce(spectra)?;
        self.merge_batch(&batch)
    }

    /// A batch's count, mean and scatter, reduced apart from this accumulator's sums, to be
    /// merged by [`merge_batch`](Self::merge_batch).
    pub fn reduce(&self, spectra: &[f32]) -> Result<BatchStatistics, HsiError> {
        let mut batch = BatchStatistics::default();
        self.reducer().reduce_into(spectra, &mut batch)?;
        Ok(batch)
    }

    /// What reducing a batch for this accumulator needs of it — band count, kernels, workers —
    /// and nothing of its sums, so a stream can reduce its next line while it merges and
    /// scores the previous one.
    pub fn reducer(&self) -> Reducer {
        Reducer {
            bands: self.bands,
            par: self.par,
            isa: self.isa,
        }
    }

    /// Adds a batch [`reduce`](Self::reduce) or a [`Reducer`] made; an O(B²) merge.
    pub fn merge_batch(&mut self, batch: &BatchStatistics) -> Result<(), HsiError> {
        if batch.bands != self.bands {
            return Err(HsiError::Detector(format!(
                "cannot merge a {}-band batch into {}-band statistics",
                batch.bands, self.bands
            )));
        }
        for part in &batch.parts {
            match part {
                BatchPart::Scatter(scatter) => {
                    self.merge_scatter(scatter.count, &scatter.mean, |i, j| scatter.lower(i, j))
                }
                BatchPart::Accumulated(part) => self.merge(part)?,
            }
        }
        Ok(())
    }

    /// A fresh accumulator holding `spectra` (whole spectra, as [`Reducer::reduce_into`], the
    /// one caller, has checked), by faer's product: for CPUs without the AVX-512 kernel and
    /// batches too small for it.
    fn of_spectra_portable(bands: usize, isa: Isa, spectra: &[f32]) -> CovarianceAccumulator {
        let mut accumulator = CovarianceAccumulator::new(bands, Par::Seq);
        accumulator.isa = isa;
        let k = spectra.len() / bands;
        if k == 0 {
            return accumulator;
        }
        let mean = mean_of(spectra, bands);
        // The batch's own scatter about its own mean, as a B×k matrix times its transpose.
        let centred = centred_f64(spectra, bands, &mean);
        let centred = MatRef::from_column_major_slice(&centred, bands, k);
        matmul(
            accumulator.scatter.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            centred,
            BlockStructure::Rectangular,
            centred.transpose(),
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
        accumulator.mean = mean;
        accumulator.count = k;
        accumulator
    }

    /// Adds everything another accumulator holds, as if its spectra had been added here.
    pub fn merge(&mut self, other: &CovarianceAccumulator) -> Result<(), HsiError> {
        if other.bands != self.bands {
            return Err(HsiError::Detector(format!(
                "cannot merge {}-band statistics into {}-band ones",
                other.bands, self.bands
            )));
        }
        self.merge_scatter(other.count, &other.mean, |i, j| other.scatter[(i, j)]);
        Ok(())
    }

    /// Chan et al.'s merge of `count` spectra with mean `mean` and scatter (lower triangle)
    /// `scatter(i, j)`, i ≥ j.
    fn merge_scatter(&mut self, count: usize, mean: &[f64], scatter: impl Fn(usize, usize) -> f64) {
        if count == 0 {
            return;
        }
        let n = self.count as f64;
        let k = count as f64;
        let weight = n * k / (n + k);
        let delta: Vec<f64> = mean.iter().zip(&self.mean).map(|(o, m)| o - m).collect();
        for j in 0..self.bands {
            let dj = delta[j] * weight;
            let mut column = self.scatter.col_mut(j);
            for i in j..self.bands {
                column[i] += scatter(i, j) + delta[i] * dj;
            }
        }
        for (m, o) in self.mean.iter_mut().zip(mean) {
            *m += (o - *m) * k / (n + k);
        }
        self.count += count;
    }

    /// Mean of everything added.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Unbiased covariance (divided by `n − 1`) of everything added, plus `ridge` on the
    /// diagonal. Needs at least two spectra.
    pub fn covariance(&self, ridge: f64) -> Result<Mat<f64>, HsiError> {
        let mut covariance = Mat::<f64>::zeros(self.bands, self.bands);
        self.write_lower_covariance(&mut covariance, ridge)?;
        for j in 0..self.bands {
            for i in 0..j {
                covariance[(i, j)] = covariance[(j, i)];
            }
        }
        Ok(covariance)
    }

    /// The lower triangle of the covariance (plus `ridge`) into `target`, column by column —
    /// contiguous in faer's column-major storage; the rest of `target` is left as it is.
    fn write_lower_covariance(&self, target: &mut Mat<f64>, ridge: f64) -> Result<(), HsiError> {
        if self.count < 2 {
            return Err(HsiError::Detector(format!(
                "a covariance needs at least 2 spectra, {} were given",
                self.count
            )));
        }
        let scale = 1.0 / (self.count as f64 - 1.0);
        for j in 0..self.bands {
            let source = self.scatter.col(j);
            let mut column = target.col_mut(j);
            for i in j..self.bands {
                column[i] = source[i] * scale;
            }
            column[j] += ridge;
        }
        Ok(())
    }

    /// Mean and unbiased covariance of everything added, factored for scoring.
    pub fn background(&self) -> Result<Background, HsiError> {
        self.refactor(None)
    }

    /// [`background`](Self::background), factored in the storage of `previous` where it has
    /// a Cholesky factor of the right size: a stream refactors every line, and a fresh B×B
    /// matrix each time costs page faults comparable to the factorisation itself.
    pub fn refactor(&self, previous: Option<Background>) -> Result<Background, HsiError> {
        let bands = self.bands;
        let mut lower = match previous.map(|b| b.whitening) {
            Some(Whitening::Cholesky { lower, .. })
                if lower.nrows() == bands && lower.ncols() == bands =>
            {
                lower
            }
            _ => Mat::zeros(bands, bands),
        };
        self.write_lower_covariance(&mut lower, 0.0)?;
        let mut background =
            Background::factor_lower(self.mean.clone(), lower, self.par, || self.covariance(0.0))?;
        background.isa = self.isa;
        Ok(background)
    }
}

/// Reduces batches of spectra for a [`CovarianceAccumulator`]; see
/// [`CovarianceAccumulator::reducer`].
#[derive(Debug, Clone, Copy)]
pub struct Reducer {
    bands: usize,
    par: Par,
    isa: Isa,
}

impl Reducer {
    /// A batch's count, mean and scatter into the buffers of an earlier batch, which it
    /// replaces. With more than one worker the batch is cut into one slice per worker, each
    /// reduced to its own (mean, scatter) on one core: faer's own threading gains little on
    /// these tall-and-thin products.
    pub fn reduce_into(
        &self,
        spectra: &[f32],
        batch: &mut BatchStatistics,
    ) -> Result<(), HsiError> {
        if !spectra.len().is_multiple_of(self.bands) {
            return Err(HsiError::Detector(format!(
                "a batch of {} values is not a whole number of {}-band spectra",
                spectra.len(),
                self.bands
            )));
        }
        batch.bands = self.bands;
        let workers = workers(self.par);
        let count = spectra.len() / self.bands;
        if workers > 1 && count >= 2 * MIN_SPECTRA_PER_WORKER {
            use rayon::prelude::*;
            let per_worker = count.div_ceil(workers);
            let chunks = spectra.par_chunks(per_worker * self.bands);
            batch.parts.resize_with(chunks.len(), BatchPart::default);
            chunks
                .zip(batch.parts.par_iter_mut())
                .for_each(|(chunk, part)| self.reduce_part(chunk, part));
        } else {
            batch.parts.resize_with(1, BatchPart::default);
            self.reduce_part(spectra, &mut batch.parts[0]);
        }
        Ok(())
    }

    /// One core's share of a batch: the AVX-512 kernel's scatter where it runs, else faer's.
    fn reduce_part(&self, spectra: &[f32], part: &mut BatchPart) {
        if !matches!(part, BatchPart::Scatter(_)) {
            *part = BatchPart::default();
        }
        if let BatchPart::Scatter(scatter) = part
            && scatter.reduce(self.isa, spectra, self.bands)
        {
            return;
        }
        *part = BatchPart::Accumulated(CovarianceAccumulator::of_spectra_portable(
            self.bands, self.isa, spectra,
        ));
    }
}

/// What the background looks like, ready to score spectra against.
#[derive(Debug, Clone)]
pub struct Background {
    mean: Vec<f64>,
    whitening: Whitening,
    par: Par,
    isa: Isa,
}

#[derive(Debug, Clone)]
enum Whitening {
    /// The Cholesky factor `L` (lower triangular, B×B); spectra are whitened by solving
    /// `L·y = x − μ` in float32: by the AVX-512 kernel's blocked forward substitution, set up
    /// on first use, where the CPU has it, and by faer's triangular solve elsewhere.
    Cholesky {
        lower: Mat<f64>,
        lower32: OnceLock<Mat<f32>>,
        whitener: OnceLock<Option<Whitener>>,
    },
    /// Eigenvectors kept by the pinv cut-off as rows (r×B), and their reciprocal eigenvalues.
    Eigen {
        basis: Mat<f32>,
        inverse_eigenvalues: Vec<f32>,
    },
}

impl Background {
    /// Factors `covariance` (B×B, symmetric; only its lower triangle is read).
    pub fn new(
        mean: Vec<f64>,
        covariance: MatRef<'_, f64>,
        par: Par,
    ) -> Result<Background, HsiError> {
        let bands = mean.len();
        if covariance.nrows() != bands || covariance.ncols() != bands {
            return Err(HsiError::Detector(format!(
                "a {}×{} covariance does not match a {bands}-band mean",
                covariance.nrows(),
                covariance.ncols()
            )));
        }
        let lower = Mat::from_fn(
            bands,
            bands,
            |i, j| if i >= j { covariance[(i, j)] } else { 0.0 },
        );
        Background::factor_lower(mean, lower, par, || Ok(covariance.to_owned()))
    }

    /// Factors the covariance whose lower triangle is `lower` (above it: zeros), in place.
    /// `covariance` rebuilds the whole matrix for the eigendecomposition where Cholesky fails.
    fn factor_lower(
        mean: Vec<f64>,
        mut lower: Mat<f64>,
        par: Par,
        covariance: impl FnOnce() -> Result<Mat<f64>, HsiError>,
    ) -> Result<Background, HsiError> {
        let bands = mean.len();
        let finite = (0..bands).all(|j| {
            let column = lower.col(j);
            (j..bands).fold(true, |ok, i| ok & column[i].is_finite())
        });
        if !finite {
            return Err(HsiError::Detector("the covariance is not finite".into()));
        }
        let largest_variance = (0..bands).map(|i| lower[(i, i)]).fold(0.0, f64::max);
        if largest_variance <= 0.0 {
            return Err(HsiError::Detector(
                "every band is constant: the background has no variance to measure against".into(),
            ));
        }
        let whitening = if cholesky_in_place(&mut lower, largest_variance) {
            Whitening::Cholesky {
                lower,
                lower32: OnceLock::new(),
                whitener: OnceLock::new(),
            }
        } else {
            eigen_whitening(covariance()?.as_ref())?
        };
        Ok(Background {
            mean,
            whitening,
            par,
            isa: Isa::detect(),
        })
    }

    pub fn bands(&self) -> usize {
        self.mean.len()
    }

    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Rank of the (pseudo-)inverted covariance: the χ² degrees of freedom of the scores.
    pub fn rank(&self) -> usize {
        self.pseudo_inverse_rank().unwrap_or(self.bands())
    }

    /// Whether the covariance was singular enough to need the pseudo-inverse; the rank kept.
    pub fn pseudo_inverse_rank(&self) -> Option<usize> {
        match &self.whitening {
            Whitening::Cholesky { .. } => None,
            Whitening::Eigen { basis, .. } => Some(basis.nrows()),
        }
    }

    /// Squared Mahalanobis distance `(x − μ)ᵀ Σ⁺ (x − μ)` of every spectrum in `spectra` (BIP),
    /// written to `scores` (one per spectrum); split across workers like
    /// [`CovarianceAccumulator::add`].
    pub fn score_into(&self, spectra: &[f32], scores: &mut [f32]) -> Result<(), HsiError> {
        let bands = self.bands();
        let count = spectra.len() / bands;
        if !spectra.len().is_multiple_of(bands) || scores.len() != count {
            return Err(HsiError::Detector(format!(
                "{} values are not {} spectra of {bands} bands",
                spectra.len(),
                scores.len()
            )));
        }
        if count == 0 {
            return Ok(());
        }
        if let Whitening::Cholesky {
            lower, whitener, ..
        } = &self.whitening
            && let Some(whitener) = whitener.get_or_init(|| {
                Whitener::forward_substitution(self.isa, &self.mean, lower.as_ref())
            })
        {
            return self.split(spectra, scores, |chunk, out| {
                whitener.squared_norms(chunk, out);
                Ok(())
            });
        }
        self.split(spectra, scores, |chunk, out| {
            self.score_sequential(chunk, out)
        })
    }

    /// Runs `score` over `spectra` and `scores` in one slice per worker.
    fn split(
        &self,
        spectra: &[f32],
        scores: &mut [f32],
        score: impl Fn(&[f32], &mut [f32]) -> Result<(), HsiError> + Sync,
    ) -> Result<(), HsiError> {
        let bands = self.bands();
        let count = scores.len();
        let workers = workers(self.par);
        if workers > 1 && count >= 2 * MIN_SPECTRA_PER_WORKER {
            use rayon::prelude::*;
            let per_worker = count.div_ceil(workers);
            return spectra
                .par_chunks(per_worker * bands)
                .zip(scores.par_chunks_mut(per_worker))
                .try_for_each(|(chunk, out)| score(chunk, out));
        }
        score(spectra, scores)
    }

    fn score_sequential(&self, spectra: &[f32], scores: &mut [f32]) -> Result<(), HsiError> {
        let bands = self.bands();
        let count = scores.len();
        let mean32: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
        let mut centred = Vec::with_capacity(spectra.len());
        for spectrum in spectra.chunks_exact(bands) {
            centred.extend(spectrum.iter().zip(&mean32).map(|(x, m)| x - m));
        }
        match &self.whitening {
            Whitening::Cholesky { lower, lower32, .. } => {
                let lower32 = lower32.get_or_init(|| {
                    Mat::from_fn(bands, bands, |i, j| {
                        if i >= j { lower[(i, j)] as f32 } else { 0.0 }
                    })
                });
                faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                    lower32.as_ref(),
                    faer::MatMut::from_column_major_slice_mut(&mut centred, bands, count),
                    Par::Seq,
                );
                for (score, whitened) in scores.iter_mut().zip(centred.chunks_exact(bands)) {
                    *score = sum_of_squares(whitened);
                }
            }
            Whitening::Eigen {
                basis,
                inverse_eigenvalues,
            } => {
                let centred = MatRef::from_column_major_slice(&centred, bands, count);
                let mut projected = Mat::<f32>::zeros(basis.nrows(), count);
                matmul(
                    projected.as_mut(),
                    BlockStructure::Rectangular,
                    Accum::Replace,
                    basis.as_ref(),
                    BlockStructure::Rectangular,
                    centred,
                    BlockStructure::Rectangular,
                    1.0,
                    Par::Seq,
                );
                for (score, column) in scores.iter_mut().zip(projected.col_iter()) {
                    *score = column
                        .iter()
                        .zip(inverse_eigenvalues)
                        .map(|(v, w)| v * v * w)
                        .sum();
                }
            }
        }
        Ok(())
    }

    /// [`score_into`](Self::score_into) into a new vector.
    pub fn score(&self, spectra: &[f32]) -> Result<Vec<f32>, HsiError> {
        let mut scores = vec![0.0; spectra.len() / self.bands().max(1)];
        self.score_into(spectra, &mut scores)?;
        Ok(scores)
    }
}

/// Replaces the lower triangle of `lower` by its Cholesky factor; false where the covariance
/// is not safely positive definite (the matrix is then scratch).
fn cholesky_in_place(lower: &mut Mat<f64>, largest_variance: f64) -> bool {
    use faer::linalg::cholesky::llt::factor;
    let bands = lower.nrows();
    // On one thread: at a few hundred bands faer's default (the global thread pool) spends
    // more on hand-offs than it saves, and a stream factors once per line.
    let mut memory = MemBuffer::new(factor::cholesky_in_place_scratch::<f64>(
        bands,
        Par::Seq,
        Default::default(),
    ));
    if factor::cholesky_in_place(
        lower.as_mut(),
        Default::default(),
        Par::Seq,
        MemStack::new(&mut memory),
        Default::default(),
    )
    .is_err()
    {
        return false;
    }
    let smallest_pivot = (0..bands)
        .map(|i| lower[(i, i)] * lower[(i, i)])
        .fold(f64::INFINITY, f64::min);
    smallest_pivot >= CHOLESKY_MIN_PIVOT * largest_variance
}

fn eigen_whitening(covariance: MatRef<'_, f64>) -> Result<Whitening, HsiError> {
    let bands = covariance.nrows();
    let decomposition = covariance.self_adjoint_eigen(Side::Lower).map_err(|e| {
        HsiError::Detector(format!("the covariance eigendecomposition failed: {e:?}"))
    })?;
    let values = decomposition.S().column_vector();
    let vectors = decomposition.U();
    let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let cutoff = PINV_RCOND * largest;
    // pinv keeps every eigenvalue whose magnitude clears the cut-off, negative round-off included.
    let kept: Vec<usize> = (0..bands).filter(|&k| values[k].abs() > cutoff).collect();
    let basis = Mat::from_fn(kept.len(), bands, |r, b| vectors[(b, kept[r])] as f32);
    let inverse_eigenvalues = kept.iter().map(|&k| (1.0 / values[k]) as f32).collect();
    Ok(Whitening::Eigen {
        basis,
        inverse_eigenvalues,
    })
}

/// `Σ v²` in 16 independent partial sums, which vectorise where one running sum cannot.
fn sum_of_squares(values: &[f32]) -> f32 {
    let (chunks, tail) = values.as_chunks::<16>();
    let mut partial = [0.0f32; 16];
    for chunk in chunks {
        for (p, v) in partial.iter_mut().zip(chunk) {
            *p += v * v;
        }
    }
    partial.iter().sum::<f32>() + tail.iter().map(|v| v * v).sum::<f32>()
}

fn mean_of(spectra: &[f32], bands: usize) -> Vec<f64> {
    let mut sum = vec![0.0f64; bands];
    let mut count = 0usize;
    for spectrum in spectra.chunks_exact(bands) {
        for (s, &x) in sum.iter_mut().zip(spectrum) {
            *s += f64::from(x);
        }
        count += 1;
    }
    let n = count.max(1) as f64;
    sum.iter_mut().for_each(|s| *s /= n);
    sum
}

fn centred_f64(spectra: &[f32], bands: usize, mean: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(spectra.len());
    for spectrum in spectra.chunks_exact(bands) {
        out.extend(spectrum.iter().zip(mean).map(|(&x, m)| f64::from(x) - m));
    }
    out
}

/// Global RX: every pixel's squared Mahalanobis distance to the whole scene's statistics.
pub fn global_rx(cube: &super::Cube, par: Par) -> Result<Vec<f32>, HsiError> {
    let mut accumulator = CovarianceAccumulator::new(cube.bands(), par);
    accumulator.add(cube.data())?;
    // A value that is not finite makes the covariance not finite, and `background` refuses
    // it; only then is the cube searched, for an error that names the pixel. Searching first
    // cost every scene a serial pass over the cube.
    let background = match accumulator.background() {
        Ok(background) => background,
        Err(err) => {
            cube.check_finite()?;
            return Err(err);
        }
    };
    background.score(cube.data())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hsi::Cube;

    /// A deterministic cube: a few mixed "materials" plus noise, so the covariance is full rank
    /// but far from white.
    pub(crate) fn mixed_cube(rows: usize, cols: usize, bands: usize, seed: u64) -> Cube {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let materials: Vec<Vec<f64>> = (0..3)
            .map(|_| (0..bands).map(|_| 100.0 + 900.0 * uniform()).collect())
            .collect();
        let mut data = Vec::with_capacity(rows * cols * bands);
        for _ in 0..rows * cols {
            let weights: Vec<f64> = (0..3).map(|_| uniform()).collect();
            let total: f64 = weights.iter().sum();
            for b in 0..bands {
                let mixed: f64 = weights
                    .iter()
                    .zip(&materials)
                    .map(|(w, m)| w / total * m[b])
                    .sum();
                data.push((mixed + 20.0 * (uniform() - 0.5)) as f32);
            }
        }
        Cube::from_bip(rows, cols, bands, data).unwrap()
    }

    /// (x − μ)ᵀ Σ⁻¹ (x − μ) by Gauss–Jordan in f64: slow, obvious, independent of faer.
    fn naive_rx(cube: &Cube) -> Vec<f64> {
        let (n, b) = (cube.pixels(), cube.bands());
        let x: Vec<f64> = cube.data().iter().map(|&v| f64::from(v)).collect();
        let mut mean = vec![0.0; b];
        for p in 0..n {
            for k in 0..b {
                mean[k] += x[p * b + k] / n as f64;
            }
        }
        let mut inverse = vec![vec![0.0; 2 * b]; b];
        for i in 0..b {
            for j in 0..b {
                inverse[i][j] = (0..n)
                    .map(|p| (x[p * b + i] - mean[i]) * (x[p * b + j] - mean[j]))
                    .sum::<f64>()
                    / (n as f64 - 1.0);
            }
            inverse[i][b + i] = 1.0;
        }
        for col in 0..b {
            let pivot = (col..b)
                .max_by(|&r, &s| inverse[r][col].abs().total_cmp(&inverse[s][col].abs()))
                .unwrap();
            inverse.swap(col, pivot);
            let d = inverse[col][col];
            inverse[col].iter_mut().for_each(|v| *v /= d);
            for row in 0..b {
                if row != col {
                    let f = inverse[row][col];
                    let pivot_row = inverse[col].clone();
                    inverse[row]
                        .iter_mut()
                        .zip(&pivot_row)
                        .for_each(|(v, p)| *v -= f * p);
                }
            }
        }
        (0..n)
            .map(|p| {
                let d: Vec<f64> = (0..b).map(|k| x[p * b + k] - mean[k]).collect();
                (0..b)
                    .map(|i| (0..b).map(|j| d[i] * inverse[i][b + j] * d[j]).sum::<f64>())
                    .sum()
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64], relative: f64) {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() <= relative * scale,
                "pixel {i}: {g} against {w}"
            );
        }
    }

    #[test]
    fn global_rx_matches_a_naive_inverse() {
        let cube = mixed_cube(9, 7, 6, 1);
        let scores = global_rx(&cube, Par::Seq).unwrap();
        assert_close(&scores, &naive_rx(&cube), 1e-5);
        // The sample mean of squared Mahalanobis distances is B·(N−1)/N exactly.
        let mean: f64 = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / 63.0;
        assert!((mean - 6.0 * 62.0 / 63.0).abs() < 1e-4, "{mean}");
    }

    #[test]
    fn batches_and_merges_give_the_statistics_of_the_whole() {
        let cube = mixed_cube(8, 8, 5, 2);
        let bands = cube.bands();
        let mut whole = CovarianceAccumulator::new(bands, Par::Seq);
        whole.add(cube.data()).unwrap();
        let mut lines = CovarianceAccumulator::new(bands, Par::Seq);
        let mut merged = CovarianceAccumulator::new(bands, Par::Seq);
        for row in 0..cube.rows() {
            lines.add(cube.line(row)).unwrap();
            let mut one = CovarianceAccumulator::new(bands, Par::Seq);
            one.add(cube.line(row)).unwrap();
            merged.merge(&one).unwrap();
        }
        let reference = whole.covariance(0.0).unwrap();
        for other in [&lines, &merged] {
            let covariance = other.covariance(0.0).unwrap();
            for i in 0..bands {
                for j in 0..bands {
                    assert!(
                        (covariance[(i, j)] - reference[(i, j)]).abs() < 1e-9 * reference[(i, i)]
                    );
                }
            }
        }
    }

    /// Removes `band` from every spectrum.
    fn without_band(cube: &Cube, band: usize) -> Cube {
        let data = cube
            .data()
            .chunks_exact(cube.bands())
            .flat_map(|s| {
                s.iter()
                    .enumerate()
                    .filter(|(b, _)| *b != band)
                    .map(|(_, v)| *v)
            })
            .collect();
        Cube::from_bip(cube.rows(), cube.cols(), cube.bands() - 1, data).unwrap()
    }

    /// Replaces band `band` of every spectrum by `f(spectrum)`.
    fn with_band(cube: &Cube, band: usize, f: impl Fn(&[f32]) -> f32) -> Cube {
        let mut data = cube.data().to_vec();
        for spectrum in data.chunks_exact_mut(cube.bands()) {
            spectrum[band] = f(spectrum);
        }
        Cube::from_bip(cube.rows(), cube.cols(), cube.bands(), data).unwrap()
    }

    #[test]
    fn singular_covariances_take_the_pseudo_inverse() {
        // A band that repeats another or carries nothing (constant) makes Σ singular; the
        // pseudo-inverse then scores exactly as if the band were absent.
        let cube = mixed_cube(10, 9, 6, 3);
        let reference = global_rx(&without_band(&cube, 5), Par::Seq).unwrap();
        let reference: Vec<f64> = reference.iter().map(|&v| f64::from(v)).collect();
        for singular in [with_band(&cube, 5, |s| s[1]), with_band(&cube, 5, |_| 7.0)] {
            let mut accumulator = CovarianceAccumulator::new(6, Par::Seq);
            accumulator.add(singular.data()).unwrap();
            let background = accumulator.background().unwrap();
            assert_eq!(background.pseudo_inverse_rank(), Some(5));
            assert_close(
                &background.score(singular.data()).unwrap(),
                &reference,
                1e-3,
            );
        }
    }

    #[test]
    fn the_avx512_kernels_agree_with_faer() {
        if Isa::detect() != Isa::Avx512 {
            eprintln!("no AVX-512 on this CPU: only faer's products run here");
            return;
        }
        // 37 bands leave partial panels on both kernels; 1 600 pixels are past the inverse
        // whitening threshold and span many scatter blocks.
        let cube = mixed_cube(40, 40, 37, 7);
        let bands = cube.bands();
        for par in [Par::Seq, Par::rayon(2)] {
            let mut fast = CovarianceAccumulator::new(bands, par).with_isa(Isa::Avx512);
            let mut slow = CovarianceAccumulator::new(bands, par).with_isa(Isa::Portable);
            fast.add(cube.data()).unwrap();
            slow.add(cube.data()).unwrap();
            let (a, b) = (fast.covariance(0.0).unwrap(), slow.covariance(0.0).unwrap());
            for i in 0..bands {
                assert!((fast.mean()[i] - slow.mean()[i]).abs() < 1e-9 * slow.mean()[i].abs());
                for j in 0..bands {
                    assert!((a[(i, j)] - b[(i, j)]).abs() < 1e-9 * (b[(i, i)] * b[(j, j)]).sqrt());
                }
            }
            let fast = fast.background().unwrap().score(cube.data()).unwrap();
            let slow = slow.background().unwrap().score(cube.data()).unwrap();
            let slow: Vec<f64> = slow.iter().map(|&v| f64::from(v)).collect();
            assert_close(&fast, &slow, 1e-5);
        }
    }

    #[test]
    fn the_blocked_forward_substitution_equals_a_triangular_solve() {
        if Isa::detect() != Isa::Avx512 {
            eprintln!("no AVX-512 on this CPU: only faer's solve runs here");
            return;
        }
        // 101 bands: two full 48-row blocks that feed the third, a part-filled panel of 5;
        // 203 pixels leave a part-filled tile of 8. Lines of one spectrum, and of many.
        let cube = mixed_cube(7, 29, 101, 12);
        let bands = cube.bands();
        let mut accumulator = CovarianceAccumulator::new(bands, Par::Seq);
        accumulator.add(cube.data()).unwrap();
        let fast = accumulator.background().unwrap();
        let mut slow = fast.clone();
        slow.isa = Isa::Portable;
        for spectra in [cube.data(), &cube.data()[..bands], cube.line(3)] {
            let want: Vec<f64> = slow
                .score(spectra)
                .unwrap()
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            assert_close(&fast.score(spectra).unwrap(), &want, 1e-4);
        }
    }

    #[test]
    fn degenerate_backgrounds_are_errors() {
        let flat = Cube::from_bip(3, 3, 4, vec![5.0; 36]).unwrap();
        let message = global_rx(&flat, Par::Seq).unwrap_err().to_string();
        assert!(message.contains("constant"), "{message}");
        let one = Cube::from_bip(1, 1, 4, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let message = global_rx(&one, Par::Seq).unwrap_err().to_string();
        assert!(message.contains("at least 2 spectra"), "{message}");
        let mut data = mixed_cube(4, 4, 3, 4).data().to_vec();
        data[3 * 5 + 2] = f32::NAN;
        let nan = Cube::from_bip(4, 4, 3, data).unwrap();
        let message = global_rx(&nan, Par::Seq).unwrap_err().to_string();
        assert!(
            message.contains("band 2") && message.contains("row 1, col 1"),
            "{message}"
        );
        let mut accumulator = CovarianceAccumulator::new(3, Par::Seq);
        assert!(accumulator.add(&[1.0; 4]).is_err());
        assert_eq!(accumulator.count(), 0);
    }
}
