#!/usr/bin/env python3
"""The peers of `vigil bench hsi`: global RX by SPy (`spectral.rx`) and by plain numpy.

Usage: python3 scripts/bench/hsi_peer.py --cube PATH.npy --repeats N

PATH.npy holds an H×W×B float32 cube. Each detector runs once to warm up, then N timed times;
the medians go out as ONE JSON line on stdout:
  {"spy_rx_ms", "numpy_rx_ms", "threads", "spy_version", "numpy_version",
   "repeats", "shape", "spy_vs_numpy_max_rel_diff"}
spy_rx_ms    spectral.rx(cube): SPy's own statistics (np.average mean, np.cov covariance with
             N − 1, np.linalg.pinv with numpy's default rcond 1e-15 through an SVD), on the cube
             as given (no normalisation: RX does not change under x → a·x + b).
numpy_rx_ms  the float64 global RX of scripts/reference/hsi_detectors.py, timed whole: min–max
             normalisation, mean, unbiased covariance, pinv(rcond=1e-15, hermitian=True) and
             the quadratic forms.
threads      the thread count of the BLAS numpy calls (OpenBLAS/MKL/BLIS, asked through ctypes),
             or null where it cannot be told.
spy_vs_numpy_max_rel_diff  largest |SPy − numpy| over the largest numpy score (a sanity check).
Exits 3 with one line on stderr when `spectral` cannot be imported (pip install spectral, or
set PYTHON for vigil to an interpreter that has it).
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

from blas import blas_threads

try:
    import spectral
except ImportError as err:
    print(f"hsi_peer.py: cannot import spectral ({err}); pip install spectral", file=sys.stderr)
    sys.exit(3)


def numpy_rx(cube):
    """Global RX as defined for vigil: normalise, mean, Σ (N − 1), Σ⁺, (x−μ)ᵀΣ⁺(x−μ)."""
    h, w, b = cube.shape
    x = cube.reshape(h * w, b).astype(np.float64)
    lo, hi = x.min(), x.max()
    if not hi > lo:
        raise ValueError("constant cube")
    x = (x - lo) / (hi - lo)
    mu = x.mean(axis=0)
    d = x - mu
    cov = d.T @ d / (h * w - 1)
    inv = np.linalg.pinv(cov, rcond=1e-15, hermitian=True)
    return np.einsum("ij,ij->i", d @ inv, d).reshape(h, w)


def spy_rx(cube):
    return spectral.rx(cube)


def median_ms(fn, cube, repeats):
    result = fn(cube)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(cube)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description="SPy and numpy global RX timings")
    parser.add_argument("--cube", required=True, help="H×W×B float32 .npy")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    cube = np.load(args.cube)
    if cube.ndim != 3:
        parser.error(f"{args.cube}: expected an H×W×B array, got shape {cube.shape}")
    cube = np.ascontiguousarray(cube, dtype=np.float32)

    spy_ms, spy_scores = median_ms(spy_rx, cube, args.repeats)
    numpy_ms, numpy_scores = median_ms(numpy_rx, cube, args.repeats)
    diff = float(np.abs(spy_scores - numpy_scores).max() / np.abs(numpy_scores).max())
    print(json.dumps({
        "spy_rx_ms": spy_ms,
        "numpy_rx_ms": numpy_ms,
        "threads": blas_threads(),
        "spy_version": spectral.__version__,
        "numpy_version": np.__version__,
        "repeats": args.repeats,
        "shape": list(cube.shape),
        "spy_vs_numpy_max_rel_diff": diff,
    }))


if __name__ == "__main__":
    main()
