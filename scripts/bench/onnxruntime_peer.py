#!/usr/bin/env python3
"""onnxruntime's side of `vigil bench`: median latency of one model on the inputs vigil used.

Usage: onnxruntime_peer.py MODEL.onnx INPUT.npy --threads N --runs R
INPUT.npy holds a batch of inputs along axis 0; each run feeds one of them (cycling), exactly as
vigil does. Prints one JSON object: {"median_ms": ..., "p90_ms": ..., "runs": ..., "version": ...}.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = np.load(args.inputs)
    for i in range(min(10, args.runs)):
        session.run(None, {name: batch[i % len(batch)][None]})
    times = []
    for i in range(args.runs):
        x = batch[i % len(batch)][None]
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({
        "median_ms": times[len(times) // 2],
        "p90_ms": times[int(len(times) * 0.9)],
        "runs": args.runs,
        "version": ort.__version__,
    }))


if __name__ == "__main__":
    main()
