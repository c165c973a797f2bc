#!/usr/bin/env python3
"""Times YAMNet log-mel features in Python, for `vigil bench`.

Usage: bench_mel.py [AUDIO.npy] [--runs N] [--seconds S]

AUDIO.npy is a 1-D float32 signal at 16 kHz (vigil bench passes the 10 s it times itself);
without it, S seconds (default 10) of uniform noise with a fixed seed are used.

Prints one JSON line on stdout: {"numpy_ms": ..., "librosa_ms": ...}, the median wall time of one
whole-signal call (librosa_ms is null when librosa is not installed). Details go to stderr.

Each timed call includes its setup, like vigil's `log_mel()` (which plans the FFT and builds the
mel matrix on every call):

* numpy: the float64 reference of yamnet_features.py, mel matrix included;
* librosa: librosa.feature.melspectrogram with the equivalent settings (n_fft 512, hop 160,
  win_length 400, periodic Hann, center=False, magnitude, 64 HTK bands 125-7500 Hz, no
  normalisation; its frames sit 56 samples later and its triangles are linear in Hz, so the
  values differ slightly, the work does not) followed by log(x + 0.001).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ next to the scripts
import yamnet_features as ref  # noqa: E402


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="?", type=Path, help="1-D float32 .npy at 16 kHz")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    p = ref.P
    if args.audio is not None:
        x = np.load(args.audio).astype(np.float32, copy=False).reshape(-1)
    else:
        n = int(args.seconds * p.sample_rate)
        x = np.random.default_rng(1).uniform(-0.5, 0.5, n).astype(np.float32)
    n = len(x)
    numpy_ms = median_ms(lambda: ref.log_mel(x, p), args.runs)

    librosa_ms = None
    try:
        import librosa

        def librosa_log_mel():
            mel = librosa.feature.melspectrogram(
                y=x,
                sr=p.sample_rate,
                n_fft=p.fft,
                hop_length=p.hop,
                win_length=p.window,
                window="hann",
                center=False,
                power=1.0,
                n_mels=p.bands,
                fmin=p.fmin,
                fmax=p.fmax,
                htk=True,
                norm=None,
            )
            return np.log(mel + p.log_offset)

        librosa_ms = median_ms(librosa_log_mel, args.runs)
        librosa_version = librosa.__version__
    except ImportError:
        librosa_version = None

    frames = 1 + (n - p.window) // p.hop
    print(
        f"{n / p.sample_rate} s of audio, {frames} frames, median of {args.runs} runs; numpy "
        f"{np.__version__}, librosa {librosa_version}",
        file=sys.stderr,
    )
    print(json.dumps({"numpy_ms": round(numpy_ms, 3), "librosa_ms": None if librosa_ms is None else round(librosa_ms, 3)}))


if __name__ == "__main__":
    main()
