#!/usr/bin/env python3
"""Writes tests/fixtures/mavd/xd_ap.json: frame-level "AP" computed exactly as the XD-Violence
test code does (MAVD's `test.py`): snippet scores of all test videos concatenated, each
repeated 16 times (`np.repeat(pred, 16)`), against the concatenated frame labels, then
`auc(recall, precision)` over `precision_recall_curve`. Needs numpy and scikit-learn.

    python3 scripts/reference/xd_ap_fixture.py tests/fixtures/mavd/xd_ap.json
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.metrics import auc, precision_recall_curve


def xd_ap(pred, gt):
    precision, recall, _ = precision_recall_curve(gt, np.repeat(pred, 16))
    return float(auc(recall, precision))


def main(out):
    rng = np.random.default_rng(2025)
    cases = []
    for name, videos, quantise in [("smooth", 6, None), ("ties", 10, 8), ("long", 40, None)]:
        preds, gts = [], []
        for v in range(videos):
            snippets = int(rng.integers(3, 60))
            violent = v % 2 == 1
            labels = np.zeros(snippets * 16, np.uint8)
            scores = rng.beta(2, 5, snippets)
            if violent:
                start = int(rng.integers(0, snippets * 16 - 8))
                end = min(snippets * 16, start + int(rng.integers(8, 200)))
                labels[start:end] = 1
                # Scores that rise over the event, imperfectly (events cut snippets).
                hit = np.zeros(snippets, bool)
                hit[start // 16 : (end + 15) // 16] = True
                scores[hit] = np.clip(scores[hit] + rng.normal(0.35, 0.2, hit.sum()), 0, 1)
            if quantise:
                scores = np.round(scores * quantise) / quantise
            preds.append(scores)
            gts.append(labels)
        pred, gt = np.concatenate(preds), np.concatenate(gts)
        cases.append({"name": name, "snippet_scores": [float(x) for x in pred],
                      "frame_labels": [int(x) for x in gt], "ap": xd_ap(pred, gt)})
    with open(out, "w") as f:
        json.dump({"sklearn": sklearn.__version__, "cases": cases}, f)
    print({c["name"]: round(c["ap"], 6) for c in cases}, "sklearn", sklearn.__version__)


if __name__ == "__main__":
    main(sys.argv[1])
