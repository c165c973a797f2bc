//! Hand-blocked AVX-512 kernels for RX's two O(N·B²) products: the float64 scatter `Σ xxᵀ`
//! of many spectra, and the float32 whitened norms `‖W·(x − μ)‖²`.
//!
//! Both have a shape general-purpose products handle poorly: a few hundred bands on each side
//! of the output and thousands of pixels in the inner dimension. faer reached about 40 GFLOPS
//! of a core's ~80 (float64) on the scatter, and its float32 triangular solve about 45 of
//! ~160. These kernels keep a 24×8 (scatter) or 48×8 (whitening) tile of the output in
//! registers across a whole block of pixels and read the inputs from panels packed once per
//! block, which runs both near the core's FMA peak.
//!
//! Only x86-64 with AVX-512F and FMA has them; [`Isa::detect`] says whether this CPU does.
//! Everywhere else the callers keep faer's products, so results never depend on the kernels
//! being present, only their speed.

/// Which implementation of the kernels this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The AVX-512 kernels of this module.
    Avx512,
    /// faer's general products (any CPU).
    Portable,
}

impl Isa {
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
        }
        Isa::Portable
    }
}

/// Bands per scatter panel: one 512-bit vector of f64.
const GRAM_LANES: usize = 8;
/// Pixels per packed scatter block: three row panels and one column panel of 128 pixels take
/// 32 KiB, inside a 48 KiB L1 data cache.
const GRAM_BLOCK: usize = 128;
/// Below this many spectra the scatter's fixed B² costs (zeroing, correcting, merging)
/// outweigh the product and faer's is as good.
pub(crate) const GRAM_MIN_SPECTRA: usize = 64;

/// The scatter of a batch of spectra about its own mean.
#[derive(Debug)]
pub(crate) struct BatchScatter {
    pub(crate) count: usize,
    pub(crate) mean: Vec<f64>,
    /// `Σ (x − c)(x − c)ᵀ` about the shift, column-major in chunks of 8 rows, leading
    /// dimension `ld`; only the lower triangle (row ≥ column) is valid.
    about_shift: Vec<[f64; GRAM_LANES]>,
    ld: usize,
    /// `x̄ − c`.
    offset: Vec<f64>,
}

impl BatchScatter {
    /// Element (i, j) of the scatter about the batch mean, for i ≥ j: the correction from
    /// the shift is applied here, in the one pass the caller makes anyway.
    pub(crate) fn lower(&self, i: usize, j: usize) -> f64 {
        let at = j * self.ld + i;
        let raw = self.about_shift[at / GRAM_LANES][at % GRAM_LANES];
        raw - self.count as f64 * self.offset[i] * self.offset[j]
    }
}

/// `Σ (x − x̄)(x − x̄)ᵀ` and `x̄` of `spectra` (BIP, `bands` each) in float64, or `None` where
/// the CPU lacks the kernel or the batch is too small to gain from it.
///
/// The products are taken about a shift `c` (the mean of the first block) rather than the
/// batch mean, so the data is read once: `Σ (x − x̄)(x − x̄)ᵀ = Σ (x − c)(x − c)ᵀ − k·ddᵀ`
/// with `d = x̄ − c`. Because `c` is a mean of the same scene, `d` is small against the spread
/// and the subtraction cancels nothing that float64 cannot hold.
pub(crate) fn batch_scatter(isa: Isa, spectra: &[f32], bands: usize) -> Option<BatchScatter> {
    if bands == 0 || !spectra.len().is_multiple_of(bands) {
        return None;
    }
    let count = spectra.len() / bands;
    if count < GRAM_MIN_SPECTRA {
        return None;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `Isa::Avx512` is only constructed by `Isa::detect` after it saw both
            // features at run time (or by tests that check the same).
            Some(unsafe { avx512::batch_scatter(spectra, bands, count) })
        }
        _ => None,
    }
}

/// Rows per whitening panel: one 512-bit vector of f32.
const WHITEN_LANES: usize = 16;
/// Row panels per whitening group (48 rows), with [`WHITEN_PIXELS`] pixels: 24 accumulators.
const WHITEN_GROUP: usize = 3;
/// Pixels per whitening tile.
const WHITEN_PIXELS: usize = 8;
/// Pixels centred and transposed at a time before whitening.
const WHITEN_BLOCK: usize = 64;

/// A whitening matrix `W` (rows × bands) packed for [`Whitener::squared_norms`]: for each group
/// of 48 rows, column by column, the group's 48 values.
#[derive(Debug, Clone)]
pub(crate) struct Whitener {
    isa: Isa,
    bands: usize,
    /// Per group: (row panels in it, columns stored, offset into `packed` in panels of 16).
    groups: Vec<(usize, usize, usize)>,
    packed: Vec<[f32; WHITEN_LANES]>,
    mean: Vec<f32>,
}

impl Whitener {
    /// Packs `w(row, band)` for `rows` rows. When `lower_triangular`, entries right of the
    /// diagonal are taken as zero and skipped, which halves the work for a Cholesky inverse.
    /// `None` where the CPU lacks the kernel.
    pub(crate) fn new(
        isa: Isa,
        mean: &[f64],
        rows: usize,
        lower_triangular: bool,
        w: impl Fn(usize, usize) -> f64,
    ) -> Option<Whitener> {
        if isa != Isa::Avx512 || mean.is_empty() {
            return None;
        }
        let bands = mean.len();
        let panels = rows.div_ceil(WHITEN_LANES);
        let mut groups = Vec::new();
        let mut packed = Vec::new();
        let mut first = 0;
        while first < panels {
            let in_group = (panels - first).min(WHITEN_GROUP);
            let columns = if lower_triangular {
                ((first + in_group) * WHITEN_LANES).min(bands)
            } else {
                bands
            };
            groups.push((in_group, columns, packed.len()));
            for column in 0..columns {
                for panel in first..first + in_group {
                    packed.push(std::array::from_fn(|lane| {
                        let row = panel * WHITEN_LANES + lane;
                        let zero = row >= rows || (lower_triangular && column > row);
                        if zero { 0.0 } else { w(row, column) as f32 }
                    }));
                }
            }
            first += in_group;
        }
        Some(Whitener {
            isa,
            bands,
            groups,
            packed,
            mean: mean.iter().map(|&m| m as f32).collect(),
        })
    }

    /// `‖W·(x − μ)‖²` of every spectrum in `spectra` (BIP), into `scores`. The caller has
    /// checked that `scores` has one slot per spectrum.
    pub(crate) fn squared_norms(&self, spectra: &[f32], scores: &mut [f32]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: a `Whitener` is only built for `Isa::Avx512`, which `Isa::detect`
                // returns only after seeing AVX-512F and FMA at run time.
                unsafe { avx512::squared_norms(self, spectra, scores) }
            }
            _ => {}
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{
        BatchScatter, GRAM_BLOCK, GRAM_LANES, WHITEN_BLOCK, WHITEN_LANES, WHITEN_PIXELS, Whitener,
    };

    type Panel = [f64; GRAM_LANES];

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn batch_scatter(spectra: &[f32], bands: usize, count: usize) -> BatchScatter {
        let panels = bands.div_ceil(GRAM_LANES);
        let ld = panels * GRAM_LANES;
        let stride = count.min(GRAM_BLOCK);
        let shift = {
            let first = &spectra[..stride * bands];
            let mut sum = vec![0.0f64; bands];
            for spectrum in first.chunks_exact(bands) {
                for (s, &x) in sum.iter_mut().zip(spectrum) {
                    *s += f64::from(x);
                }
            }
            sum.iter().map(|s| s / stride as f64).collect::<Vec<f64>>()
        };
        let mut sums = vec![[0.0f64; GRAM_LANES]; panels];
        let mut packed = vec![[0.0f64; GRAM_LANES]; panels * stride];
        let mut lower = vec![[0.0f64; GRAM_LANES]; ld * panels];
        for block in spectra.chunks(stride * bands) {
            let k = block.len() / bands;
            pack(block, bands, &shift, stride, &mut packed, &mut sums);
            gram_block(&packed, panels, stride, k, &mut lower);
        }
        let n = count as f64;
        let offset: Vec<f64> = sums.iter().flatten().take(bands).map(|s| s / n).collect();
        let mean = shift.iter().zip(&offset).map(|(c, d)| c + d).collect();
        BatchScatter {
            count,
            mean,
            about_shift: lower,
            ld,
            offset,
        }
    }

    /// Centres `block` (≤ `stride` spectra) by `shift` into float64 panels of 8 bands, panel
    /// after panel (`packed[q·stride + p]`), padding past `bands` and past the last spectrum
    /// with zeros; adds the centred values to `sums`. Panel by panel, so the writes stream
    /// rather than land 26 panels apart in the same cache sets.
    #[target_feature(enable = "avx512f,fma")]
    fn pack(
        block: &[f32],
        bands: usize,
        shift: &[f64],
        stride: usize,
        packed: &mut [Panel],
        sums: &mut [Panel],
    ) {
        let k = block.len() / bands;
        for (q, (panel, sum)) in packed.chunks_exact_mut(stride).zip(sums).enumerate() {
            let lo = q * GRAM_LANES;
            let width = (bands - lo).min(GRAM_LANES);
            let mut c = [0.0f64; GRAM_LANES];
            c[..width].copy_from_slice(&shift[lo..lo + width]);
            let mut s = *sum;
            for (dst, spectrum) in panel.iter_mut().zip(block.chunks_exact(bands)) {
                let x = &spectrum[lo..lo + width];
                if let Ok(x) = <&[f32; GRAM_LANES]>::try_from(x) {
                    for l in 0..GRAM_LANES {
                        dst[l] = f64::from(x[l]) - c[l];
                    }
                } else {
                    *dst = [0.0; GRAM_LANES];
                    for (l, &v) in x.iter().enumerate() {
                        dst[l] = f64::from(v) - c[l];
                    }
                }
                for l in 0..GRAM_LANES {
                    s[l] += dst[l];
                }
            }
            *sum = s;
            for dst in &mut panel[k..] {
                *dst = [0.0; GRAM_LANES];
            }
        }
    }

    /// Adds the lower triangle of the packed block's Gram matrix to `lower` (column-major,
    /// leading dimension `panels·8`, stored as 8-row chunks). Row panels go three at a time;
    /// a column panel meets only the row panels at or below it.
    #[target_feature(enable = "avx512f,fma")]
    fn gram_block(packed: &[Panel], panels: usize, stride: usize, k: usize, lower: &mut [Panel]) {
        let panel = |q: usize| &packed[q * stride..q * stride + k];
        let mut group = 0;
        while group < panels {
            let end = (group + 3).min(panels);
            for column in 0..end {
                let first = column.max(group);
                let at = column * GRAM_LANES * panels + first;
                match end - first {
                    3 => tile::<3>(
                        [panel(first), panel(first + 1), panel(first + 2)],
                        panel(column),
                        lower,
                        at,
                        panels,
                    ),
                    2 => tile::<2>(
                        [panel(first), panel(first + 1)],
                        panel(column),
                        lower,
                        at,
                        panels,
                    ),
                    _ => tile::<1>([panel(first)], panel(column), lower, at, panels),
                }
            }
            group = end;
        }
    }

    /// `R` row panels × one column panel of `Σ_p a_p·b_pᵀ`, accumulated in 8·R registers over
    /// the whole block, then added to `out` (column c of the tile starts at chunk `at + c·ld`).
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    fn tile<const R: usize>(
        rows: [&[Panel]; R],
        column: &[Panel],
        out: &mut [Panel],
        at: usize,
        ld_panels: usize,
    ) {
        let mut acc = [[_mm512_setzero_pd(); GRAM_LANES]; R];
        for (p, b) in column.iter().enumerate() {
            // SAFETY: each load reads one whole `[f64; 8]` through a reference to it.
            let a: [__m512d; R] =
                std::array::from_fn(|r| unsafe { _mm512_loadu_pd(rows[r][p].as_ptr()) });
            for c in 0..GRAM_LANES {
                let bc = _mm512_set1_pd(b[c]);
                for r in 0..R {
                    acc[r][c] = _mm512_fmadd_pd(a[r], bc, acc[r][c]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (c, &value) in acc.iter().enumerate() {
                let dst = &mut out[at + c * ld_panels + r];
                // SAFETY: the load and the store touch exactly the `[f64; 8]` `dst` refers to.
                unsafe {
                    let sum = _mm512_add_pd(_mm512_loadu_pd(dst.as_ptr()), value);
                    _mm512_storeu_pd(dst.as_mut_ptr(), sum);
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn squared_norms(whitener: &Whitener, spectra: &[f32], scores: &mut [f32]) {
        let bands = whitener.bands;
        let mut centred = vec![0.0f32; WHITEN_BLOCK * bands];
        for (block, out) in spectra
            .chunks(WHITEN_BLOCK * bands)
            .zip(scores.chunks_mut(WHITEN_BLOCK))
        {
            let k = block.len() / bands;
            let tiles = k.div_ceil(WHITEN_PIXELS);
            for (dst, spectrum) in centred
                .chunks_exact_mut(bands)
                .zip(block.chunks_exact(bands))
            {
                for ((d, x), m) in dst.iter_mut().zip(spectrum).zip(&whitener.mean) {
                    *d = x - m;
                }
            }
            // Zero spectra pad the last tile; their scores are dropped.
            centred[k * bands..tiles * WHITEN_PIXELS * bands].fill(0.0);
            let mut sums = [_mm512_setzero_ps(); WHITEN_BLOCK];
            for &(in_group, columns, offset) in &whitener.groups {
                let w = &whitener.packed[offset..offset + columns * in_group];
                for (t, tile) in centred
                    .chunks_exact(WHITEN_PIXELS * bands)
                    .take(tiles)
                    .enumerate()
                {
                    let spectra: [&[f32]; WHITEN_PIXELS] =
                        std::array::from_fn(|p| &tile[p * bands..p * bands + columns]);
                    let squares = match in_group {
                        3 => whiten::<3>(w, spectra),
                        2 => whiten::<2>(w, spectra),
                        _ => whiten::<1>(w, spectra),
                    };
                    for (sum, square) in sums[t * WHITEN_PIXELS..].iter_mut().zip(squares) {
                        *sum = _mm512_add_ps(*sum, square);
                    }
                }
            }
            for (score, sum) in out.iter_mut().zip(&sums) {
                *score = _mm512_reduce_add_ps(*sum);
            }
        }
    }

    /// `R` row panels of `W·x` for 8 centred spectra, squared per spectrum (16 lanes each,
    /// summed by the caller). Each band's 8 values are broadcast straight from the spectra.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    fn whiten<const R: usize>(
        w: &[[f32; WHITEN_LANES]],
        spectra: [&[f32]; WHITEN_PIXELS],
    ) -> [__m512; WHITEN_PIXELS] {
        let columns = w.len() / R;
        let spectra = spectra.map(|s| &s[..columns]);
        let mut acc = [[_mm512_setzero_ps(); WHITEN_PIXELS]; R];
        for (j, wj) in w.chunks_exact(R).enumerate() {
            // SAFETY: each load reads one whole `[f32; 16]` through a reference to it.
            let a: [__m512; R] =
                std::array::from_fn(|r| unsafe { _mm512_loadu_ps(wj[r].as_ptr()) });
            for p in 0..WHITEN_PIXELS {
                let x = _mm512_set1_ps(spectra[p][j]);
                for r in 0..R {
                    acc[r][p] = _mm512_fmadd_ps(a[r], x, acc[r][p]);
                }
            }
        }
        let mut squares = [_mm512_setzero_ps(); WHITEN_PIXELS];
        for acc in &acc {
            for (square, &y) in squares.iter_mut().zip(acc) {
                *square = _mm512_fmadd_ps(y, y, *square);
            }
        }
        squares
    }
}
