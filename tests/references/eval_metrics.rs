//! Checks `vigil::eval` against `tests/fixtures/eval`, written by
//! `scripts/reference/eval_fixtures.py` with scikit-learn 1.9.1 (ROC AUC, AP, PR curve,
//! `auc(recall, precision)`, F1) and an independent NumPy/SciPy implementation of the MVTec AD
//! evaluation's `compute_pro` + `trapezoid` (AUPRO), and checks the errors for degenerate input
//! and malformed score files.
//!
//! Tolerance, and why: `TOL` = 1e-9, absolute, for every metric and curve value. Both sides
//! form the same ratios of the same integer counts, so curve points agree to the bit; areas are
//! sums of up to a few thousand terms, summed pairwise by NumPy and sequentially here (ROC AUC
//! exactly in integers here), which leaves differences of ~1e-15. A real mistake (a tie split
//! wrongly, a missing end point, 4- instead of 8-connected regions) shows as 1e-4 and more.
//! Thresholds are scores and must match exactly.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil::eval::{
    self, CsvProblem, EvalError, aupro, average_precision, evaluate, f1_max, pr_auc_trapezoid,
    precision_recall_curve, precision_recall_curve_legacy, pro_curve, read_scores_csv, roc_auc,
    roc_curve, xd_violence_ap,
};
use vigil::io::npy::read_npy;

const TOL: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn u(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}")) as usize
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{what}: got {got:.17}, want {want:.17} (diff {:e})",
        (got - want).abs()
    );
}

fn assert_curve_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_close(&format!("{what}[{i}]"), *g, *w);
    }
}

/// A case's scores and labels and its JSON entry.
struct Case {
    entry: Value,
    name: String,
    scores: Vec<f64>,
    labels: Vec<bool>,
}

fn cases() -> Vec<Case> {
    let all_scores = read_npy::<f64>(fixtures().join("scores.npy")).unwrap().data;
    let all_labels = read_npy::<u8>(fixtures().join("labels.npy")).unwrap().data;
    assert_eq!(all_scores.len(), all_labels.len());
    let manifest = json("cases.json");
    assert_eq!(manifest["versions"]["scikit-learn"], "1.9.1");
    let cases: Vec<Case> = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let (offset, n) = (u(entry, "offset"), u(entry, "n"));
            Case {
                name: entry["name"].as_str().unwrap().to_string(),
                scores: all_scores[offset..offset + n].to_vec(),
                labels: all_labels[offset..offset + n]
                    .iter()
                    .map(|&l| l == 1)
                    .collect(),
                entry: entry.clone(),
            }
        })
        .collect();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    cases
}

/// Rows `offset..offset + len` of a (3, M) curve file, one Vec per row.
fn curve_rows(file: &str, offset: usize, len: usize) -> [Vec<f64>; 3] {
    let array = read_npy::<f64>(fixtures().join(file)).unwrap();
    assert_eq!(array.shape.len(), 2);
    assert_eq!(array.shape[0], 3);
    let m = array.shape[1];
    std::array::from_fn(|row| array.data[row * m + offset..row * m + offset + len].to_vec())
}

#[test]
fn score_metrics_match_sklearn() {
    for case in cases() {
        let (s, l, e, name) = (&case.scores, &case.labels, &case.entry, &case.name);
        assert_close(
            &format!("{name} roc_auc"),
            roc_auc(s, l).unwrap(),
            f(e, "roc_auc"),
        );
        assert_close(
            &format!("{name} average_precision"),
            average_precision(s, l).unwrap(),
            f(e, "average_precision"),
        );
        assert_close(
            &format!("{name} pr_auc_trapezoid"),
            pr_auc_trapezoid(s, l).unwrap(),
            f(e, "pr_auc_trapezoid"),
        );
        let (f1, threshold) = f1_max(s, l).unwrap();
        assert_close(&format!("{name} f1_max"), f1, f(e, "f1_max"));
        // From the bits: serde_json's default float parsing may be an ulp off. `==`, so the
        // sign of a zero threshold (which of ±0.0 scores ends the run) does not matter.
        let want = f64::from_bits(e["f1_threshold_bits"].as_u64().unwrap());
        assert_close(&format!("{name} f1_threshold"), want, f(e, "f1_threshold"));
        assert_eq!(threshold, want, "{name} f1 threshold");

        let report = evaluate(s, l).unwrap();
        assert_eq!(report.samples, u(e, "n"), "{name}");
        assert_eq!(report.positives, u(e, "positives"), "{name}");
        assert_eq!(report.negatives, u(e, "n") - u(e, "positives"), "{name}");
        assert_close(&format!("{name} report"), report.roc_auc, f(e, "roc_auc"));
        assert_close(
            &format!("{name} report"),
            report.average_precision,
            f(e, "average_precision"),
        );
        assert_close(
            &format!("{name} report"),
            report.pr_auc_trapezoid,
            f(e, "pr_auc_trapezoid"),
        );
        assert_eq!((report.f1_max, report.f1_threshold), (f1, threshold));
    }
}

#[test]
fn curves_match_sklearn() {
    let mut checked = 0;
    for case in cases() {
        let Some(curve) = case.entry.get("curve") else {
            continue;
        };
        let name = &case.name;
        let (offset, len) = (u(curve, "offset"), u(curve, "len"));
        // The curves have one point per distinct score plus their extra end point.
        assert_eq!(len, u(&case.entry, "distinct_scores") + 1, "{name}");

        let (fpr, tpr, thr) = roc_curve(&case.scores, &case.labels).unwrap();
        let [want_fpr, want_tpr, want_thr] = curve_rows("roc.npy", offset, len);
        assert_curve_close(&format!("{name} fpr"), &fpr, &want_fpr);
        assert_curve_close(&format!("{name} tpr"), &tpr, &want_tpr);
        assert_eq!(thr[0], f64::INFINITY, "{name}");
        assert_eq!(thr, want_thr, "{name} roc thresholds");

        let (p, r, t) = precision_recall_curve(&case.scores, &case.labels).unwrap();
        let [want_p, want_r, want_t] = curve_rows("pr.npy", offset, len);
        assert_curve_close(&format!("{name} precision"), &p, &want_p);
        assert_curve_close(&format!("{name} recall"), &r, &want_r);
        assert_eq!(t, want_t[..len - 1], "{name} pr thresholds");

        let (offset, len) = (u(curve, "legacy_offset"), u(curve, "legacy_len"));
        let (p, r, t) = precision_recall_curve_legacy(&case.scores, &case.labels).unwrap();
        let [want_p, want_r, want_t] = curve_rows("pr_legacy.npy", offset, len);
        assert_curve_close(&format!("{name} legacy precision"), &p, &want_p);
        assert_curve_close(&format!("{name} legacy recall"), &r, &want_r);
        assert_eq!(t, want_t[..len - 1], "{name} legacy pr thresholds");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} cases with curves");
}

struct ProSet {
    entry: Value,
    width: usize,
    height: usize,
    maps: Vec<Vec<f32>>,
    masks: Vec<Vec<bool>>,
}

fn pro_sets() -> Vec<ProSet> {
    let masks = read_npy::<u8>(fixtures().join("aupro.masks.npy")).unwrap();
    let manifest = json("aupro.json");
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap();
            let maps = read_npy::<f32>(fixtures().join(format!("{name}.maps.npy"))).unwrap();
            let (images, height, width) =
                (u(entry, "images"), u(entry, "height"), u(entry, "width"));
            assert_eq!(maps.shape, [images, height, width]);
            assert_eq!(masks.shape, [images, height, width]);
            let pixels = width * height;
            ProSet {
                maps: maps.data.chunks(pixels).map(<[f32]>::to_vec).collect(),
                masks: masks
                    .data
                    .chunks(pixels)
                    .map(|m| m.iter().map(|&v| v == 1).collect())
                    .collect(),
                entry: entry.clone(),
                width,
                height,
            }
        })
        .collect()
}

#[test]
fn aupro_matches_the_mvtec_reference() {
    let sets = pro_sets();
    assert_eq!(sets.len(), 2);
    for set in &sets {
        let name = set.entry["name"].as_str().unwrap();
        let maps: Vec<&[f32]> = set.maps.iter().map(Vec::as_slice).collect();
        let masks: Vec<&[bool]> = set.masks.iter().map(Vec::as_slice).collect();
        let (fprs, pros) = pro_curve(&maps, &masks, set.width, set.height).unwrap();
        assert_eq!(fprs.len(), u(&set.entry, "points"), "{name}");
        if let Some(file) = set.entry["curve"].as_str() {
            let curve = read_npy::<f64>(fixtures().join(file)).unwrap();
            let n = curve.shape[1];
            assert_curve_close(&format!("{name} fpr"), &fprs, &curve.data[..n]);
            assert_curve_close(&format!("{name} pro"), &pros, &curve.data[n..]);
        }
        for limit in set.entry["limits"].as_array().unwrap() {
            let max_fpr = f(limit, "max_fpr");
            let got = aupro(&maps, &masks, set.width, set.height, max_fpr).unwrap();
            let what = format!("{name} aupro at {max_fpr}");
            assert_close(&what, got, f(limit, "aupro"));
            // MVTec's own code rounds FPRs to f32, which moves it by ~1e-7 at most.
            assert!(
                (got - f(limit, "aupro_mvtec_float32_fpr")).abs() < 1e-6,
                "{what}"
            );
            // The fixture tells 8- from 4-connectivity: the 4-connected value is far off.
            assert!((got - f(limit, "aupro_4_connected")).abs() > 1e-4, "{what}");
        }
        // Swapping width and height gives other regions and so another value.
        let swapped = aupro(&maps, &masks, set.height, set.width, 0.3).unwrap();
        assert!(
            (swapped - f(&set.entry["limits"][0], "aupro")).abs() > 1e-6,
            "{name}"
        );
    }
    assert_eq!(eval::AUPRO_MAX_FPR, 0.3);
}

#[test]
fn degenerate_inputs_are_errors() {
    type Metric = fn(&[f64], &[bool]) -> Result<f64, EvalError>;
    let metrics: [(&str, Metric); 4] = [
        ("roc_auc", roc_auc),
        ("average_precision", average_precision),
        ("pr_auc_trapezoid", pr_auc_trapezoid),
        ("f1_max", |s, l| f1_max(s, l).map(|(f1, _)| f1)),
    ];
    for (name, metric) in metrics {
        let err = metric(&[], &[]).unwrap_err();
        assert!(
            matches!(err, EvalError::Empty { metric } if metric == name),
            "{err}"
        );
        let err = metric(&[0.1, 0.2, 0.3], &[true, false]).unwrap_err();
        assert!(
            matches!(
                err,
                EvalError::LengthMismatch {
                    scores: 3,
                    labels: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), format!("{name}: 3 scores but 2 labels"));
        let err = metric(&[0.1, 0.2, f64::NAN, 0.3], &[true, false, true, false]).unwrap_err();
        assert!(
            matches!(err, EvalError::NonFiniteScore { index: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("index 2 is NaN"), "{err}");
        let err = metric(&[0.1, f64::NEG_INFINITY], &[true, false]).unwrap_err();
        assert!(
            matches!(err, EvalError::NonFiniteScore { index: 1, .. }),
            "{err}"
        );
        let err = metric(&[0.1, 0.2, 0.3], &[false; 3]).unwrap_err();
        assert!(
            matches!(
                err,
                EvalError::OneClass {
                    samples: 3,
                    positive: false,
                    ..
                }
            ),
            "{err}"
        );
        let err = metric(&[0.1, 0.2], &[true; 2]).unwrap_err();
        assert!(
            matches!(err, EvalError::OneClass { positive: true, .. }),
            "{err}"
        );
    }
    assert!(matches!(
        roc_curve(&[0.5], &[true]),
        Err(EvalError::OneClass { .. })
    ));
    assert!(matches!(
        precision_recall_curve(&[0.5, 0.2], &[false, false]),
        Err(EvalError::OneClass { .. })
    ));
    assert!(matches!(
        evaluate(&[0.5, 0.2], &[true]),
        Err(EvalError::LengthMismatch { .. })
    ));

    let map = [0.1f32, 0.9, 0.2, 0.3, 0.4, 0.5];
    let mask = [false, true, false, false, false, false];
    let err = aupro(&[&map], &[&mask], 3, 2, 1.5).unwrap_err();
    assert!(matches!(err, EvalError::MaxFpr { .. }), "{err}");
    let err = aupro(&[&map], &[&mask], 2, 2, 0.3).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::MapSize {
                image: 0,
                map_len: 6,
                mask_len: 6,
                expected: 4,
                ..
            }
        ),
        "{err}"
    );
    let mut bad = map;
    bad[5] = f32::INFINITY;
    let err = aupro(&[&map, &bad], &[&mask, &mask], 3, 2, 0.3).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::NonFinitePixel {
                image: 1,
                x: 2,
                y: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = aupro(&[&map], &[&[false; 6]], 3, 2, 0.3).unwrap_err();
    assert!(matches!(err, EvalError::NoRegions { images: 1 }), "{err}");
    let err = aupro(&[&map], &[&[true; 6]], 3, 2, 0.3).unwrap_err();
    assert!(
        matches!(err, EvalError::NoNormalPixels { pixels: 6 }),
        "{err}"
    );
}

#[test]
fn reads_score_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.csv");
    std::fs::write(
        &path,
        "clip,label,score\r\na.mp4,1,0.9\r\nb.mp4,0,0.25\r\n\r\nc.mp4,true,-1e-3\r\nd.mp4,False,7\r\n",
    )
    .unwrap();
    let (scores, labels) = read_scores_csv(&path).unwrap();
    assert_eq!(scores, [0.9, 0.25, -0.001, 7.0]);
    assert_eq!(labels, [true, false, true, false]);

    // A fixture case written as CSV (Rust prints the shortest form that reads back exactly)
    // evaluates to the same numbers.
    let case = cases()
        .into_iter()
        .find(|c| c.name == "random_1000_rounded")
        .unwrap();
    let mut text = String::from("score,label\n");
    for (s, l) in case.scores.iter().zip(&case.labels) {
        text += &format!("{s},{}\n", u8::from(*l));
    }
    std::fs::write(&path, text).unwrap();
    let (scores, labels) = read_scores_csv(&path).unwrap();
    assert_eq!(scores, case.scores);
    assert_eq!(labels, case.labels);
    let report = evaluate(&scores, &labels).unwrap();
    assert_close("csv roc_auc", report.roc_auc, f(&case.entry, "roc_auc"));
    let text = report.render();
    assert!(text.contains("ROC AUC"), "{text}");
}

#[test]
fn score_file_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = read_scores_csv(&path).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(name), "{message}");
        (err, message)
    };

    let (err, message) = bad("no_label.csv", "score,target\n0.1,1\n");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 1,
                problem: CsvProblem::MissingColumn {
                    column: "label",
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains("line 1: no `label` column in the header (score,target)"),
        "{message}"
    );

    let (err, message) = bad("short.csv", "score,label,id\n0.1,1,a\n0.2,0\n");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 3,
                problem: CsvProblem::FieldCount {
                    expected: 3,
                    found: 2
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains("line 3: 2 fields, the header has 3"),
        "{message}"
    );

    let (err, message) = bad("nan.csv", "label,score\n1,0.5\n0,abc\n");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 3,
                problem: CsvProblem::NotANumber { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains("line 3: score \"abc\" is not a number"),
        "{message}"
    );

    let (err, message) = bad("label.csv", "score,label\n0.5,1\n0.4,yes\n");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 3,
                problem: CsvProblem::BadLabel { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains("line 3: label \"yes\" is not 0, 1, true or false"),
        "{message}"
    );

    let (err, _) = bad("inf.csv", "score,label\ninf,1\n");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 2,
                problem: CsvProblem::NonFinite { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let (err, _) = bad("empty_field.csv", "score,label\n0.5,\n");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 2,
                problem: CsvProblem::EmptyField { column: "label" },
                ..
            }
        ),
        "{err:?}"
    );

    let (err, _) = bad("header_only.csv", "score,label\n");
    assert!(matches!(&err, EvalError::CsvNoRows { .. }), "{err:?}");

    let (err, _) = bad("empty.csv", "");
    assert!(
        matches!(
            &err,
            EvalError::Csv {
                line: 1,
                problem: CsvProblem::NoHeader,
                ..
            }
        ),
        "{err:?}"
    );

    let missing = dir.path().join("missing.csv");
    let err = read_scores_csv(&missing).unwrap_err();
    assert!(
        matches!(&err, EvalError::Io { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.csv"), "{err}");

    // Valid CSV, but one class only: read fine, refused by the metrics.
    let path = dir.path().join("one_class.csv");
    std::fs::write(&path, "score,label\n0.5,0\n0.4,0\n").unwrap();
    let (scores, labels) = read_scores_csv(&path).unwrap();
    assert!(matches!(
        evaluate(&scores, &labels),
        Err(EvalError::OneClass {
            samples: 2,
            positive: false,
            ..
        })
    ));
}

#[test]
fn xd_violence_frame_ap_matches_the_xd_test_code_under_sklearn() {
    let path = fixtures().join("../mavd/xd_ap.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let scores: Vec<f64> = case["snippet_scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let labels: Vec<bool> = case["frame_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64() == Some(1))
            .collect();
        let name = case["name"].as_str().unwrap();
        assert_close(
            name,
            xd_violence_ap(&scores, &labels).unwrap(),
            f(case, "ap"),
        );
        // Labels for one frame too many: refused, not compared shifted.
        let mut longer = labels.clone();
        longer.push(false);
        let err = xd_violence_ap(&scores, &longer).unwrap_err();
        assert!(
            matches!(err, EvalError::LengthMismatch { scores: s, labels: l, .. }
                if s == 16 * scores.len() && l == longer.len()),
            "{err}"
        );
    }
}
