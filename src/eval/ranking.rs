//! Ranking metrics of scores against binary labels, as scikit-learn 1.9.1 computes them
//! (`sklearn/metrics/_ranking.py`: `confusion_matrix_at_thresholds`, `roc_curve`,
//! `roc_auc_score`, `precision_recall_curve`, `average_precision_score`, `auc`).
//!
//! Everything starts from the same table scikit-learn builds: the scores sorted from highest
//! to lowest, one threshold per distinct score (NumPy's `diff != 0`, so `-0.0` and `0.0` are
//! one threshold), and at each the counts of positives (`tps`) and negatives (`fps`) scoring
//! `>=` it. The counts are integers here (scikit-learn sums floats, exact below 2^53 samples),
//! and every ratio is formed from them the way scikit-learn forms it, so curves agree to the
//! last bit and areas to a few ulps (sums are sequential here, pairwise in NumPy).

use super::EvalError;

/// A curve as scikit-learn returns it: three arrays, `(fpr, tpr, thresholds)` from
/// [`roc_curve`], `(precision, recall, thresholds)` from [`precision_recall_curve`].
pub type Curve = (Vec<f64>, Vec<f64>, Vec<f64>);

/// The threshold table: `thresholds` strictly decreasing, `tps`/`fps` the positives/negatives
/// scoring `>=` each threshold (so both non-decreasing, and the last entries are the totals).
pub(crate) struct Ranked {
    thresholds: Vec<f64>,
    tps: Vec<usize>,
    fps: Vec<usize>,
}

/// Rejects inputs on which every metric here is undefined; `metric` names the caller in the
/// error so a message from a batch evaluation says which number could not be computed.
fn check(metric: &'static str, scores: &[f64], labels: &[bool]) -> Result<(), EvalError> {
    if scores.len() != labels.len() {
        return Err(EvalError::LengthMismatch {
            metric,
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    if scores.is_empty() {
        return Err(EvalError::Empty { metric });
    }
    // scikit-learn's `assert_all_finite` refuses infinities too, so they are refused here.
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(EvalError::NonFiniteScore {
            metric,
            index,
            value: scores[index],
        });
    }
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(EvalError::OneClass {
            metric,
            samples: labels.len(),
            positive: positives > 0,
        });
    }
    Ok(())
}

impl Ranked {
    pub(crate) fn new(
        metric: &'static str,
        scores: &[f64],
        labels: &[bool],
    ) -> Result<Self, EvalError> {
        check(metric, scores, labels)?;
        let mut pairs: Vec<(f64, bool)> =
            scores.iter().copied().zip(labels.iter().copied()).collect();
        // Unstable is enough: only the counts at the end of each run of equal scores are kept,
        // and those do not depend on the order inside the run.
        pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut ranked = Ranked {
            thresholds: Vec::new(),
            tps: Vec::new(),
            fps: Vec::new(),
        };
        let (mut tp, mut fp) = (0usize, 0usize);
        for (i, &(score, positive)) in pairs.iter().enumerate() {
            if positive {
                tp += 1;
            } else {
                fp += 1;
            }
            // `!=`, not `total_cmp`: -0.0 and 0.0 are one threshold, as NumPy's diff has it
            // (total_cmp sorted them next to each other, so the run stays contiguous).
            if pairs.get(i + 1).is_none_or(|next| next.0 != score) {
                ranked.thresholds.push(score);
                ranked.tps.push(tp);
                ranked.fps.push(fp);
            }
        }
        Ok(ranked)
    }

    pub(crate) fn positives(&self) -> usize {
        self.tps.last().copied().unwrap_or(0)
    }

    pub(crate) fn negatives(&self) -> usize {
        self.fps.last().copied().unwrap_or(0)
    }

    /// `(recall, precision)` at each threshold, highest threshold first, formed as
    /// scikit-learn forms them (`tps / tps[-1]`, `tps / (tps + fps)`); `tps + fps >= 1` always,
    /// since every threshold is some sample's score.
    fn recall_precision(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let positives = self.positives() as f64;
        self.tps.iter().zip(&self.fps).map(move |(&tp, &fp)| {
            let tp_f = tp as f64;
            (tp_f / positives, tp_f / (tp + fp) as f64)
        })
    }

    /// The area under the ROC curve, computed exactly: twice the trapezoid sum is an integer,
    /// `Σ Δfps · (tps + tps_prev)`, divided once by `2 · P · N`. This is the Mann–Whitney U
    /// with ties counted half, the same number `auc(fpr, tpr)` gives up to float rounding.
    pub(crate) fn roc_auc(&self) -> f64 {
        let mut twice_area: u128 = 0;
        let (mut prev_tp, mut prev_fp) = (0u128, 0u128);
        for (&tp, &fp) in self.tps.iter().zip(&self.fps) {
            let (tp, fp) = (tp as u128, fp as u128);
            twice_area += (fp - prev_fp) * (tp + prev_tp);
            (prev_tp, prev_fp) = (tp, fp);
        }
        twice_area as f64 / (2.0 * self.positives() as f64 * self.negatives() as f64)
    }

    /// `Σ (R_n − R_{n−1}) P_n` over the thresholds, highest first, recall differences taken
    /// between the float recalls as scikit-learn's `diff(recall)` does.
    pub(crate) fn average_precision(&self) -> f64 {
        let mut ap = 0.0;
        let mut prev_recall = 0.0;
        for (recall, precision) in self.recall_precision() {
            ap += (recall - prev_recall) * precision;
            prev_recall = recall;
        }
        ap
    }

    /// `auc(recall, precision)`: trapezoids between consecutive curve points, starting from the
    /// curve's (recall 0, precision 1) end point. Points past full recall have zero width, so
    /// whether the curve stops at full recall (scikit-learn < 1.1) or not does not matter.
    pub(crate) fn pr_auc_trapezoid(&self) -> f64 {
        let mut area = 0.0;
        let (mut prev_recall, mut prev_precision) = (0.0, 1.0);
        for (recall, precision) in self.recall_precision() {
            // NumPy's trapezoid: d * (y[1:] + y[:-1]) / 2.0, in that order.
            area += (recall - prev_recall) * (precision + prev_precision) / 2.0;
            (prev_recall, prev_precision) = (recall, precision);
        }
        area
    }

    /// The best F1 and its threshold. F1 is `2·tp / (tp + fp + P)`, the same number as
    /// `2PR / (P + R)` but one correctly rounded division of integers, so thresholds whose F1
    /// is truly equal compare equal. Among equal F1s the lowest threshold wins: that is the
    /// first one `np.argmax` finds on scikit-learn's increasing-threshold curve.
    pub(crate) fn f1_max(&self) -> (f64, f64) {
        let positives = self.positives();
        let mut best = (f64::NEG_INFINITY, f64::NAN);
        for ((&tp, &fp), &threshold) in self.tps.iter().zip(&self.fps).zip(&self.thresholds) {
            let f1 = (2 * tp) as f64 / (tp + fp + positives) as f64;
            // `>=` while walking down the thresholds keeps the lowest of equal maxima.
            if f1 >= best.0 {
                best = (f1, threshold);
            }
        }
        best
    }

    /// scikit-learn's `precision_recall_curve` arrays; `stop_at_full_recall` drops the
    /// thresholds below the first one that reaches full recall, as releases before 1.1 did.
    fn pr_curve(&self, stop_at_full_recall: bool) -> Curve {
        let positives = self.positives();
        let kept = if stop_at_full_recall {
            // `tps.searchsorted(tps[-1])`: the first threshold at which every positive is in.
            self.tps.partition_point(|&tp| tp < positives) + 1
        } else {
            self.tps.len()
        };
        let (mut recall, mut precision): (Vec<f64>, Vec<f64>) =
            self.recall_precision().take(kept).unzip();
        let mut thresholds = self.thresholds[..kept].to_vec();
        // scikit-learn reverses so that thresholds increase and recall decreases, then ends the
        // curve at (recall 0, precision 1), a point with no threshold.
        recall.reverse();
        precision.reverse();
        thresholds.reverse();
        recall.push(0.0);
        precision.push(1.0);
        (precision, recall, thresholds)
    }

    /// scikit-learn's `roc_curve(drop_intermediate=False)` arrays.
    fn roc_curve(&self) -> Curve {
        let (positives, negatives) = (self.positives() as f64, self.negatives() as f64);
        let mut fpr = Vec::with_capacity(self.fps.len() + 1);
        let mut tpr = Vec::with_capacity(self.tps.len() + 1);
        let mut thresholds = Vec::with_capacity(self.thresholds.len() + 1);
        // The extra first point puts the curve's start at (0, 0); scikit-learn ≥ 1.3 gives it
        // the threshold +inf (earlier releases used max score + 1).
        fpr.push(0.0);
        tpr.push(0.0);
        thresholds.push(f64::INFINITY);
        for ((&tp, &fp), &threshold) in self.tps.iter().zip(&self.fps).zip(&self.thresholds) {
            fpr.push(fp as f64 / negatives);
            tpr.push(tp as f64 / positives);
            thresholds.push(threshold);
        }
        (fpr, tpr, thresholds)
    }
}

/// The area under the ROC curve, as `sklearn.metrics.roc_auc_score` for binary labels
/// (ties between a positive and a negative count half).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64, EvalError> {
    Ok(Ranked::new("roc_auc", scores, labels)?.roc_auc())
}

/// `(fpr, tpr, thresholds)` as `sklearn.metrics.roc_curve(labels, scores,
/// drop_intermediate=False)`: thresholds decreasing, the first `+inf` for the (0, 0) point,
/// then one per distinct score.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Result<Curve, EvalError> {
    Ok(Ranked::new("roc_curve", scores, labels)?.roc_curve())
}

/// `(precision, recall, thresholds)` as `sklearn.metrics.precision_recall_curve` in
/// scikit-learn ≥ 1.1 (matched: 1.9.1, `drop_intermediate=False`): thresholds increasing, one
/// per distinct score; precision and recall one longer, ending at (precision 1, recall 0).
/// For the curve releases before 1.1 returned, see [`precision_recall_curve_legacy`].
pub fn precision_recall_curve(scores: &[f64], labels: &[bool]) -> Result<Curve, EvalError> {
    Ok(Ranked::new("precision_recall_curve", scores, labels)?.pr_curve(false))
}

/// `precision_recall_curve` as scikit-learn before 1.1 computed it (the releases the
/// XD-Violence code ran on): the same points, but it stops at the highest threshold that
/// reaches full recall (scikit-learn issue #23213, changed by PR #23214). The dropped points
/// all have recall 1, so [`average_precision`] and [`pr_auc_trapezoid`] are the same on both.
pub fn precision_recall_curve_legacy(scores: &[f64], labels: &[bool]) -> Result<Curve, EvalError> {
    Ok(Ranked::new("precision_recall_curve", scores, labels)?.pr_curve(true))
}

/// As `sklearn.metrics.average_precision_score`: `Σ (R_n − R_{n−1}) P_n` over the distinct
/// thresholds, no interpolation.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Result<f64, EvalError> {
    Ok(Ranked::new("average_precision", scores, labels)?.average_precision())
}

/// `sklearn.metrics.auc(recall, precision)` over [`precision_recall_curve`]: what the
/// XD-Violence `test.py` reports as "AP".
pub fn pr_auc_trapezoid(scores: &[f64], labels: &[bool]) -> Result<f64, EvalError> {
    Ok(Ranked::new("pr_auc_trapezoid", scores, labels)?.pr_auc_trapezoid())
}

/// Frames per snippet in the XD-Violence protocol (16 frames at 24 fps).
pub const XD_VIOLENCE_SNIPPET_FRAMES: usize = 16;

/// Frame-level "AP" as the XD-Violence test code computes it: each snippet score repeated for
/// its 16 frames (`np.repeat(pred, 16)`), then [`pr_auc_trapezoid`] against the frame labels.
/// Scores and labels are those of all test videos concatenated in list order; the labels must
/// cover exactly 16 frames per snippet (a mismatch is where the original code would either
/// crash or silently compare shifted frames).
pub fn xd_violence_ap(snippet_scores: &[f64], frame_labels: &[bool]) -> Result<f64, EvalError> {
    const METRIC: &str = "xd_violence_ap";
    let frames = snippet_scores.len() * XD_VIOLENCE_SNIPPET_FRAMES;
    if frames != frame_labels.len() {
        return Err(EvalError::LengthMismatch {
            metric: METRIC,
            scores: frames,
            labels: frame_labels.len(),
        });
    }
    let repeated: Vec<f64> = snippet_scores
        .iter()
        .flat_map(|&score| std::iter::repeat_n(score, XD_VIOLENCE_SNIPPET_FRAMES))
        .collect();
    Ok(Ranked::new(METRIC, &repeated, frame_labels)?.pr_auc_trapezoid())
}

/// `(f1, threshold)`: the best F1 over the thresholds of [`precision_recall_curve`], where a
/// sample is predicted positive when `score >= threshold`. Equal maxima go to the lowest
/// threshold (the first `np.argmax` finds on scikit-learn's curve); F1 is computed from the
/// counts, `2·TP / (TP + FP + P)`, so truly equal F1s are equal floats.
pub fn f1_max(scores: &[f64], labels: &[bool]) -> Result<(f64, f64), EvalError> {
    Ok(Ranked::new("f1_max", scores, labels)?.f1_max())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    // scikit-learn's docstring example: y_true [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8].
    const SCORES: [f64; 4] = [0.1, 0.4, 0.35, 0.8];
    const LABELS: [bool; 4] = [false, false, true, true];

    #[test]
    fn docstring_example_by_hand() {
        // Pairs (positive, negative): 0.35 beats 0.1 only, 0.8 beats both: U = 3 of 4.
        assert_eq!(roc_auc(&SCORES, &LABELS).unwrap(), 0.75);
        // Thresholds 0.8, 0.4, 0.35, 0.1: (R, P) = (.5, 1), (.5, .5), (1, 2/3), (1, .5).
        // AP = .5·1 + 0 + .5·(2/3) = 5/6.
        assert!(close(
            average_precision(&SCORES, &LABELS).unwrap(),
            5.0 / 6.0
        ));
        // Trapezoids from (0, 1): .5·(1+1)/2 + 0 + .5·(.5+2/3)/2 + 0 = 0.5 + 7/24.
        assert!(close(
            pr_auc_trapezoid(&SCORES, &LABELS).unwrap(),
            0.5 + 7.0 / 24.0
        ));
        // F1 = 2tp/(tp+fp+2): 2/3, 1/2, 4/5, 2/3 → 0.8 at 0.35.
        assert_eq!(f1_max(&SCORES, &LABELS).unwrap(), (0.8, 0.35));
    }

    #[test]
    fn curves_by_hand() {
        let (fpr, tpr, thr) = roc_curve(&SCORES, &LABELS).unwrap();
        assert_eq!(fpr, [0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(tpr, [0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(thr, [f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);

        let (p, r, t) = precision_recall_curve(&SCORES, &LABELS).unwrap();
        assert_eq!(p, [0.5, 2.0 / 3.0, 0.5, 1.0, 1.0]);
        assert_eq!(r, [1.0, 1.0, 0.5, 0.5, 0.0]);
        assert_eq!(t, [0.1, 0.35, 0.4, 0.8]);

        // Before 1.1 the curve stopped at 0.35, the first threshold with recall 1.
        let (p, r, t) = precision_recall_curve_legacy(&SCORES, &LABELS).unwrap();
        assert_eq!(p, [2.0 / 3.0, 0.5, 1.0, 1.0]);
        assert_eq!(r, [1.0, 0.5, 0.5, 0.0]);
        assert_eq!(t, [0.35, 0.4, 0.8]);
    }

    #[test]
    fn ties_count_half() {
        // One positive and one negative at the same score: U = 0.5 of 1.
        assert_eq!(roc_auc(&[0.3, 0.3], &[true, false]).unwrap(), 0.5);
        // All equal: one threshold, precision = base rate, recall 1.
        let scores = [2.0; 5];
        let labels = [true, false, false, true, false];
        assert_eq!(roc_auc(&scores, &labels).unwrap(), 0.5);
        assert!(close(average_precision(&scores, &labels).unwrap(), 0.4));
        // One trapezoid from (0, 1) to (1, 0.4).
        assert!(close(pr_auc_trapezoid(&scores, &labels).unwrap(), 0.7));
        // 2·2 / (2 + 3 + 2)
        assert_eq!(f1_max(&scores, &labels).unwrap(), (4.0 / 7.0, 2.0));
    }

    #[test]
    fn signed_zeros_are_one_threshold() {
        let (_, _, thr) = roc_curve(&[0.0, -0.0, 1.0], &[true, false, true]).unwrap();
        assert_eq!(thr.len(), 3);
        assert_eq!(roc_auc(&[0.0, -0.0], &[true, false]).unwrap(), 0.5);
    }

    #[test]
    fn separation_extremes() {
        let scores = [0.9, 0.8, 0.2, 0.1];
        let perfect = [true, true, false, false];
        let inverted = [false, false, true, true];
        assert_eq!(roc_auc(&scores, &perfect).unwrap(), 1.0);
        assert_eq!(average_precision(&scores, &perfect).unwrap(), 1.0);
        assert_eq!(pr_auc_trapezoid(&scores, &perfect).unwrap(), 1.0);
        assert_eq!(f1_max(&scores, &perfect).unwrap(), (1.0, 0.8));
        assert_eq!(roc_auc(&scores, &inverted).unwrap(), 0.0);
        // Inverted: (R, P) = (0, 0), (0, 0), (.5, 1/3), (1, .5): AP = .5/3 + .5·.5.
        assert!(close(
            average_precision(&scores, &inverted).unwrap(),
            0.5 / 3.0 + 0.25
        ));
        // F1 = 0, 0, 2/(1+2+2), 2·2/(2+2+2): the best is at the lowest threshold.
        assert_eq!(f1_max(&scores, &inverted).unwrap(), (2.0 / 3.0, 0.1));
    }

    #[test]
    fn equal_f1_goes_to_the_lowest_threshold() {
        // F1 at 0.9: 2/(1+0+2) = 2/3; at 0.5: 2·2/(2+2+2) = 2/3; at 0.1: 4/(2+3+2) = 4/7.
        let scores = [0.9, 0.5, 0.5, 0.5, 0.1];
        let labels = [true, true, false, false, false];
        assert_eq!(f1_max(&scores, &labels).unwrap(), (2.0 / 3.0, 0.5));
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        assert!(matches!(
            roc_auc(&[], &[]),
            Err(EvalError::Empty { metric: "roc_auc" })
        ));
        assert!(matches!(
            average_precision(&[0.1, 0.2], &[true]),
            Err(EvalError::LengthMismatch {
                scores: 2,
                labels: 1,
                ..
            })
        ));
        assert!(matches!(
            f1_max(&[0.1, f64::NAN, 0.3], &[true, false, true]),
            Err(EvalError::NonFiniteScore { index: 1, .. })
        ));
        assert!(matches!(
            roc_curve(&[0.1, f64::INFINITY], &[true, false]),
            Err(EvalError::NonFiniteScore { index: 1, .. })
        ));
        assert!(matches!(
            average_precision(&[0.1, 0.2], &[false, false]),
            Err(EvalError::OneClass {
                samples: 2,
                positive: false,
                ..
            })
        ));
        assert!(matches!(
            pr_auc_trapezoid(&[0.1], &[true]),
            Err(EvalError::OneClass { positive: true, .. })
        ));
    }
}
