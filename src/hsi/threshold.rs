//! Parameter-free alert thresholds for RX-family scores.
//!
//! If background spectra are Gaussian with the estimated mean and covariance, a pixel's squared
//! Mahalanobis distance follows a χ² law with as many degrees of freedom as the covariance has
//! rank, so the threshold for a constant false-alarm rate `p_fa` is that law's upper
//! `p_fa`-quantile — no tuning, no labels. Real backgrounds have far heavier tails than
//! Gaussians: at `p_fa = 1e-3` global RX flags 5.9–16.9 % of the pixels of the ABU scenes, 60 to
//! 170 times the promise (models/hyperspectral.md). So the empirical quantile of the scores
//! themselves is offered as well, which holds the rate by construction; every alert names the
//! rule that produced it.

use std::fmt;

use super::HsiError;

/// How an alert threshold is derived from a false-alarm rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ThresholdRule {
    /// Upper quantile of χ² with the covariance's rank as degrees of freedom.
    CfarChi2 { p_fa: f64 },
    /// The `1 − p_fa` quantile of the scores being thresholded.
    EmpiricalQuantile { p_fa: f64 },
}

impl ThresholdRule {
    /// The name alerts carry.
    pub fn name(&self) -> &'static str {
        match self {
            ThresholdRule::CfarChi2 { .. } => "cfar-chi2",
            ThresholdRule::EmpiricalQuantile { .. } => "empirical-quantile",
        }
    }

    pub fn p_fa(&self) -> f64 {
        match *self {
            ThresholdRule::CfarChi2 { p_fa } | ThresholdRule::EmpiricalQuantile { p_fa } => p_fa,
        }
    }

    /// Refuses a false-alarm rate outside (0, 1).
    pub fn validate(&self) -> Result<(), HsiError> {
        let p = self.p_fa();
        if p > 0.0 && p < 1.0 {
            Ok(())
        } else {
            Err(HsiError::Detector(format!(
                "{}: p_fa must lie strictly between 0 and 1, got {p}",
                self.name()
            )))
        }
    }

    /// The score above which a pixel is anomalous. `degrees_of_freedom` is the covariance's
    /// rank (the band count when it is full rank); `scores` are the scores to be thresholded.
    pub fn threshold(&self, degrees_of_freedom: usize, scores: &[f32]) -> Result<f64, HsiError> {
        self.validate()?;
        match *self {
            ThresholdRule::CfarChi2 { p_fa } => {
                if degrees_of_freedom == 0 {
                    return Err(HsiError::Detector(
                        "χ² threshold with 0 degrees of freedom".into(),
                    ));
                }
                Ok(chi2_upper_quantile(p_fa, degrees_of_freedom as f64))
            }
            ThresholdRule::EmpiricalQuantile { p_fa } => empirical_upper_quantile(scores, p_fa),
        }
    }
}

impl fmt::Display for ThresholdRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at p_fa {}", self.name(), self.p_fa())
    }
}

/// The value exceeded by a fraction `p_fa` of `scores` (linear interpolation between order
/// statistics, NumPy's default). NaN scores are an error, not silently sorted somewhere.
pub fn empirical_upper_quantile(scores: &[f32], p_fa: f64) -> Result<f64, HsiError> {
    if scores.is_empty() {
        return Err(HsiError::Detector(
            "an empirical quantile of no scores".into(),
        ));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(HsiError::Detector("the scores contain NaN".into()));
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let position = (1.0 - p_fa) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    Ok(f64::from(sorted[below]) * (1.0 - fraction) + f64::from(sorted[above]) * fraction)
}

/// `x` with `P(χ²_dof > x) = p`, to about 1e-12 relative: a bracketed Newton iteration on
/// `ln Q(dof/2, x/2) − ln p`, so that `p` down to 1e-300 keeps full precision.
pub fn chi2_upper_quantile(p: f64, dof: f64) -> f64 {
    let a = dof / 2.0;
    let target = p.ln();
    let log_tail = |x: f64| ln_upper_regularized_gamma(a, x / 2.0);
    // Bracket: the tail at `lo` is ≥ p, at `hi` it is < p.
    let mut lo = 0.0f64;
    let mut hi = dof.max(1.0);
    while log_tail(hi) > target {
        lo = hi;
        hi *= 2.0;
    }
    let mut x = 0.5 * (lo + hi);
    for _ in 0..200 {
        let g = log_tail(x) - target;
        if g > 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        // d/dx ln Q(a, x/2) = −f(x)/Q, with f the χ² density.
        let log_density =
            (a - 1.0) * (x / 2.0).ln() - x / 2.0 - ln_gamma(a) - std::f64::consts::LN_2;
        let slope = -(log_density - log_tail(x)).exp();
        let newton = x - g / slope;
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() <= 1e-14 * x.max(1e-300) {
            return next;
        }
        x = next;
    }
    x
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// ln Q(a, x), the log of the upper regularized incomplete gamma function: the lower series
/// below x = a + 1, Lentz's continued fraction above it, each where it converges fast.
pub fn ln_upper_regularized_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = e^{−x} x^a / Γ(a+1) · Σ x^n / ((a+1)…(a+n)); Q = 1 − P.
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut n = 1.0;
        while term.abs() > sum.abs() * 1e-17 && n < 10_000.0 {
            term *= x / (a + n);
            sum += term;
            n += 1.0;
        }
        let lower = (log_prefix + sum.ln()).exp();
        (1.0 - lower).max(f64::MIN_POSITIVE).ln()
    } else {
        // Q(a, x) = e^{−x} x^a / Γ(a) · 1/(x + 1 − a − 1·(1−a)/(x + 3 − a − …)).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut fraction = d;
        for i in 1..10_000 {
            let i = i as f64;
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            fraction *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        log_prefix + fraction.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_quantiles_of_closed_forms() {
        // dof 2: Q(x) = e^{−x/2}, so x = −2 ln p exactly.
        for p in [0.1, 1e-3, 1e-9, 1e-100] {
            let x = chi2_upper_quantile(p, 2.0);
            assert!((x - (-2.0 * p.ln())).abs() < 1e-10 * x, "p {p}: {x}");
        }
        // dof 1: Q(x) = erfc(sqrt(x/2)); the 5 % point is 3.841458820694124.
        assert!((chi2_upper_quantile(0.05, 1.0) - 3.841_458_820_694_124).abs() < 1e-9);
    }

    #[test]
    fn empirical_quantile_interpolates_and_refuses_nan() {
        let scores: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        assert!((empirical_upper_quantile(&scores, 0.1).unwrap() - 90.0).abs() < 1e-9);
        assert!((empirical_upper_quantile(&scores, 0.015).unwrap() - 98.5).abs() < 1e-9);
        assert!(empirical_upper_quantile(&[1.0, f32::NAN], 0.1).is_err());
        assert!(empirical_upper_quantile(&[], 0.1).is_err());
    }

    #[test]
    fn bad_false_alarm_rates_are_refused() {
        for p in [0.0, 1.0, -0.1, f64::NAN] {
            let rule = ThresholdRule::CfarChi2 { p_fa: p };
            let message = rule.threshold(10, &[]).unwrap_err().to_string();
            assert!(message.contains("p_fa"), "{message}");
        }
    }
}
