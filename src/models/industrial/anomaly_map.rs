//! The ISSTAD anomaly map and image score, computed from the model's two per-pixel outputs the
//! way the paper's code does (xjspin/ISSTAD `main_mvtec_ad_step2.py`):
//!
//! - P (`probabilities`): the mean over the decoder's heads of the anomaly-class probability;
//! - R (`reconstruction_error`): the per-pixel mean over RGB of (reconstruction − input)²;
//! - pixel map = G₄(P ⊙ minmax(R) · 255);
//! - image score = mean over pixels of G₄(G₄(P) ⊙ G₄(R)).
//!
//! G_σ is [`GaussianBlur`], equal to `scipy.ndimage.gaussian_filter(x, sigma)` with its defaults
//! (`mode='reflect'`, `truncate=4.0`). `tests/fixtures/isstad` holds the scipy reference written by
//! `scripts/reference/isstad_map_fixture.py`.
//!
//! The pixel map keeps the paper's ×255: it costs nothing (one factor in the min–max scale), and
//! keeping the paper's units lets thresholds and maps be compared with its published figures.
//! Thresholds are fitted on validation data in these same units.
//!
//! Maps are square (S×S, S = 224 for ISSTAD), row-major. [`AnomalyMapper`] holds its scratch
//! buffers, so once it has seen one frame of a given side it computes further frames without
//! allocating.

use serde::Deserialize;

/// scipy's default `truncate`: the kernel reaches out to this many standard deviations.
const TRUNCATE: f64 = 4.0;
/// Largest σ accepted: beyond it the kernel (8σ + 1 taps) would cost more than it could mean on
/// a 224-pixel map, and an absurd value from a profile must not allocate without bound.
pub const MAX_SIGMA: f32 = 256.0;
/// The paper scales the min–max normalised product to 0..255 (8-bit image units).
const PAPER_SCALE: f64 = 255.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnomalyMapError {
    #[error("Gaussian sigma {sigma} is not a finite number in (0, {MAX_SIGMA}]")]
    InvalidSigma { sigma: f32 },
    #[error("top-k fraction {fraction} is not a number in (0, 1]")]
    InvalidTopKFraction { fraction: f32 },
    #[error("map side {side} is not usable: it must be at least 1 and side² must fit in memory")]
    InvalidSide { side: usize },
    #[error("{buffer} holds {got} values, expected {expected} for a {side}×{side} map")]
    BufferLength {
        buffer: &'static str,
        side: usize,
        expected: usize,
        got: usize,
    },
    #[error("{buffer}[{index}] (row {row}, column {column}) is {value}, not a finite number")]
    NonFinite {
        buffer: &'static str,
        index: usize,
        row: usize,
        column: usize,
        value: f32,
    },
}

/// How one frame's anomaly map becomes one number, chosen per profile.
///
/// In a profile (TOML): `image_score = "mean"`, `image_score = "max"` or
/// `image_score = { top_k_mean = { fraction = 0.01 } }`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageScore {
    /// The paper's score: mean over pixels of G(G(P) ⊙ G(R)). Large defects win; a tiny one on a
    /// clean part barely moves it.
    #[default]
    Mean,
    /// The largest value of the pixel map: most sensitive to small defects, and to noise.
    Max,
    /// The mean of the highest `fraction` of the pixel map (at least one pixel): a small defect
    /// counts fully once it covers that fraction, a single hot pixel does not.
    TopKMean { fraction: f32 },
}

impl ImageScore {
    /// Refuses a top-k fraction outside (0, 1].
    pub fn validate(self) -> Result<Self, AnomalyMapError> {
        match self {
            ImageScore::TopKMean { fraction } if !(fraction > 0.0 && fraction <= 1.0) => {
                Err(AnomalyMapError::InvalidTopKFraction { fraction })
            }
            _ => Ok(self),
        }
    }
}

/// `scipy.ndimage.gaussian_filter(x, sigma)` on a square f32 image: separable, `mode='reflect'`
/// (half-sample symmetric, `d c b a | a b c d | d c b a`, folded again when the kernel is wider
/// than the image), `truncate=4.0`, so radius ⌊4σ + 0.5⌋ and 2·radius + 1 taps.
///
/// Accumulates in f32: every ISSTAD input is non-negative, so the 33 products of one tap sum
/// carry no cancellation and the result stays within a few f32 ulps of scipy's float64.
#[derive(Debug, Clone)]
pub struct GaussianBlur {
    sigma: f32,
    radius: usize,
    weights: Vec<f32>,
    /// One row with `radius` reflected values on each side, so the horizontal pass is a plain
    /// sliding dot product.
    padded_row: Vec<f32>,
    /// The vertical pass's output, input to the horizontal pass.
    between_passes: Vec<f32>,
}

impl GaussianBlur {
    pub fn new(sigma: f32) -> Result<Self, AnomalyMapError> {
        if !(sigma > 0.0 && sigma <= MAX_SIGMA) {
            return Err(AnomalyMapError::InvalidSigma { sigma });
        }
        let sd = f64::from(sigma);
        // scipy: radius = int(truncate * sd + 0.5); a non-negative value, so `as` truncates the
        // same way Python's int() does.
        let radius = (TRUNCATE * sd + 0.5) as usize;
        // Weights in f64 like scipy's `_gaussian_kernel1d`, normalised there, then rounded once.
        let raw: Vec<f64> = (0..=2 * radius)
            .map(|i| {
                let x = i as f64 - radius as f64;
                (-0.5 / (sd * sd) * x * x).exp()
            })
            .collect();
        let total: f64 = raw.iter().sum();
        let weights = raw.iter().map(|w| (w / total) as f32).collect();
        Ok(Self {
            sigma,
            radius,
            weights,
            padded_row: Vec::new(),
            between_passes: Vec::new(),
        })
    }

    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// Taps on each side of the centre.
    pub fn radius(&self) -> usize {
        self.radius
    }

    /// The 2·radius + 1 normalised weights, centre in the middle.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Blurs the `side`×`side` image `input` into `out`.
    pub fn apply(
        &mut self,
        input: &[f32],
        side: usize,
        out: &mut [f32],
    ) -> Result<(), AnomalyMapError> {
        let pixels = pixel_count(side)?;
        check_len("input", input, side, pixels)?;
        check_len("output", out, side, pixels)?;
        check_finite("input", input, side)?;
        self.blur(input, side, out);
        Ok(())
    }

    /// The blur itself, for lengths already checked.
    fn blur(&mut self, input: &[f32], side: usize, out: &mut [f32]) {
        let r = self.radius;
        self.between_passes.resize(side * side, 0.0);
        self.padded_row.resize(side + 2 * r, 0.0);

        // Axis 0 first, as scipy does, so the two roundings happen in the same order. Whole rows
        // are scaled and added, a loop the compiler vectorises.
        for (y, acc) in self.between_passes.chunks_exact_mut(side).enumerate() {
            acc.fill(0.0);
            for (k, &w) in self.weights.iter().enumerate() {
                let src_y = reflect(y as isize + k as isize - r as isize, side);
                let src = &input[src_y * side..(src_y + 1) * side];
                for (a, &s) in acc.iter_mut().zip(src) {
                    *a += w * s;
                }
            }
        }

        // Axis 1: pad each row by reflection, then slide the kernel along it.
        for (row, dst) in self
            .between_passes
            .chunks_exact(side)
            .zip(out.chunks_exact_mut(side))
        {
            for (i, slot) in self.padded_row.iter_mut().enumerate() {
                *slot = row[reflect(i as isize - r as isize, side)];
            }
            dst.fill(0.0);
            for (k, &w) in self.weights.iter().enumerate() {
                for (d, &s) in dst.iter_mut().zip(&self.padded_row[k..k + side]) {
                    *d += w * s;
                }
            }
        }
    }
}

/// scipy's `reflect` index for any position: half-sample symmetric with period 2·len, which folds
/// a kernel wider than the image back as many times as needed.
fn reflect(i: isize, len: usize) -> usize {
    let period = 2 * len as isize;
    let m = i.rem_euclid(period) as usize;
    if m < len { m } else { 2 * len - 1 - m }
}

fn pixel_count(side: usize) -> Result<usize, AnomalyMapError> {
    match side.checked_mul(side) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(AnomalyMapError::InvalidSide { side }),
    }
}

fn check_len(
    buffer: &'static str,
    values: &[f32],
    side: usize,
    expected: usize,
) -> Result<(), AnomalyMapError> {
    if values.len() == expected {
        Ok(())
    } else {
        Err(AnomalyMapError::BufferLength {
            buffer,
            side,
            expected,
            got: values.len(),
        })
    }
}

fn check_finite(buffer: &'static str, values: &[f32], side: usize) -> Result<(), AnomalyMapError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(AnomalyMapError::NonFinite {
            buffer,
            index,
            row: index / side,
            column: index % side,
            value: values[index],
        }),
    }
}

/// Turns the model's P and R into the pixel map and the image score, frame after frame, reusing
/// its buffers.
#[derive(Debug, Clone)]
pub struct AnomalyMapper {
    blur: GaussianBlur,
    image_score: ImageScore,
    /// P ⊙ minmax(R) · 255 for the pixel map; G(P) for the image score.
    first: Vec<f32>,
    /// G(R) for the image score.
    second: Vec<f32>,
    /// The pixel map's values, partly ordered to find the top k.
    ranked: Vec<f32>,
}

impl AnomalyMapper {
    /// A mapper blurring with `sigma` (the paper: 4) and scoring images with `image_score`.
    pub fn new(sigma: f32, image_score: ImageScore) -> Result<Self, AnomalyMapError> {
        Ok(Self {
            blur: GaussianBlur::new(sigma)?,
            image_score: image_score.validate()?,
            first: Vec::new(),
            second: Vec::new(),
            ranked: Vec::new(),
        })
    }

    pub fn image_score_rule(&self) -> ImageScore {
        self.image_score
    }

    pub fn sigma(&self) -> f32 {
        self.blur.sigma()
    }

    /// Writes the pixel map G_σ(P ⊙ minmax(R) · 255) of one `side`×`side` frame into `out`.
    ///
    /// minmax is taken over the frame. When R is constant (min = max, e.g. a blank frame the
    /// model reconstructs perfectly) the paper's code divides 0 by 0 and gets NaN; here the map
    /// is all zeros instead: no pixel is more anomalous than another.
    pub fn map(
        &mut self,
        probabilities: &[f32],
        reconstruction_error: &[f32],
        side: usize,
        out: &mut [f32],
    ) -> Result<(), AnomalyMapError> {
        let pixels = check_inputs(probabilities, reconstruction_error, side)?;
        check_len("pixel map", out, side, pixels)?;

        let (min, max) = reconstruction_error
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if min >= max {
            out.fill(0.0);
            return Ok(());
        }
        // In f64: max − min of two finite f32s can overflow f32, and its inverse can too when
        // they are a few ulps apart.
        let scale = PAPER_SCALE / (f64::from(max) - f64::from(min));
        self.first.resize(pixels, 0.0);
        for ((dst, &p), &r) in self
            .first
            .iter_mut()
            .zip(probabilities)
            .zip(reconstruction_error)
        {
            *dst = p * ((f64::from(r) - f64::from(min)) * scale) as f32;
        }
        self.blur.blur(&self.first, side, out);
        Ok(())
    }

    /// The frame's image score under this mapper's [`ImageScore`] rule. `pixel_map` is what
    /// [`map`](Self::map) wrote for the same P and R (read by `Max` and `TopKMean`; `Mean` uses
    /// P and R).
    pub fn image_score(
        &mut self,
        probabilities: &[f32],
        reconstruction_error: &[f32],
        pixel_map: &[f32],
        side: usize,
    ) -> Result<f32, AnomalyMapError> {
        let pixels = check_inputs(probabilities, reconstruction_error, side)?;
        check_len("pixel map", pixel_map, side, pixels)?;
        match self.image_score {
            ImageScore::Mean => Ok(self.paper_mean(probabilities, reconstruction_error, side)),
            ImageScore::Max => {
                check_finite("pixel map", pixel_map, side)?;
                Ok(pixel_map.iter().copied().fold(f32::NEG_INFINITY, f32::max))
            }
            ImageScore::TopKMean { fraction } => {
                check_finite("pixel map", pixel_map, side)?;
                Ok(self.top_k_mean(pixel_map, fraction))
            }
        }
    }

    /// mean(G(G(P) ⊙ G(R))) computed as mean(G(P) ⊙ G(R)): with reflect padding the blur is a
    /// symmetric matrix whose rows sum to 1, so its columns do too and it leaves the mean of an
    /// image unchanged. The outer blur would cost a third of the frame's work for nothing
    /// (the scipy fixture confirms the two agree).
    fn paper_mean(
        &mut self,
        probabilities: &[f32],
        reconstruction_error: &[f32],
        side: usize,
    ) -> f32 {
        let pixels = side * side;
        self.first.resize(pixels, 0.0);
        self.second.resize(pixels, 0.0);
        // Disjoint borrows: the blur's own scratch is separate from the two outputs.
        let (blur, first, second) = (&mut self.blur, &mut self.first, &mut self.second);
        blur.blur(probabilities, side, first);
        blur.blur(reconstruction_error, side, second);
        let sum: f64 = first
            .iter()
            .zip(second.iter())
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        (sum / pixels as f64) as f32
    }

    /// Mean of the ⌈fraction·n⌉ largest values (at least one).
    fn top_k_mean(&mut self, pixel_map: &[f32], fraction: f32) -> f32 {
        let n = pixel_map.len();
        let k = ((f64::from(fraction) * n as f64).ceil() as usize).clamp(1, n);
        self.ranked.clear();
        self.ranked.extend_from_slice(pixel_map);
        // Descending: after this the k largest occupy ranked[..k], in no particular order.
        self.ranked
            .select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let sum: f64 = self.ranked[..k].iter().map(|&v| f64::from(v)).sum();
        (sum / k as f64) as f32
    }
}

/// Checks P and R for one frame; returns the pixel count.
fn check_inputs(
    probabilities: &[f32],
    reconstruction_error: &[f32],
    side: usize,
) -> Result<usize, AnomalyMapError> {
    let pixels = pixel_count(side)?;
    check_len("probabilities", probabilities, side, pixels)?;
    check_len("reconstruction_error", reconstruction_error, side, pixels)?;
    check_finite("probabilities", probabilities, side)?;
    check_finite("reconstruction_error", reconstruction_error, side)?;
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::npy::read_npy;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/isstad")
    }

    fn expected() -> serde_json::Value {
        let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn load_f32(name: &str) -> (Vec<f32>, usize) {
        let a = read_npy::<f32>(fixtures().join(name)).unwrap();
        assert_eq!(a.shape.len(), 2);
        assert_eq!(a.shape[0], a.shape[1]);
        (a.data, a.shape[0])
    }

    fn load_f64(name: &str) -> Vec<f64> {
        read_npy::<f64>(fixtures().join(name)).unwrap().data
    }

    /// Relative agreement to 1e-5; every reference value here is positive, so no absolute floor
    /// is needed beyond guarding exact zeros.
    fn assert_close(got: f64, want: f64, what: &str) {
        let tolerance = 1e-5 * want.abs() + 1e-12;
        assert!(
            (got - want).abs() <= tolerance,
            "{what}: got {got}, scipy {want}, relative error {}",
            ((got - want) / want).abs()
        );
    }

    fn check_case(name: &str) {
        let (p, side) = load_f32(&format!("{name}_p.npy"));
        let (r, _) = load_f32(&format!("{name}_r.npy"));
        let want = load_f64(&format!("{name}_pixel.npy"));
        let scores = &expected()[name];
        let fraction = scores["top_k_fraction"].as_f64().unwrap() as f32;

        let mut out = vec![f32::NAN; side * side];
        let mut mapper = AnomalyMapper::new(4.0, ImageScore::Mean).unwrap();
        mapper.map(&p, &r, side, &mut out).unwrap();
        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
            assert_close(f64::from(g), w, &format!("{name} pixel {i}"));
        }
        for (rule, key) in [
            (ImageScore::Mean, "mean"),
            (ImageScore::Max, "max"),
            (ImageScore::TopKMean { fraction }, "top_k_mean"),
        ] {
            let mut mapper = AnomalyMapper::new(4.0, rule).unwrap();
            let score = mapper.image_score(&p, &r, &out, side).unwrap();
            assert_close(
                f64::from(score),
                scores[key].as_f64().unwrap(),
                &format!("{name} {key}"),
            );
        }
    }

    #[test]
    fn map_and_scores_match_scipy_48x48() {
        check_case("map48");
    }

    #[test]
    fn map_and_scores_match_scipy_when_kernel_is_wider_than_map() {
        check_case("map6");
    }

    #[test]
    fn blur_matches_scipy_for_another_sigma() {
        let (p, side) = load_f32("map48_p.npy");
        let want = load_f64("blur48_sigma1.5.npy");
        let mut blur = GaussianBlur::new(1.5).unwrap();
        assert_eq!(blur.radius(), 6);
        let mut out = vec![0.0; side * side];
        blur.apply(&p, side, &mut out).unwrap();
        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
            assert_close(f64::from(g), w, &format!("pixel {i}"));
        }
    }

    /// xorshift32 (13, 17, 5), as in `scripts/reference/isstad_map_fixture.py`.
    fn xorshift_inputs(side: usize, seed: u32) -> (Vec<f32>, Vec<f32>) {
        let mut x = seed;
        let mut draw = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / 16_777_216.0
        };
        let n = side * side;
        let p: Vec<f32> = (0..n).map(|_| draw()).collect();
        let mut r: Vec<f32> = (0..n).map(|_| draw()).collect();
        for (i, v) in r.iter_mut().enumerate() {
            let (row, col) = (i / side, i % side);
            if !((100..140).contains(&row) && (60..90).contains(&col)) {
                *v *= 0.125;
            }
        }
        (p, r)
    }

    #[test]
    fn map_and_scores_match_scipy_224x224() {
        let case = &expected()["xorshift224"];
        let side = case["side"].as_u64().unwrap() as usize;
        let seed = case["seed"].as_u64().unwrap() as u32;
        let (p, r) = xorshift_inputs(side, seed);
        let mut out = vec![0.0; side * side];
        let mut mapper = AnomalyMapper::new(4.0, ImageScore::Mean).unwrap();
        mapper.map(&p, &r, side, &mut out).unwrap();

        let indices: Vec<usize> = case["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let want = case["pixel_subsample"].as_array().unwrap();
        assert_eq!(want.len(), indices.len() * indices.len());
        let mut want = want.iter();
        for &row in &indices {
            for &col in &indices {
                let w = want.next().unwrap().as_f64().unwrap();
                assert_close(
                    f64::from(out[row * side + col]),
                    w,
                    &format!("({row}, {col})"),
                );
            }
        }

        let fraction = case["top_k_fraction"].as_f64().unwrap() as f32;
        for (rule, key) in [
            (ImageScore::Mean, "mean"),
            (ImageScore::Max, "max"),
            (ImageScore::TopKMean { fraction }, "top_k_mean"),
        ] {
            // The same mapper for every rule would do too; a fresh one checks nothing is carried
            // over between frames through the scratch buffers.
            let mut scorer = AnomalyMapper::new(4.0, rule).unwrap();
            let score = scorer.image_score(&p, &r, &out, side).unwrap();
            assert_close(f64::from(score), case[key].as_f64().unwrap(), key);
        }
    }

    #[test]
    fn constant_inputs_give_a_zero_map_not_nan() {
        let side = 20;
        let p = vec![0.7; side * side];
        let r = vec![0.25; side * side];
        let mut out = vec![f32::NAN; side * side];
        let mut mapper = AnomalyMapper::new(4.0, ImageScore::Max).unwrap();
        mapper.map(&p, &r, side, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
        assert_eq!(mapper.image_score(&p, &r, &out, side).unwrap(), 0.0);
    }

    #[test]
    fn blur_preserves_a_constant_image() {
        let side = 30;
        let input = vec![3.5; side * side];
        let mut out = vec![0.0; side * side];
        GaussianBlur::new(4.0)
            .unwrap()
            .apply(&input, side, &mut out)
            .unwrap();
        for &v in &out {
            assert!((v - 3.5).abs() <= 3.5 * 1e-6, "{v}");
        }
    }

    #[test]
    fn blur_of_a_delta_sums_to_one() {
        let side = 64;
        let mut input = vec![0.0; side * side];
        // Off centre and near a corner, so the reflected part of the kernel counts too.
        input[5 * side + 40] = 1.0;
        let mut out = vec![0.0; side * side];
        let mut blur = GaussianBlur::new(4.0).unwrap();
        assert_eq!(blur.weights().len(), 33);
        blur.apply(&input, side, &mut out).unwrap();
        let total: f64 = out.iter().map(|&v| f64::from(v)).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let weight_total: f64 = blur.weights().iter().map(|&w| f64::from(w)).sum();
        assert!((weight_total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn wrong_lengths_and_non_finite_values_are_refused() {
        let side = 8;
        let good = vec![0.5; 64];
        let short = vec![0.5; 63];
        let mut out = vec![0.0; 64];
        let mut mapper = AnomalyMapper::new(4.0, ImageScore::Mean).unwrap();

        let err = mapper.map(&short, &good, side, &mut out).unwrap_err();
        assert_eq!(
            err,
            AnomalyMapError::BufferLength {
                buffer: "probabilities",
                side,
                expected: 64,
                got: 63
            }
        );
        assert!(err.to_string().contains("63"), "{err}");

        let err = mapper.map(&good, &good, side, &mut out[..10]).unwrap_err();
        assert!(err.to_string().contains("pixel map holds 10"), "{err}");

        let mut bad = good.clone();
        bad[19] = f32::NAN;
        let err = mapper.map(&good, &bad, side, &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                AnomalyMapError::NonFinite {
                    buffer: "reconstruction_error",
                    index: 19,
                    row: 2,
                    column: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("NaN"), "{err}");

        bad[19] = f32::INFINITY;
        let err = mapper.image_score(&bad, &good, &out, side).unwrap_err();
        assert!(err.to_string().contains("probabilities[19]"), "{err}");
        assert!(err.to_string().contains("inf"), "{err}");

        assert_eq!(
            mapper.map(&[], &[], 0, &mut []).unwrap_err(),
            AnomalyMapError::InvalidSide { side: 0 }
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        for sigma in [0.0, -1.0, f32::NAN, f32::INFINITY, 1000.0] {
            let err = GaussianBlur::new(sigma).unwrap_err();
            assert!(err.to_string().contains(&sigma.to_string()), "{err}");
        }
        for fraction in [0.0, 1.5, f32::NAN] {
            let err = AnomalyMapper::new(4.0, ImageScore::TopKMean { fraction }).unwrap_err();
            assert!(err.to_string().contains(&fraction.to_string()), "{err}");
        }
        assert!(AnomalyMapper::new(4.0, ImageScore::TopKMean { fraction: 1.0 }).is_ok());
    }

    #[test]
    fn top_k_mean_takes_at_least_one_pixel() {
        let side = 4;
        let mut map = vec![0.0; 16];
        map[7] = 8.0;
        map[2] = 4.0;
        let zeros = vec![0.0; 16];
        let mut mapper = AnomalyMapper::new(4.0, ImageScore::TopKMean { fraction: 0.01 }).unwrap();
        assert_eq!(mapper.image_score(&zeros, &zeros, &map, side).unwrap(), 8.0);
        let mut mapper = AnomalyMapper::new(4.0, ImageScore::TopKMean { fraction: 0.125 }).unwrap();
        assert_eq!(mapper.image_score(&zeros, &zeros, &map, side).unwrap(), 6.0);
    }

    #[test]
    fn image_score_deserialises_from_a_profile() {
        #[derive(Deserialize)]
        struct Profile {
            #[serde(default)]
            image_score: ImageScore,
        }
        let parse = |text: &str| toml::from_str::<Profile>(text).map(|p| p.image_score);
        assert_eq!(parse("").unwrap(), ImageScore::Mean);
        assert_eq!(parse("image_score = \"mean\"").unwrap(), ImageScore::Mean);
        assert_eq!(parse("image_score = \"max\"").unwrap(), ImageScore::Max);
        assert_eq!(
            parse("image_score = { top_k_mean = { fraction = 0.01 } }").unwrap(),
            ImageScore::TopKMean { fraction: 0.01 }
        );
        assert!(parse("image_score = \"median\"").is_err());
        assert!(parse("image_score = { top_k_mean = { fraction = 0.1, k = 3 } }").is_err());
    }
}
