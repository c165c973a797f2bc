#!/usr/bin/env python3
"""Records onnxruntime's YAMNet outputs on fixed quantized patches, for tests/references/networks_parity.rs.

The patches are quantized log-mel features of deterministic signals (tones, a chirp, noise,
gunshot-like blasts, silence) plus a few random u8 patches that probe the whole input range.
onnxruntime runs a QDQ graph two ways: with its default optimizations it fuses the QDQ pairs
into integer kernels (QLinearConv, requantizing in fixed point), and with optimizations off it
computes each Conv in float between QuantizeLinear/DequantizeLinear, which is the ONNX
definition of the graph and what tract does. The two disagree with each other by up to a few
output steps, so both are recorded: `logits_exact.npy`/`embedding_exact.npy` (optimizations
off) and `logits.npy`/`embedding.npy` (defaults, what users of onnxruntime get).

Writes tests/fixtures/yamnet/*.npy. Needs numpy, onnx, onnxruntime and the model fetched by
scripts/fetch-models.sh.
"""
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/cache/yamnet/model.onnx"
OUT = ROOT / "tests/fixtures/yamnet"
EMBEDDING = "/model/Reshape_output_0_qdq"
RATE = 16000


def mel_matrix(bands=64, fft=512, lo=125.0, hi=7500.0):
    """HTK-mel triangles on the FFT bin centres, DC weight zeroed (YAMNet's layout)."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f) / 700.0)
    bins = mel(np.linspace(0.0, RATE / 2, fft // 2 + 1))
    edges = np.linspace(mel(lo), mel(hi), bands + 2)
    lower = (bins[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[None, 2:] - bins[:, None]) / (edges[2:] - edges[1:-1])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights[0, :] = 0.0
    return weights


def log_mel(x):
    window, hop = 400, 160
    frames = 1 + (len(x) - window) // hop
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    stack = np.stack([x[i * hop : i * hop + window] * hann for i in range(frames)])
    return np.log(np.abs(np.fft.rfft(stack, 512)) @ mel_matrix() + 0.001)


def patches(x, scale, zero_point):
    lm = log_mel(x.astype(np.float64))
    out = [lm[s : s + 96] for s in range(0, lm.shape[0] - 96 + 1, 48)]
    return [np.clip(np.round(p / scale) + zero_point, 0, 255).astype(np.uint8) for p in out]


def signals(rng):
    t = np.arange(int(2.0 * RATE)) / RATE
    blast = np.zeros_like(t)
    s = np.arange(int(1.0 * RATE)) / RATE
    shot = rng.standard_normal(s.size) * np.exp(-s / 0.06) + 1.5 * np.sin(
        2 * np.pi * 90 * s * np.exp(-s / 0.5)
    ) * np.exp(-s / 0.15)
    blast[RATE // 2 : RATE // 2 + s.size] = np.tanh(4 * shot / np.abs(shot).max()) / np.tanh(4)
    return {
        "tone_1k": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "chirp": 0.5 * np.sin(2 * np.pi * (100 * t + 900 * t**2)),
        "noise": 0.1 * rng.standard_normal(t.size),
        "gunshot": 0.95 * blast + 0.01 * rng.standard_normal(t.size),
        "silence": np.zeros_like(t),
    }


def main():
    if not MODEL.exists():
        sys.exit(f"model missing, run scripts/fetch-models.sh: {MODEL}")
    model = onnx.load(str(MODEL))
    params = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    scale, zero_point = float(params["audio_scale"]), int(params["audio_zero_point"])
    model.graph.output.append(onnx.helper.make_tensor_value_info(EMBEDDING, onnx.TensorProto.FLOAT, [1, 1024]))
    serialized = model.SerializeToString()
    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    exact_options = ort.SessionOptions()
    exact_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exact = ort.InferenceSession(serialized, exact_options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(20261126)
    batch = []
    for name, x in signals(rng).items():
        batch.extend(patches(x, scale, zero_point))
    batch.extend(rng.integers(0, 256, size=(3, 96, 64), dtype=np.uint8))
    inputs = np.stack(batch)[:, None]
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "patches.npy", inputs)
    for suffix, sess in (("", session), ("_exact", exact)):
        logits, embeddings = [], []
        for patch in inputs:
            out = sess.run(["class_scores", EMBEDDING], {"audio": patch[None]})
            logits.append(out[0][0])
            embeddings.append(out[1][0])
        np.save(OUT / f"logits{suffix}.npy", np.stack(logits).astype(np.uint8))
        np.save(OUT / f"embedding{suffix}.npy", np.stack(embeddings).astype(np.float32))
    print(f"{len(inputs)} patches, onnxruntime {ort.__version__}, written to {OUT}")


if __name__ == "__main__":
    main()
