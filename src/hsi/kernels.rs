//! Hand-blocked AVX-512 kernels for RX's two O(N·B²) products: the float64 scatter `Σ xxᵀ`
//! of many spectra, and the float32 whitening `y = L⁻¹·(x − μ)` with its squared norm.
//!
//! Both have a shape general-purpose products handle poorly: a few hundred bands on each side
//! of the output and thousands of pixels in the inner dimension. faer reached about 40 GFLOPS
//! of a core's ~80 (float64) on the scatter, and its float32 triangular solve about 45 of
//! ~160. These kernels keep a 24×8 (scatter) or 48×8 (whitening) tile of the output in
//! registers across a whole block of pixels and read the inputs from panels packed once per
//! block. The whitening is a forward substitution recast as products (see [`Whitener`]), so it
//! needs neither a per-spectrum solve nor an explicit inverse.
//!
//! Only x86-64 with AVX-512F and FMA has them; [`Isa::detect`] says whether this CPU does.
//! Everywhere else the callers keep faer's products, so results never depend on the kernels
//! being present, only their speed.

use faer::MatRef;

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

/// The scatter of a batch of spectra about its own mean. Its buffers are kept between
/// batches: a stream reduces a line at a time, and fresh half-megabyte buffers each time cost
/// page faults on the order of the product.
#[derive(Debug, Default)]
pub(crate) struct BatchScatter {
    pub(crate) count: usize,
    pub(crate) mean: Vec<f64>,
    /// `Σ (x − c)(x − c)ᵀ` about the shift, column-major in chunks of 8 rows, leading
    /// dimension `ld`; only the lower triangle (row ≥ column) is valid.
    about_shift: Vec<[f64; GRAM_LANES]>,
    ld: usize,
    /// `x̄ − c`.
    offset: Vec<f64>,
    /// Scratch: the block of spectra being multiplied, packed in panels of 8 bands.
    packed: Vec<[f64; GRAM_LANES]>,
}

impl BatchScatter {
    /// Element (i, j) of the scatter about the batch mean, for i ≥ j: the correction from
    /// the shift is applied here, in the one pass the caller makes anyway.
    pub(crate) fn lower(&self, i: usize, j: usize) -> f64 {
        let at = j * self.ld + i;
        let raw = self.about_shift[at / GRAM_LANES][at % GRAM_LANES];
        raw - self.count as f64 * self.offset[i] * self.offset[j]
    }

    /// `Σ (x − x̄)(x − x̄)ᵀ` and `x̄` of `spectra` (BIP, `bands` each) in float64, replacing
    /// what this held; false (and nothing usable) where the CPU lacks the kernel or the batch
    /// is too small to gain from it.
    ///
    /// The products are taken about a shift `c` (the mean of the first block) rather than the
    /// batch mean, so the data is read once: `Σ (x − x̄)(x − x̄)ᵀ = Σ (x − c)(x − c)ᵀ − k·ddᵀ`
    /// with `d = x̄ − c`. Because `c` is a mean of the same scene, `d` is small against the
    /// spread and the subtraction cancels nothing that float64 cannot hold.
    pub(crate) fn reduce(&mut self, isa: Isa, spectra: &[f32], bands: usize) -> bool {
        if bands == 0 || !spectra.len().is_multiple_of(bands) {
            return false;
        }
        let count = spectra.len() / bands;
        if count < GRAM_MIN_SPECTRA {
            return false;
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: `Isa::Avx512` is only constructed by `Isa::detect` after it saw both
                // features at run time (or by tests that check the same).
                unsafe { avx512::batch_scatter(self, spectra, bands, count) };
                true
            }
            _ => false,
        }
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

/// Rows per whitening group: the block size of the forward substitution.
const WHITEN_GROUP_ROWS: usize = WHITEN_LANES * WHITEN_GROUP;

/// Whitening by `y = L⁻¹·(x − μ)` for a Cholesky factor `L`, without forming `L⁻¹`: a forward
/// substitution in blocks of 48 rows, each a product the kernel runs near the core's peak.
///
/// With `D_g` the g-th diagonal block of `L` and `L_g<` the blocks left of it,
/// `y_g = D_g⁻¹·x_g − (D_g⁻¹·L_g<)·y_<g`. Group g of the packed matrix is
/// `M_g = [−D_g⁻¹·L_g< | D_g⁻¹]`, and each group's outputs overwrite its inputs before the
/// next group reads them, so `y` costs the B²/2 multiply-adds per spectrum of a triangular
/// solve. Setting `M` up costs about B·48²/2 — a tenth of inverting `L` at 200 bands — so it
/// pays from the first spectrum, where an explicit inverse pays only past several hundred.
#[derive(Debug, Clone)]
pub(crate) struct Whitener {
    bands: usize,
    groups: Vec<WhitenGroup>,
    /// Per group, column by column, the group's 48 rows of `M` (zero past the last band).
    packed: Vec<[f32; WHITEN_LANES]>,
    mean: Vec<f32>,
}

/// One group of up to three 16-row panels of `M`.
#[derive(Debug, Clone, Copy)]
struct WhitenGroup {
    first_panel: usize,
    panels: usize,
    /// Columns stored: those up to the end of the group's diagonal block.
    columns: usize,
    /// Where the group starts in `packed`, in panels of 16.
    offset: usize,
}

impl Whitener {
    /// Sets up whitening against `mean` and the Cholesky factor `lower` (B×B; only its lower
    /// triangle is read). `None` where the CPU lacks the kernel.
    pub(crate) fn forward_substitution(
        isa: Isa,
        mean: &[f64],
        lower: MatRef<'_, f64>,
    ) -> Option<Whitener> {
        let bands = mean.len();
        if isa != Isa::Avx512 || bands == 0 || lower.nrows() != bands || lower.ncols() != bands {
            return None;
        }
        let columns: Vec<&[f64]> = (0..bands)
            .map(|j| lower.col(j).try_as_col_major().map(|c| c.as_slice()))
            .collect::<Option<_>>()?;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `Isa::Avx512` is only constructed after AVX-512F and FMA were detected.
            let (groups, packed) = unsafe { avx512::forward_blocks(&columns) };
            Some(Whitener {
                bands,
                groups,
                packed,
                mean: mean.iter().map(|&m| m as f32).collect(),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = columns;
            None
        }
    }

    /// `‖L⁻¹·(x − μ)‖²` of every spectrum in `spectra` (BIP), into `scores`. The caller has
    /// checked that `scores` has one slot per spectrum.
    pub(crate) fn squared_norms(&self, spectra: &[f32], scores: &mut [f32]) {
        // SAFETY: a `Whitener` is only built for `Isa::Avx512`, which `Isa::detect` returns
        // only after seeing AVX-512F and FMA at run time.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::squared_norms(self, spectra, scores)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (spectra, scores);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{
        BatchScatter, GRAM_BLOCK, GRAM_LANES, WHITEN_BLOCK, WHITEN_GROUP_ROWS, WHITEN_LANES,
        WHITEN_PIXELS, WhitenGroup, Whitener,
    };

    type Panel = [f64; GRAM_LANES];

    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn batch_scatter(
        out: &mut BatchScatter,
        spectra: &[f32],
        bands: usize,
        count: usize,
    ) {
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
        // `pack` writes every panel it hands `gram_block`, padding included.
        out.packed.resize(panels * stride, [0.0; GRAM_LANES]);
        out.about_shift.clear();
        out.about_shift.resize(ld * panels, [0.0; GRAM_LANES]);
        for block in spectra.chunks(stride * bands) {
            let k = block.len() / bands;
            pack(block, bands, &shift, stride, &mut out.packed, &mut sums);
            gram_block(&out.packed, panels, stride, k, &mut out.about_shift);
        }
        let n = count as f64;
        out.offset.clear();
        out.offset
            .extend(sums.iter().flatten().take(bands).map(|s| s / n));
        out.mean.clear();
        out.mean
            .extend(shift.iter().zip(&out.offset).map(|(c, d)| c + d));
        out.count = count;
        out.ld = ld;
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
            // Centred and transposed per tile of 8 spectra (band-major, `[band·8 + pixel]`),
            // so the kernel broadcasts a band's 8 values from one place.
            for (p, spectrum) in block.chunks_exact(bands).enumerate() {
                let tile = &mut centred[(p / WHITEN_PIXELS) * WHITEN_PIXELS * bands..];
                let lane = p % WHITEN_PIXELS;
                for (j, (x, m)) in spectrum.iter().zip(&whitener.mean).enumerate() {
                    tile[j * WHITEN_PIXELS + lane] = x - m;
                }
            }
            // Zero spectra pad the last tile; their scores are dropped.
            if !k.is_multiple_of(WHITEN_PIXELS) {
                let last =
                    &mut centred[(tiles - 1) * WHITEN_PIXELS * bands..][..WHITEN_PIXELS * bands];
                for band in last.chunks_exact_mut(WHITEN_PIXELS) {
                    band[k % WHITEN_PIXELS..].fill(0.0);
                }
            }
            let mut sums = [_mm512_setzero_ps(); WHITEN_BLOCK];
            for group in &whitener.groups {
                let w = &whitener.packed[group.offset..group.offset + group.columns * group.panels];
                for t in 0..tiles {
                    let tile = &mut centred[t * WHITEN_PIXELS * bands..][..WHITEN_PIXELS * bands];
                    let sums = &mut sums[t * WHITEN_PIXELS..][..WHITEN_PIXELS];
                    match group.panels {
                        3 => whiten_tile::<3>(whitener, group, w, tile, sums),
                        2 => whiten_tile::<2>(whitener, group, w, tile, sums),
                        _ => whiten_tile::<1>(whitener, group, w, tile, sums),
                    }
                }
            }
            for (score, sum) in out.iter_mut().zip(&sums) {
                *score = _mm512_reduce_add_ps(*sum);
            }
        }
    }

    /// `M = [−D_g⁻¹·L_g< | D_g⁻¹]` for each 48-row block of the lower-triangular matrix whose
    /// columns are `lower`, packed for [`squared_norms`]. A block's columns are solved
    /// together, row by row of `D_g`, so the long axis of each update is the independent
    /// columns rather than a chain of dependent divisions.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn forward_blocks(lower: &[&[f64]]) -> (Vec<WhitenGroup>, Vec<[f32; WHITEN_LANES]>) {
        let bands = lower.len();
        let mut groups = Vec::new();
        let mut packed = Vec::new();
        // Row-major `48 × end`: [−L_g< | I], solved in place to `M_g`.
        let mut rows = Vec::new();
        let mut start = 0;
        while start < bands {
            let end = (start + WHITEN_GROUP_ROWS).min(bands);
            let height = end - start;
            rows.clear();
            rows.resize(WHITEN_GROUP_ROWS * end, 0.0f64);
            for (k, row) in rows.chunks_exact_mut(end).take(height).enumerate() {
                for (z, column) in row[..start].iter_mut().zip(lower) {
                    *z = -column[start + k];
                }
                row[start + k] = 1.0;
            }
            for k in 0..height {
                let (solved, below) = rows[k * end..(height * end)].split_at_mut(end);
                let pivot = &lower[start + k][start + k..end];
                let scale = 1.0 / pivot[0];
                solved.iter_mut().for_each(|z| *z *= scale);
                for (row, &l) in below.chunks_exact_mut(end).zip(&pivot[1..]) {
                    for (z, &y) in row.iter_mut().zip(&*solved) {
                        *z -= l * y;
                    }
                }
            }
            let panels = height.div_ceil(WHITEN_LANES);
            groups.push(WhitenGroup {
                first_panel: start / WHITEN_LANES,
                panels,
                columns: end,
                offset: packed.len(),
            });
            // Rows past `height` are the zero padding of the last panel.
            for column in 0..end {
                for panel in 0..panels {
                    packed.push(std::array::from_fn(|lane| {
                        rows[(panel * WHITEN_LANES + lane) * end + column] as f32
                    }));
                }
            }
            start = end;
        }
        (groups, packed)
    }

    /// One group's `R` panels for one tile of 8 spectra (band-major): their squares added to
    /// `sums`, and written back over the inputs for the groups after it.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    fn whiten_tile<const R: usize>(
        whitener: &Whitener,
        group: &WhitenGroup,
        w: &[[f32; WHITEN_LANES]],
        tile: &mut [f32],
        sums: &mut [__m512],
    ) {
        let rows = whiten::<R>(w, &tile[..group.columns * WHITEN_PIXELS]);
        for (r, panel) in rows.iter().enumerate() {
            for (sum, &y) in sums.iter_mut().zip(panel) {
                *sum = _mm512_fmadd_ps(y, y, *sum);
            }
            let first = (group.first_panel + r) * WHITEN_LANES;
            let valid = (whitener.bands - first).min(WHITEN_LANES);
            store_rows(&mut tile[first * WHITEN_PIXELS..], valid, panel);
        }
    }

    /// Writes one 16-row panel of outputs (one vector per spectrum) over the panel's rows of a
    /// band-major tile; lanes past `valid` are the padding rows and are dropped.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    fn store_rows(rows: &mut [f32], valid: usize, panel: &[__m512; WHITEN_PIXELS]) {
        let mut lanes = [[0.0f32; WHITEN_LANES]; WHITEN_PIXELS];
        for (lane, &y) in lanes.iter_mut().zip(panel) {
            // SAFETY: the store writes exactly the 16 floats of `lane`.
            unsafe { _mm512_storeu_ps(lane.as_mut_ptr(), y) };
        }
        for (row, band) in rows.chunks_exact_mut(WHITEN_PIXELS).take(valid).enumerate() {
            for (value, lane) in band.iter_mut().zip(&lanes) {
                *value = lane[row];
            }
        }
    }

    /// `R` row panels of `M_g·x` for a band-major tile of 8 centred spectra (16 rows per vector,
    /// one vector per spectrum). Each band's 8 values are broadcast from one cache line.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    fn whiten<const R: usize>(
        w: &[[f32; WHITEN_LANES]],
        tile: &[f32],
    ) -> [[__m512; WHITEN_PIXELS]; R] {
        let mut acc = [[_mm512_setzero_ps(); WHITEN_PIXELS]; R];
        let (bands, _) = tile.as_chunks::<WHITEN_PIXELS>();
        for (wj, xj) in w.chunks_exact(R).zip(bands) {
            // SAFETY: each load reads one whole `[f32; 16]` through a reference to it.
            let a: [__m512; R] =
                std::array::from_fn(|r| unsafe { _mm512_loadu_ps(wj[r].as_ptr()) });
            for (p, &x) in xj.iter().enumerate() {
                let x = _mm512_set1_ps(x);
                for r in 0..R {
                    acc[r][p] = _mm512_fmadd_ps(a[r], x, acc[r][p]);
                }
            }
        }
        acc
    }
}
