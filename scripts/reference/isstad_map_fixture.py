#!/usr/bin/env python3
"""Writes tests/fixtures/isstad: the ISSTAD anomaly map and image scores computed the way the
paper's code does (xjspin/ISSTAD `main_mvtec_ad_step2.py`), for src/models/industrial/anomaly_map.rs.

Rerun from the repository root (same bytes every time):

    python3 scripts/reference/isstad_map_fixture.py

Needs numpy and scipy (written with numpy 2.4.6 and scipy 1.17.1). The reference is computed in
float64 from the float32 inputs, so it is the exact answer the Rust float32 code approximates.

  map48_p.npy, map48_r.npy   f4 48×48: P (head-mean anomaly probability), R (reconstruction error)
  map48_pixel.npy            f8 48×48: G4(P ⊙ minmax(R) · 255)
  map6_*.npy                 the same for 6×6: the 33-tap kernel is wider than the map, so scipy's
                             reflect mode folds the border back more than once
  blur48_sigma1.5.npy        f8 48×48: gaussian_filter(map48_p, sigma=1.5), the blur alone
  expected.json              image scores of both cases (mean = the paper's, max, top-k mean), and
                             a 224×224 case whose inputs both sides generate with xorshift32
                             (see `xorshift_inputs`), stored as a 33×33 subsample of the map

G is scipy.ndimage.gaussian_filter(x, sigma, mode='reflect', truncate=4.0).
"""
import json
import math
import pathlib

import numpy as np
from scipy.ndimage import gaussian_filter

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "isstad"
SEED = 20250311
SIGMA = 4.0
TOP_K_FRACTION = np.float32(0.05)  # Rust holds the fraction as f32: use the same value here
XORSHIFT_SEED = 0x9E3779B9


def blur(x, sigma=SIGMA):
    return gaussian_filter(np.asarray(x, dtype=np.float64), sigma=sigma, mode="reflect", truncate=4.0)


def pixel_map(p, r):
    p = p.astype(np.float64)
    r = r.astype(np.float64)
    rmin, rmax = r.min(), r.max()
    return blur(p * ((r - rmin) / (rmax - rmin)) * 255.0)


def scores(p, r, pix):
    n = pix.size
    k = min(max(math.ceil(float(TOP_K_FRACTION) * n), 1), n)
    top = np.sort(pix.ravel())[::-1][:k]
    return {
        "mean": float(np.mean(blur(blur(p) * blur(r)))),
        "max": float(pix.max()),
        "top_k_mean": float(top.mean()),
        "top_k_fraction": float(TOP_K_FRACTION),
    }


def random_case(rng, side):
    """P in [0, 1) with a bright square, R a small positive error with a larger patch."""
    p = rng.random((side, side), dtype=np.float32) * np.float32(0.3)
    r = (rng.random((side, side), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    a, b = side // 4, side // 4 + max(side // 6, 1)
    p[a:b, a + 1:b + 2] += np.float32(0.6)
    r[a + 2:b + 3, a:b] += np.float32(0.3)
    return p.astype(np.float32), r.astype(np.float32)


def xorshift_inputs(side):
    """P and R the Rust test generates too: xorshift32 (13, 17, 5) from XORSHIFT_SEED, each draw
    u = (x >> 8) / 2^24 (exact in f32); all P first, then all R; R is scaled by 1/8 outside the
    square rows 100..140, columns 60..90 (a power of two, so exact in f32)."""
    x = XORSHIFT_SEED
    n = side * side
    draws = np.empty(2 * n, dtype=np.float32)
    for i in range(2 * n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        draws[i] = np.float32((x >> 8) / 16777216.0)
    p = draws[:n].reshape(side, side)
    r = draws[n:].reshape(side, side).copy()
    inside = np.zeros((side, side), dtype=bool)
    inside[100:140, 60:90] = True
    r[~inside] *= np.float32(0.125)
    return p, r


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    expected = {"sigma": SIGMA}
    for name, side in (("map48", 48), ("map6", 6)):
        p, r = random_case(rng, side)
        pix = pixel_map(p, r)
        np.save(OUT / f"{name}_p.npy", p)
        np.save(OUT / f"{name}_r.npy", r)
        np.save(OUT / f"{name}_pixel.npy", pix)
        expected[name] = scores(p, r, pix)
        if name == "map48":
            np.save(OUT / "blur48_sigma1.5.npy", blur(p, sigma=1.5))

    side = 224
    p, r = xorshift_inputs(side)
    pix = pixel_map(p, r)
    idx = list(range(0, side, 7)) + [side - 1]
    case = scores(p, r, pix)
    case.update({
        "side": side,
        "seed": XORSHIFT_SEED,
        "indices": idx,
        "pixel_subsample": [float(pix[i, j]) for i in idx for j in idx],
    })
    expected["xorshift224"] = case
    with open(OUT / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
