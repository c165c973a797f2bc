#!/usr/bin/env python3
"""onnxruntime's side of `vigil bench --suite models`: one network in onnxruntime's forms, at
each thread count, on the inputs vigil used.

Usage: models_peer.py --input NAME=BATCH.npy [--input ...] [--fp32 FP32.onnx]
                      [--published PUBLISHED.onnx] --threads 1,2 --runs R

- `fp32`: the network's fp32 graph as onnxruntime runs it (all its graph optimisations on);
- `int8`: onnxruntime's own int8 of that fp32 graph: quantize_static, QDQ, per-channel int8
  weights, uint8 activations, calibrated on the inputs (what onnxruntime's documentation
  recommends for CNNs on x86);
- `published`: a file as its authors published it (YAMNet's QDQ int8, whose fp32 graph is not
  public), run as is.

With --shipped and --vigil-output, also the largest |vigil - onnxruntime| over each output of
the file vigil ran, on item 0 of the inputs ("max_difference"); with --save-outputs DIR, those
onnxruntime outputs as DIR/peer-out-<i>.npy (f32), the reference `tests/references/networks_parity.rs`
holds another build of vigil (aarch64 under qemu) to.

Each BATCH.npy holds [N, *the input's full shape]; run i feeds item i of every input (cycling). Prints
one JSON object: {"version": ..., "forms": {FORM: {THREADS: median_ms}}, "errors": {...}}.
A form onnxruntime cannot build (its quantizer failing, say) is reported under "errors", not
raised: it is a result.
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds(inputs, i):
    """Item i of every batch: a batch is [N, *the input's shape]."""
    return {name: batch[i % len(batch)] for name, batch in inputs.items()}


def median_ms(path, inputs, threads, runs):
    s = session(path, threads)
    wanted = {i.name for i in s.get_inputs()}
    given = {n: b for n, b in inputs.items() if n in wanted}
    missing = wanted - set(given)
    if missing:
        raise ValueError(f"no input batch for {sorted(missing)}")
    for i in range(min(5, runs)):
        s.run(None, feeds(given, i))
    times = []
    for i in range(runs):
        x = feeds(given, i)
        start = time.perf_counter()
        s.run(None, x)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def quantize(fp32, inputs, out):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    count = min(len(b) for b in inputs.values())

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.items = iter([feeds(inputs, i) for i in range(count)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        fp32,
        out,
        Batches(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", action="append", default=[], help="NAME=BATCH.npy")
    parser.add_argument("--fp32")
    parser.add_argument("--published")
    parser.add_argument("--shipped", help="the file vigil ran, for --vigil-output")
    parser.add_argument("--vigil-output", action="append", default=[],
                        help="vigil's outputs of the shipped file on item 0, in graph order")
    parser.add_argument("--save-outputs", help="folder for onnxruntime's outputs on item 0")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    inputs = {}
    for item in args.input:
        name, _, path = item.partition("=")
        inputs[name] = np.load(path)
    threads = [int(t) for t in args.threads.split(",")]
    result = {"version": ort.__version__, "forms": {}, "errors": {}}

    def measure(form, path):
        try:
            result["forms"][form] = {
                str(t): median_ms(path, inputs, t, args.runs) for t in threads
            }
        except Exception as err:  # noqa: BLE001 - reported as the form's result
            result["errors"][form] = f"{type(err).__name__}: {err}"

    if args.shipped and args.vigil_output:
        # The same file in onnxruntime on the same input: the largest difference per output.
        s = session(args.shipped, 1)
        wanted = {i.name for i in s.get_inputs()}
        outs = s.run(None, {n: b[0] for n, b in inputs.items() if n in wanted})
        if args.save_outputs:
            for i, o in enumerate(outs):
                np.save(os.path.join(args.save_outputs, f"peer-out-{i}.npy"), o.astype(np.float32))
        result["max_difference"] = [
            float(np.max(np.abs(o.astype(np.float64) - np.load(p).astype(np.float64))))
            if o.size else 0.0
            for o, p in zip(outs, args.vigil_output)
        ]

    with tempfile.TemporaryDirectory() as tmp:
        if args.fp32:
            measure("fp32", args.fp32)
            out = os.path.join(tmp, "int8.onnx")
            try:
                quantize(args.fp32, inputs, out)
                measure("int8", out)
            except Exception as err:  # noqa: BLE001
                result["errors"]["int8"] = f"quantize_static: {type(err).__name__}: {err}"
        if args.published:
            measure("published", args.published)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
