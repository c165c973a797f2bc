#!/usr/bin/env python3
"""Writes tests/fixtures/eval: score/label cases with the metrics scikit-learn computes for
them, and anomaly maps/masks with AUPRO from an independent NumPy/SciPy implementation of the
MVTec AD evaluation's compute_pro + trapezoid. tests/references/eval_metrics.rs compares src/eval to them.

Needs numpy, scipy and scikit-learn (written with scikit-learn 1.9.1; the version used is
recorded in cases.json). Deterministic: fixed seeds.

Files (all .npy are little-endian, C order; cases are concatenated, cases.json has offsets):
  cases.json           every case: name, size, offsets, expected metrics
  scores.npy  f8 (N,)  all cases' scores, kept binary so ties survive exactly
  labels.npy  u1 (N,)  0/1
  roc.npy     f8 (3, M)  roc_curve(drop_intermediate=False) of the small cases: fpr, tpr,
                         thresholds (m + 1 points per case: the first threshold is +inf)
  pr.npy      f8 (3, M)  precision_recall_curve: precision, recall, thresholds (m + 1 points,
                         m thresholds: each case's last column holds NaN there)
  pr_legacy.npy f8 (3, L)  the same curve as scikit-learn < 1.1 returned it
  aupro.json           every AUPRO case: image shape, expected values
  aupro.masks.npy u1 (k, h, w), <aupro case>.maps.npy f4 (k, h, w), and for the case with
  few distinct scores <case>.curve.npy f8 (2, p): the PRO curve's FPRs and PROs
"""
import json
import pathlib
import struct

import numpy as np
import scipy
import sklearn
from scipy import ndimage, stats
from sklearn.metrics import (auc, average_precision_score, confusion_matrix_at_thresholds,
                             precision_recall_curve, roc_auc_score, roc_curve)

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/eval"
# Curves are stored only up to this size, to keep the fixtures small.
CURVE_MAX_N = 300


def f1_max(y, s):
    """Best F1 from the counts (2tp / (tp + fp + P)), lowest threshold among equal maxima
    (np.argmax over the increasing-threshold curve). Cross-checked against 2PR/(P+R)."""
    _, fps, _, tps, thr = confusion_matrix_at_thresholds(y, s)  # thresholds decreasing
    f1 = 2 * tps / (tps + fps + tps[-1])
    inc = f1[::-1]
    i = int(np.argmax(inc))
    best, threshold = float(inc[i]), float(thr[::-1][i])
    p, r, t = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_pr = np.nan_to_num(2 * p * r / (p + r))[:-1]
    assert abs(f1_pr.max() - best) < 1e-12, (f1_pr.max(), best)
    assert abs(f1_pr[i] - best) < 1e-12
    assert np.array_equal(t, thr[::-1])
    return best, threshold


def pr_curve_legacy(y, s):
    """precision_recall_curve as scikit-learn < 1.1 returned it: stop at the first threshold
    (from the top) that reaches full recall, reversed, then the (precision 1, recall 0) end."""
    _, fps, _, tps, thr = confusion_matrix_at_thresholds(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    last = tps.searchsorted(tps[-1])
    sl = slice(last, None, -1)
    return np.r_[precision[sl], 1], np.r_[recall[sl], 0], thr[sl]


class Cases:
    """Collects the cases, concatenated, and their expected values."""

    def __init__(self):
        self.entries, self.scores, self.labels = [], [], []
        self.roc, self.pr, self.pr_legacy = [], [], []
        self.n = self.m = self.legacy = 0

    def add(self, name, scores, labels):
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.uint8)
        assert scores.shape == labels.shape and 0 < labels.sum() < len(labels)
        y = labels.astype(int)
        roc_auc = float(roc_auc_score(y, scores))
        # Independent check: AUC is the Mann-Whitney U (ties counted half) over P·N.
        u = stats.mannwhitneyu(scores[y == 1], scores[y == 0], alternative="two-sided").statistic
        assert abs(u / (y.sum() * (len(y) - y.sum())) - roc_auc) < 1e-12
        p, r, t = precision_recall_curve(y, scores)
        f1, f1_threshold = f1_max(y, scores)
        entry = {
            "name": name,
            "offset": self.n,
            "n": len(y),
            "positives": int(y.sum()),
            "distinct_scores": int(len(np.unique(scores))),
            "roc_auc": roc_auc,
            "average_precision": float(average_precision_score(y, scores)),
            "pr_auc_trapezoid": float(auc(r, p)),
            "f1_max": f1,
            "f1_threshold": f1_threshold,
            # Exact: serde_json's default float parsing can be one ulp off, and the threshold
            # must equal a score exactly.
            "f1_threshold_bits": struct.unpack("<Q", struct.pack("<d", f1_threshold))[0],
        }
        lp, lr, lt = pr_curve_legacy(y, scores)
        # The truncation drops only zero-width points: the areas are the same on both curves.
        assert abs(auc(lr, lp) - entry["pr_auc_trapezoid"]) < 1e-12
        if len(y) <= CURVE_MAX_N:
            fpr, tpr, thr = roc_curve(y, scores, drop_intermediate=False)
            assert len(fpr) == len(p)
            entry["curve"] = {"offset": self.m, "len": len(p), "legacy_offset": self.legacy,
                              "legacy_len": len(lp)}
            self.roc.append(np.stack([fpr, tpr, thr]))
            self.pr.append(np.stack([p, r, np.r_[t, np.nan]]))
            self.pr_legacy.append(np.stack([lp, lr, np.r_[lt, np.nan]]))
            self.m += len(p)
            self.legacy += len(lp)
        self.scores.append(scores)
        self.labels.append(labels)
        self.n += len(y)
        self.entries.append(entry)

    def save(self, versions):
        np.save(OUT / "scores.npy", np.concatenate(self.scores))
        np.save(OUT / "labels.npy", np.concatenate(self.labels))
        np.save(OUT / "roc.npy", np.concatenate(self.roc, axis=1))
        np.save(OUT / "pr.npy", np.concatenate(self.pr, axis=1))
        np.save(OUT / "pr_legacy.npy", np.concatenate(self.pr_legacy, axis=1))
        (OUT / "cases.json").write_text(
            json.dumps({"versions": versions, "cases": self.entries}, indent=1) + "\n")


def score_cases():
    rng = np.random.default_rng(20240611)
    cases = Cases()
    # Tiny cases, each ordering of two and three samples that has both classes.
    cases.add("n2_separated", [0.2, 0.7], [0, 1])
    cases.add("n2_inverted", [0.7, 0.2], [0, 1])
    cases.add("n2_tied", [0.5, 0.5], [1, 0])
    cases.add("n2_signed_zeros", [-0.0, 0.0], [1, 0])
    cases.add("n3_mixed", [0.1, 0.4, 0.35], [0, 1, 0])
    cases.add("n3_tied_top", [0.9, 0.9, 0.1], [1, 0, 1])
    cases.add("n3_one_negative", [0.3, 0.2, 0.1], [1, 0, 1])
    # scikit-learn's docstring example.
    cases.add("sklearn_docstring", [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    # Random cases: positives shifted up by one standard deviation.
    for n, rate in [(10, 0.5), (50, 0.3), (200, 0.2), (1000, 0.1), (4000, 0.05)]:
        labels = (rng.random(n) < rate).astype(np.uint8)
        labels[0], labels[1] = 1, 0  # both classes, whatever the draw
        scores = rng.standard_normal(n) + labels
        cases.add(f"random_{n}", scores, labels)
        # The same scores rounded to one decimal: many ties, many mixed-class ties.
        cases.add(f"random_{n}_rounded", np.round(scores, 1), labels)
    # Heavily tied: four score levels only, weakly informative.
    labels = (rng.random(300) < 0.4).astype(np.uint8)
    cases.add("four_levels", rng.integers(0, 4, 300) + labels * rng.integers(0, 2, 300), labels)
    # Logit-like scores of large magnitude, negative and positive.
    labels = (rng.random(250) < 0.5).astype(np.uint8)
    cases.add("logits", rng.standard_normal(250) * 40 + labels * 30, labels)
    # All scores equal.
    cases.add("all_equal", np.full(20, 0.25), (np.arange(20) % 3 == 0))
    # Perfect and inverted separation (continuous and tied).
    s = np.sort(rng.random(100))
    sep = np.arange(100) >= 70
    cases.add("perfect", s, sep)
    cases.add("inverted", s, ~sep)
    cases.add("perfect_tied", np.round(s, 1), (np.round(s, 1) >= 0.7))
    # Extreme imbalance: one positive, one negative.
    s = rng.random(300)
    one = np.zeros(300, dtype=np.uint8)
    one[17] = 1
    cases.add("one_positive", s, one)
    cases.add("one_negative", s, 1 - one)
    return cases


# ---------------------------------------------------------------------------------------------
# AUPRO, written from the MVTec AD evaluation's published description (compute_pro sorts all
# pixel scores, accumulates FP and per-region overlap changes, keeps the last point of each run
# of equal scores, adds (0, 0) and (1, 1); trapezoid() integrates up to x_max with a linearly
# interpolated last piece). Regions: scipy.ndimage.label with a 3×3 structure of ones.

STRUCTURE_8 = np.ones((3, 3), dtype=int)


def pro_curve(maps, masks, structure=STRUCTURE_8, fp_dtype=np.float64):
    """fp_dtype=np.float32 reproduces MVTec's cast of the cumulative FP counts to float32."""
    fp_change = np.zeros(maps.shape, dtype=np.uint64)
    pro_change = np.zeros(maps.shape, dtype=np.float64)
    normal = regions = 0
    for i, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure)
        regions += n
        fp_change[i][labeled == 0] = 1
        normal += int((labeled == 0).sum())
        for k in range(1, n + 1):
            region = labeled == k
            pro_change[i][region] = 1.0 / region.sum()
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fps = np.cumsum(fp_change.ravel()[order]).astype(fp_dtype)
    fprs = (fps / fp_dtype(normal)).astype(np.float64)
    pros = np.cumsum(pro_change.ravel()[order]) / regions
    keep = np.r_[np.diff(scores) != 0, True]
    fprs = np.clip(fprs[keep], None, 1.0)
    pros = np.clip(pros[keep], None, 1.0)
    return np.r_[0.0, fprs, 1.0], np.r_[0.0, pros, 1.0]


def pro_curve_brute(maps, masks):
    """PRO and FPR at every distinct threshold straight from the definition, to check the
    cumulative version: mean over regions of the overlap fraction, FP over normal pixels."""
    regions, normal = [], []
    for m, mask in zip(maps, masks):
        labeled, n = ndimage.label(mask, STRUCTURE_8)
        regions += [m[labeled == k] for k in range(1, n + 1)]
        normal.append(m[labeled == 0])
    normal = np.concatenate(normal)
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        fprs.append((normal >= t).sum() / len(normal))
        pros.append(np.mean([(r >= t).mean() for r in regions]))
    return np.r_[fprs, 1.0], np.r_[pros, 1.0]


def trapezoid(x, y, x_max):
    correction = 0.0
    if x_max not in x:
        ins = int(np.searchsorted(x, x_max, side="right"))
        assert 0 < ins < len(x)
        y_at = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_at + y[ins - 1]) * (x_max - x[ins - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def blob(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def aupro_images(rng, h, w):
    """Three images with 1-3 regions each; image 1 has two squares touching only at a corner
    (one region under 8-connectivity, two under 4), image 2 a region on the border."""
    masks = np.zeros((3, h, w), dtype=bool)
    masks[0] |= blob(h, w, 10, 12, 4, 6)
    masks[1, 4:9, 5:10] = True
    masks[1, 9:13, 10:14] = True  # touches the square above only at its corner
    masks[1] |= blob(h, w, 24, 30, 3, 3)
    masks[2] |= blob(h, w, 0, 0, 5, 7)  # clipped by the top-left corner
    masks[2] |= blob(h, w, 20, 8, 2, 2)
    masks[2, 26:29, 33:39] = True
    maps = rng.standard_normal((3, h, w)) * 0.6
    # Anomalies score higher, more in some regions than in others; plus false bumps.
    maps += masks * rng.uniform(0.3, 2.0, (3, 1, 1))
    maps[0] += 1.5 * blob(h, w, 25, 30, 3, 4)
    maps[2] += 1.0 * blob(h, w, 10, 25, 4, 4)
    return maps.astype(np.float32), masks


def aupro_cases():
    rng = np.random.default_rng(7)
    h, w = 32, 40  # not square, so a swapped width and height shows
    maps, masks = aupro_images(rng, h, w)
    n4 = sum(ndimage.label(m)[1] for m in masks)
    n8 = sum(ndimage.label(m, STRUCTURE_8)[1] for m in masks)
    assert (n4, n8) == (7, 6), (n4, n8)
    sets = {
        "aupro_random": maps,
        # Scores quantised to 0.25 steps: large runs of equal scores across classes.
        "aupro_quantised": (np.round(maps * 4) / 4).astype(np.float32),
    }
    cases = []
    for name, m in sets.items():
        fprs, pros = pro_curve(m, masks)
        bf, bp = pro_curve_brute(m, masks)
        assert np.allclose(fprs, bf, atol=1e-12, rtol=0) and np.allclose(pros, bp, atol=1e-12,
                                                                          rtol=0)
        f32_fprs, f32_pros = pro_curve(m, masks, fp_dtype=np.float32)
        f4_fprs, f4_pros = pro_curve(m, masks, structure=None)  # 4-connectivity
        entry = {"name": name, "images": int(m.shape[0]), "height": h, "width": w,
                 "regions": n8, "points": len(fprs), "limits": []}
        for limit in [0.3, 1.0, 0.05, 0.01, 0.5]:
            value = trapezoid(fprs, pros, limit) / limit
            entry["limits"].append({
                "max_fpr": limit,
                "aupro": value,
                # What MVTec's own code prints (float32 FPRs), for the record: it differs
                # from the exact value by ~1e-7.
                "aupro_mvtec_float32_fpr": trapezoid(f32_fprs, f32_pros, limit) / limit,
                # With 4-connectivity: must differ, or the fixture could not tell them apart.
                "aupro_4_connected": trapezoid(f4_fprs, f4_pros, limit) / limit,
            })
            assert abs(entry["limits"][-1]["aupro_4_connected"] - value) > 1e-4
        np.save(OUT / f"{name}.maps.npy", m)
        # The curve of every distinct score is long for continuous maps: kept for the
        # quantised case only, where it is short (the areas cover the other).
        if len(fprs) < 200:
            np.save(OUT / f"{name}.curve.npy", np.stack([fprs, pros]))
            entry["curve"] = f"{name}.curve.npy"
        cases.append(entry)
    np.save(OUT / "aupro.masks.npy", masks.astype(np.uint8))
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in [*OUT.glob("*.npy"), *OUT.glob("*.json")]:
        old.unlink()
    versions = {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
                "scipy": scipy.__version__}
    cases = score_cases()
    cases.save(versions)
    pro = aupro_cases()
    (OUT / "aupro.json").write_text(json.dumps({"versions": versions, "cases": pro},
                                               indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(cases.entries)} score cases, {len(pro)} AUPRO cases, {total / 1024:.0f} KiB in {OUT}")
    for c in pro:
        for lim in c["limits"]:
            print(f"  {c['name']} max_fpr {lim['max_fpr']}: {lim['aupro']:.12f} "
                  f"(float32 FPR {lim['aupro_mvtec_float32_fpr'] - lim['aupro']:+.1e}, "
                  f"4-connected {lim['aupro_4_connected']:.6f})")


if __name__ == "__main__":
    main()
