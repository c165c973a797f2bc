#!/usr/bin/env python3
"""The peer of `vigil bench hsi`'s streaming RX: exact causal RX per push-broom line, the same
work vigil does per line, in numpy and scipy.

Usage: python3 scripts/bench/streaming_peer.py --lines PATH.npy --seconds S

PATH.npy holds L×W×B float32 lines, replayed in a loop as vigil's bench replays them. The first
4 lines warm the statistics up untimed; then, for S seconds, each line is:
  merged into float64 running sums (the line's mean and scatter about it, Chan et al.'s update),
  factored (np.linalg.cholesky of the unbiased covariance),
  scored (scipy.linalg.solve_triangular of the centred line in float32, squared norms).
One JSON line goes out on stdout:
  {"lines_per_s", "lines", "threads", "numpy_version", "scipy_version"}
threads  the BLAS thread count numpy runs with (OPENBLAS_NUM_THREADS etc. as the caller set).
"""
import argparse
import json
import time

import numpy as np
import scipy
from scipy.linalg import solve_triangular

from blas import blas_threads


class StreamingRx:
    def __init__(self, bands):
        self.count = 0
        self.mean = np.zeros(bands)
        self.scatter = np.zeros((bands, bands))

    def add(self, line):
        x = line.astype(np.float64)
        k = x.shape[0]
        mean = x.mean(axis=0)
        d = x - mean
        delta = mean - self.mean
        n = self.count
        self.scatter += d.T @ d + np.outer(delta, delta) * (n * k / (n + k))
        self.mean += delta * (k / (n + k))
        self.count = n + k

    def score(self, line):
        lower = np.linalg.cholesky(self.scatter / (self.count - 1)).astype(np.float32)
        centred = (line - self.mean.astype(np.float32)).T
        y = solve_triangular(lower, centred, lower=True, check_finite=False)
        return np.einsum("ij,ij->j", y, y)


def main():
    parser = argparse.ArgumentParser(description="numpy/scipy streaming RX lines per second")
    parser.add_argument("--lines", required=True, help="L×W×B float32 .npy")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    lines = np.load(args.lines)
    if lines.ndim != 3 or lines.shape[0] < 5:
        parser.error(f"{args.lines}: expected at least 5 lines of W×B, got shape {lines.shape}")
    lines = np.ascontiguousarray(lines, dtype=np.float32)
    rx = StreamingRx(lines.shape[2])
    for row in range(4):
        rx.add(lines[row])
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        line = lines[done % lines.shape[0]]
        rx.add(line)
        rx.score(line)
        done += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "lines_per_s": done / elapsed,
        "lines": done,
        "threads": blas_threads(),
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
    }))


if __name__ == "__main__":
    main()
