#!/usr/bin/env python3
"""The surveillance pipeline's cost per snippet, stage by stage, with onnxruntime timed on the
same ONNX files and inputs in the same run.

`vigil-train mavd bench` runs generated camera + microphone input through vigil's whole chain
(GStreamer → snippets → MobileNetV2 RGB features, YAMNet embedding, DIS flow descriptor →
MAVD-edge window head) and reports the median time of each stage per 0.667 s snippet and the
real-time factor. This script then times onnxruntime (one thread, as vigil) on the RGB
extractor and the head, and prints the ratios. (Flow against OpenCV: scripts/bench/flow.py.)

    python3 scripts/bench/mavd.py target/release/vigil-train [--seconds 20] [--window 24]

Needs numpy and onnxruntime (PyPI).
"""
import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort


def median_ms(session, feeds, repeats):
    session.run(None, feeds)
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - clock) * 1e3)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("vigil_train")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        out = pathlib.Path(out)
        run = subprocess.run([args.vigil_train, "mavd", "bench", "--out", str(out),
                              "--seconds", str(args.seconds), "--window", str(args.window)],
                             check=True, capture_output=True, text=True)
        vigil = json.loads(run.stdout.strip().splitlines()[-1])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        rgb = ort.InferenceSession(vigil["rgb_model"], options, providers=["CPUExecutionProvider"])
        image = {"image": np.load(out / "image.npy")}
        rgb_frame = median_ms(rgb, image, args.repeats)
        # The same files must mean the same thing to both runtimes.
        rgb_gap = np.abs(rgb.run(None, image)[0] - np.load(out / "rgb_features.npy")).max()
        head = ort.InferenceSession(vigil["head_model"], options,
                                    providers=["CPUExecutionProvider"])
        feeds = {name: np.load(out / f"{name}.npy")
                 for name in ("video", "audio", "flow", "key_bias", "local_kernel")}
        head_ms = median_ms(head, feeds, args.repeats)
        head_gap = np.abs(head.run(["fused"], feeds)[0] - np.load(out / "head_fused.npy")).max()

    frames = 4  # RGB features from every 4th of a snippet's 16 frames
    print(f"MAVD-edge pipeline, {vigil['snippets']} snippets of 0.667 s, window "
          f"{vigil['window']}, one thread per model")
    print(f"{'stage':34}{'vigil ms':>10}{'onnxruntime ms':>16}{'ratio':>8}")
    print(f"{'RGB: MobileNetV2 features, 4 frames':34}{vigil['rgb_ms']:10.1f}"
          f"{frames * rgb_frame:16.1f}{vigil['rgb_ms'] / (frames * rgb_frame):8.2f}")
    print(f"{'audio: YAMNet embedding':34}{vigil['audio_ms']:10.1f}{'':>16}{'':>8}")
    print(f"{'flow: DIS, 15 pairs + descriptor':34}{vigil['flow_ms']:10.1f}{'':>16}{'':>8}")
    print(f"{'head: MAVD window':34}{vigil['head_ms']:10.1f}{head_ms:16.1f}"
          f"{vigil['head_ms'] / head_ms:8.2f}")
    total = vigil["rgb_ms"] + vigil["audio_ms"] + vigil["flow_ms"] + vigil["head_ms"]
    print(f"{'all stages':34}{total:10.1f} ms per 666.7 ms snippet "
          f"({666.7 / total:.1f}x real time on one core)")
    print(f"whole run, capture and decoding included: {vigil['real_time_factor']:.2f}x real time")
    print(f"tract vs onnxruntime on the same inputs: RGB features {rgb_gap:.1e}, "
          f"head scores {head_gap:.1e}")
    if rgb_gap > 1e-3 or head_gap > 1e-4:
        raise SystemExit("tract and onnxruntime disagree on vigil's ONNX files")


if __name__ == "__main__":
    main()
