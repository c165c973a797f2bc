#!/usr/bin/env python3
"""The peers of vigil's PatchCore in `vigil bench --suite industrial`, on the inputs vigil used.

Usage: patchcore_peer.py BACKBONE.onnx INPUTS.npy BANK.npy QUERIES.npy --runs R

- the backbone in onnxruntime, fp32 (the same graph vigil runs: MobileNetV2 cut at two taps,
  plain Conv/BatchNorm-folded/Clip ops, nothing shaped for tract) and onnxruntime's own int8 of
  it (quantize_static, QDQ, per-channel weights, calibrated on INPUTS), one thread each;
- the nearest-neighbour search in numpy on one BLAS thread: the same blocked distance product
  vigil runs, ||q||^2 + ||b||^2 - 2 q.b^T and a min over the bank.

INPUTS.npy holds normalised frames [N, 3, S, S]; BANK.npy the bank [M, D]; QUERIES.npy one
frame's patch features [P, D]. Prints one JSON object with median milliseconds of each.
"""
import argparse
import json
import os
import tempfile
import time

# One BLAS thread, as vigil's search runs on one; set before numpy loads its BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

# The same int8 recipe as every other network's peer (models_peer.py, beside this file).
from models_peer import quantize  # noqa: E402


def median_ms(run, runs):
    for _ in range(min(5, runs)):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def backbone_ms(path, inputs, runs):
    s = session(path)
    name = s.get_inputs()[0].name
    frame = inputs[:1]
    return median_ms(lambda: s.run(None, {name: frame}), runs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("backbone")
    parser.add_argument("inputs")
    parser.add_argument("bank")
    parser.add_argument("queries")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    inputs = np.load(args.inputs).astype(np.float32)
    bank = np.load(args.bank).astype(np.float32)
    queries = np.load(args.queries).astype(np.float32)
    result = {"version": ort.__version__, "numpy": np.__version__}
    result["fp32_ms"] = backbone_ms(args.backbone, inputs, args.runs)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "int8.onnx")
            # models_peer batches are [N, *the input's shape], the input's shape [1, 3, S, S].
            quantize(args.backbone, {"image": inputs[:, None]}, out)
            result["int8_ms"] = backbone_ms(out, inputs, args.runs)
    except Exception as err:  # the peer's own quantizer failing is a result, not a crash
        result["int8_ms"] = None
        result["int8_error"] = str(err)

    bank_norms = (bank * bank).sum(axis=1)

    def search():
        products = queries @ bank.T
        d2 = (queries * queries).sum(axis=1)[:, None] + bank_norms[None, :] - 2.0 * products
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))

    result["search_ms"] = median_ms(search, args.runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
