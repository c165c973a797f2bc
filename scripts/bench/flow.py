#!/usr/bin/env python3
"""Dense optical flow: vigil's DIS against OpenCV's DIS presets and Farneback, in one run.

Frame pairs with known motion are made from real photos (affine motions, a large
translation, and a foreground layer moving over a background, with occlusion). OpenCV runs
on them here; `vigil flow-bench` runs on the same files; the table gives each method's mean
endpoint error and median time per pair, and vigil's time as a ratio of OpenCV's same preset.
Both run on one thread (cv2.setNumThreads(1); vigil's search is single-threaded).

    python3 scripts/bench/flow.py target/release/vigil [--size 320x240] [--repeats 9]

Needs numpy and opencv-python-headless (PyPI).
"""
import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
PHOTOS = sorted((ROOT / "models/cache/photos").glob("*.png"))


def affine_pair(image, matrix):
    """The second frame is the first moved by `matrix` (2×3); the true flow of first-frame
    pixel x is matrix·[x, 1] − x."""
    h, w = image.shape
    second = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs
    v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys
    return second, np.stack([u, v]).astype(np.float32)


def layered_pair(background, foreground, box, bg_shift, fg_shift):
    """A foreground rectangle (from another photo) moving over a moving background."""
    h, w = background.shape
    x0, y0, bw, bh = box
    shift = lambda dx, dy: np.float64([[1, 0, dx], [0, 1, dy]])  # noqa: E731
    first = background.copy()
    first[y0:y0 + bh, x0:x0 + bw] = foreground[:bh, :bw]
    second, flow = affine_pair(background, shift(*bg_shift))
    layer = np.zeros_like(background)
    layer[y0:y0 + bh, x0:x0 + bw] = foreground[:bh, :bw]
    mask = np.zeros_like(background)
    mask[y0:y0 + bh, x0:x0 + bw] = 255
    moved_layer = cv2.warpAffine(layer, shift(*fg_shift), (w, h), flags=cv2.INTER_CUBIC)
    moved_mask = cv2.warpAffine(mask, shift(*fg_shift), (w, h), flags=cv2.INTER_NEAREST)
    second = np.where(moved_mask > 0, moved_layer, second)
    flow[0, y0:y0 + bh, x0:x0 + bw] = fg_shift[0]
    flow[1, y0:y0 + bh, x0:x0 + bw] = fg_shift[1]
    return first, second, flow


def sequences(width, height):
    grey = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY), (width, height),
                       interpolation=cv2.INTER_AREA) for p in PHOTOS]
    if len(grey) < 2:
        raise SystemExit(f"needs two photos in {ROOT / 'models/cache/photos'} "
                         "(scripts/fetch-photos.sh)")
    centre = (width / 2, height / 2)
    rotation = cv2.getRotationMatrix2D(centre, 3.0, 1.03)
    out = {}
    for name, image in zip(("a", "b"), grey[:2]):
        out[f"{name}-translate"] = (image, *affine_pair(image, np.float64([[1, 0, 3.3], [0, 1, -1.7]])))
        out[f"{name}-rotate-zoom"] = (image, *affine_pair(image, rotation))
        out[f"{name}-large"] = (image, *affine_pair(image, np.float64([[1, 0, 12.5], [0, 1, 6.0]])))
    box = (width // 3, height // 3, width // 4, height // 4)
    first, second, flow = layered_pair(grey[0], grey[1], box, (1.0, 0.0), (7.5, 3.0))
    out["layers"] = (first, second, flow)
    return out


def opencv_methods():
    dis = lambda preset: cv2.DISOpticalFlow_create(preset)  # noqa: E731
    methods = {
        "opencv-dis-ultrafast": dis(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
        "opencv-dis-fast": dis(cv2.DISOPTICAL_FLOW_PRESET_FAST),
        "opencv-dis-medium": dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    }
    calls = {name: (lambda m: lambda a, b: m.calc(a, b, None))(m) for name, m in methods.items()}
    calls["opencv-farneback"] = lambda a, b: cv2.calcOpticalFlowFarneback(
        a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return calls


def endpoint_error(flow_hw2, truth_2hw):
    du = flow_hw2[..., 0] - truth_2hw[0]
    dv = flow_hw2[..., 1] - truth_2hw[1]
    return float(np.mean(np.sqrt(du * du + dv * dv)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("vigil")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    cv2.setNumThreads(1)
    results = []
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        for name, (first, second, truth) in sequences(width, height).items():
            np.save(work / f"{name}.frames.npy", np.stack([first, second]).astype(np.uint8))
            np.save(work / f"{name}.flow.npy", truth.astype(np.float32))
            for method, call in opencv_methods().items():
                times = []
                for _ in range(args.repeats):
                    clock = time.perf_counter()
                    flow = call(first, second)
                    times.append((time.perf_counter() - clock) * 1e3)
                results.append({"sequence": name, "method": method,
                                "endpoint_error": endpoint_error(flow, truth),
                                "median_ms": float(np.median(times))})
        run = subprocess.run([args.vigil, "flow-bench", str(work), "--repeats", str(args.repeats)],
                             check=True, capture_output=True, text=True)
        results += [json.loads(line) for line in run.stdout.splitlines() if line.strip()]

    names = sorted({r["sequence"] for r in results})
    methods = list(dict.fromkeys(r["method"] for r in results))
    table = {(r["sequence"], r["method"]): r for r in results}
    print(f"Dense flow at {width}×{height}, one thread, median of {args.repeats} runs per pair")
    print("mean endpoint error (px) per sequence:")
    print(f"{'method':24}" + "".join(f"{n:>16}" for n in names) + f"{'mean':>10}")
    for method in methods:
        errors = [table[(n, method)]["endpoint_error"] for n in names]
        print(f"{method:24}" + "".join(f"{e:16.3f}" for e in errors) + f"{np.mean(errors):10.3f}")
    print("median time per pair (ms), and vigil / OpenCV for the same preset:")
    for method in methods:
        ms = np.mean([table[(n, method)]["median_ms"] for n in names])
        line = f"{method:24}{ms:10.2f} ms  ({1000 / ms:7.1f} pairs/s)"
        if method.startswith("vigil-"):
            peer = method.replace("vigil-", "opencv-")
            peer_ms = np.mean([table[(n, peer)]["median_ms"] for n in names])
            line += f"   ×{ms / peer_ms:.2f} of {peer}"
        print(line)


if __name__ == "__main__":
    main()
