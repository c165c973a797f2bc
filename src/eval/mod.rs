//! Evaluation metrics: the numbers the models are judged by, computed exactly as the reference
//! implementations compute them, so a figure vigil prints can be put beside a published one.
//!
//! * [`roc_auc`], [`roc_curve`], [`average_precision`], [`precision_recall_curve`]: as
//!   scikit-learn 1.9.1 (`sklearn.metrics._ranking`) computes them for binary labels without
//!   sample weights. Thresholds sit at the distinct score values; a sample is predicted positive
//!   when its score is `>=` the threshold.
//! * [`pr_auc_trapezoid`]: `sklearn.metrics.auc(recall, precision)` over the precision–recall
//!   curve, which is what the XD-Violence evaluation (`test.py`) reports as "AP". It differs
//!   from [`average_precision`] (a step sum) by the trapezoids, notably the first one from the
//!   curve's artificial (recall 0, precision 1) end point. [`xd_violence_ap`] applies it to
//!   snippet scores repeated over their 16 frames, as that code does.
//! * [`f1_max`]: the best F1 over the thresholds of the precision–recall curve.
//! * [`aupro`], [`pro_curve`]: the per-region overlap curve and its normalised area up to a
//!   false-positive rate, as the MVTec AD evaluation code (`pro_curve_util.py` `compute_pro`,
//!   `generic_util.py` `trapezoid`) computes them.
//! * [`evaluate`] computes every score/label metric at once into a [`Report`];
//!   [`read_scores_csv`] reads a score file for it.
//! * [`events`]: event-level scoring of a labelled recording (events detected, latency, false
//!   alarms per hour of background), one matching rule for every card.
//! * [`recording`]: a labelled WAV recording (or a folder of them) scored directly through a
//!   profile stream's own stages, under that rule.
//!
//! Inputs that make a metric undefined (no samples, lengths that differ, a non-finite score,
//! one class only) are [`EvalError`]s rather than NaN or a panic: a NaN in a results table is
//! too easy to miss, and scikit-learn itself is inconsistent there (older releases raised for
//! one-class ROC AUC; 1.9.1 warns and returns NaN, and returns 0 or NaN for AP without
//! positives depending on the release).
//!
//! `tests/references/eval_metrics.rs` checks all of this against fixtures written with scikit-learn 1.9.1
//! and an independent NumPy/SciPy implementation of `compute_pro`
//! (`scripts/reference/eval_fixtures.py`).

mod csv;
pub mod events;
mod pro;
mod ranking;
pub mod recording;
pub mod scene;

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

pub use csv::{CsvProblem, read_scores_csv};
pub use pro::{AUPRO_MAX_FPR, aupro, pro_curve};
pub use ranking::{
    Curve, XD_VIOLENCE_SNIPPET_FRAMES, average_precision, f1_max, pr_auc_trapezoid,
    precision_recall_curve, precision_recall_curve_legacy, roc_auc, roc_curve, xd_violence_ap,
};

/// Why a metric could not be computed, with the facts needed to find the bad input.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{metric}: no samples to evaluate")]
    Empty { metric: &'static str },
    #[error("{metric}: {scores} scores but {labels} labels")]
    LengthMismatch {
        metric: &'static str,
        scores: usize,
        labels: usize,
    },
    #[error("{metric}: score at index {index} is {value}, not a finite number")]
    NonFiniteScore {
        metric: &'static str,
        index: usize,
        value: f64,
    },
    #[error(
        "{metric}: all {samples} labels are {}; the metric needs positives and negatives",
        if *positive { "positive" } else { "negative" }
    )]
    OneClass {
        metric: &'static str,
        samples: usize,
        /// The one class present.
        positive: bool,
    },
    #[error("aupro: max_fpr must lie in (0, 1], got {max_fpr}")]
    MaxFpr { max_fpr: f64 },
    #[error("aupro: {maps} anomaly maps but {masks} masks")]
    MapCount { maps: usize, masks: usize },
    #[error("aupro: an image size of {width}×{height} pixels is zero or overflows")]
    ImageSize { width: usize, height: usize },
    #[error(
        "aupro: image {image}: anomaly map has {map_len} pixels and mask {mask_len}, \
         expected {width}×{height} = {expected}"
    )]
    MapSize {
        image: usize,
        map_len: usize,
        mask_len: usize,
        width: usize,
        height: usize,
        expected: usize,
    },
    #[error("aupro: image {image}, pixel (x {x}, y {y}): score {value} is not a finite number")]
    NonFinitePixel {
        image: usize,
        x: usize,
        y: usize,
        value: f32,
    },
    #[error("aupro: the {images} masks hold no anomalous pixel, so there is no region to overlap")]
    NoRegions { images: usize },
    #[error(
        "aupro: all {pixels} mask pixels are anomalous, so the false-positive rate is undefined"
    )]
    NoNormalPixels { pixels: usize },
    #[error("cannot read scores from {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {problem}")]
    Csv {
        path: PathBuf,
        /// 1-based; the header is line 1.
        line: usize,
        problem: CsvProblem,
    },
    #[error("{path}: a header but no score rows")]
    CsvNoRows { path: PathBuf },
}

/// Every score/label metric of one evaluation set (AUPRO is separate: it needs pixel maps).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub samples: usize,
    pub positives: usize,
    pub negatives: usize,
    /// `sklearn.metrics.roc_auc_score`.
    pub roc_auc: f64,
    /// `sklearn.metrics.average_precision_score` (step sum, no interpolation).
    pub average_precision: f64,
    /// `auc(recall, precision)`: XD-Violence's "AP".
    pub pr_auc_trapezoid: f64,
    /// Best F1 over the precision–recall curve's thresholds.
    pub f1_max: f64,
    /// The score threshold (predict positive when `score >= threshold`) that gives `f1_max`.
    pub f1_threshold: f64,
}

impl Report {
    /// A few aligned lines for a terminal or a log.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason only.
        let _ = writeln!(
            out,
            "samples             {} ({} positive, {} negative)",
            self.samples, self.positives, self.negatives
        );
        let _ = writeln!(out, "ROC AUC             {:.6}", self.roc_auc);
        let _ = writeln!(
            out,
            "average precision   {:.6}  (sklearn average_precision_score)",
            self.average_precision
        );
        let _ = writeln!(
            out,
            "PR AUC, trapezoid   {:.6}  (auc(recall, precision), XD-Violence's \"AP\")",
            self.pr_auc_trapezoid
        );
        // The threshold in full (shortest exact form): it is meant to be copied into a profile.
        let _ = writeln!(
            out,
            "best F1             {:.6}  at score >= {}",
            self.f1_max, self.f1_threshold
        );
        out
    }
}

/// Computes every metric of [`Report`] from one sort of the scores.
pub fn evaluate(scores: &[f64], labels: &[bool]) -> Result<Report, EvalError> {
    let ranked = ranking::Ranked::new("evaluate", scores, labels)?;
    let (f1_max, f1_threshold) = ranked.f1_max();
    Ok(Report {
        samples: scores.len(),
        positives: ranked.positives(),
        negatives: ranked.negatives(),
        roc_auc: ranked.roc_auc(),
        average_precision: ranked.average_precision(),
        pr_auc_trapezoid: ranked.pr_auc_trapezoid(),
        f1_max,
        f1_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluate_matches_the_single_metrics() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.2];
        let labels = [false, false, true, true, true, false];
        let report = evaluate(&scores, &labels).unwrap();
        assert_eq!(report.samples, 6);
        assert_eq!((report.positives, report.negatives), (3, 3));
        assert_eq!(report.roc_auc, roc_auc(&scores, &labels).unwrap());
        assert_eq!(
            report.average_precision,
            average_precision(&scores, &labels).unwrap()
        );
        assert_eq!(
            report.pr_auc_trapezoid,
            pr_auc_trapezoid(&scores, &labels).unwrap()
        );
        assert_eq!(
            (report.f1_max, report.f1_threshold),
            f1_max(&scores, &labels).unwrap()
        );
        let text = report.render();
        assert!(text.contains("6 (3 positive, 3 negative)"), "{text}");
        assert!(text.contains("ROC AUC             0.833333"), "{text}");
    }

    #[test]
    fn errors_name_the_facts() {
        let err = evaluate(&[0.5, f64::NAN], &[true, false]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "evaluate: score at index 1 is NaN, not a finite number"
        );
        let err = evaluate(&[0.5, 0.2], &[true, true]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "evaluate: all 2 labels are positive; the metric needs positives and negatives"
        );
    }
}
