#!/usr/bin/env python3
"""An independent numpy forward pass of the authors' MAVD heads, for tests/training/mavd_heads.rs.

Reads the published `*.pth` files without torch (the zip layout of torch.save: a pickle whose
tensors point at raw little-endian storages), runs the inference path of the authors'
`test.py` for one crop in float64, and writes the scores for two deterministic inputs to
`tests/fixtures/mavd/reference.json`. It also writes the damaged checkpoints the bad-input
tests load (a tensor missing, one extra, a TCN alias that differs from its original).

    python3 scripts/reference/mavd_reference.py ../shared/data/mavd-weights tests/fixtures/mavd

Nothing here is vigil's code: the layers are written from the authors' PyTorch modules
(papers.md §2.2), so an error in the Rust port and one here would have to coincide.
"""
import collections
import json
import math
import os
import pickle
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


# --- reading torch.save zip files ------------------------------------------------------------

def read_state_dict(path):
    archive = zipfile.ZipFile(path)
    pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    root = pkl[: -len("data.pkl")]

    def rebuild(storage, offset, size, stride, *rest):
        flat = storage
        if not size:
            return flat[offset : offset + 1].reshape(())
        return np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]
        ).copy()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if name == "_rebuild_tensor_v2":
                return rebuild
            if name == "OrderedDict":
                return collections.OrderedDict
            if name == "FloatStorage":
                return "float32"
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

        def persistent_load(self, pid):
            _, dtype, key, _location, _numel = pid
            assert dtype == "float32", dtype
            return np.frombuffer(archive.read(f"{root}data/{key}"), "<f4").astype(np.float64)

    return Unpickler(archive.open(pkl)).load()


# --- the authors' layers ----------------------------------------------------------------------

def linear(sd, prefix, x):
    return x @ sd[prefix + ".weight"].T + sd[prefix + ".bias"]


def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(sd, prefix, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * sd[prefix + ".weight"] + sd[prefix + ".bias"]


def attention(sd, prefix, x, heads):
    n, _ = x.shape
    qkvt = x @ sd[prefix + ".to_qkv.weight"].T
    inner = qkvt.shape[1] // 4
    d = inner // heads
    q, k, v, t = (qkvt[:, i * inner : (i + 1) * inner].reshape(n, heads, d).transpose(1, 0, 2)
                  for i in range(4))
    dots = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    dots = np.exp(dots - dots.max(-1, keepdims=True))
    attn1 = dots / dots.sum(-1, keepdims=True)
    pos = np.arange(1, n + 1, dtype=np.float64)
    attn2 = np.exp(-np.abs(pos[None, :] - pos[:, None]) / math.e)
    attn2 = attn2 / attn2.sum(-1)  # broadcasts along the last axis, as the authors' code does
    out = np.concatenate([attn1 @ v, attn2 @ t], axis=-1)  # [h, n, 2d]
    out = out.transpose(1, 0, 2).reshape(n, heads * 2 * d)
    return linear(sd, prefix + ".to_out.0", out)


def conv1d_same3(sd, prefix, x):
    w, b = sd[prefix + ".weight"], sd[prefix + ".bias"]
    padded = np.concatenate([np.zeros((1, x.shape[1])), x, np.zeros((1, x.shape[1]))])
    return sum(padded[k : k + len(x)] @ w[:, :, k].T for k in range(3)) + b


def mil(sd, prefix, x):
    hidden = relu(linear(sd, prefix + ".0", x))
    return sigmoid(linear(sd, prefix + ".5", linear(sd, prefix + ".3", hidden)))[:, 0]


def unimodal(sd, x, heads=4):
    x = relu(conv1d_same3(sd, "embedding.conv_1.0", x))
    for layer in range(2):
        p = f"selfatt.layers.{layer}"
        x = attention(sd, f"{p}.0.fn", layer_norm(sd, f"{p}.0.norm", x), heads) + x
        h = layer_norm(sd, f"{p}.1.norm", x)
        x = linear(sd, f"{p}.1.fn.net.3", gelu(linear(sd, f"{p}.1.fn.net.0", h))) + x
    return x


def projection(sd, x):
    for index in (0, 3, 6):
        x = relu(linear(sd, f"regressor.{index}", x))
    return x


def causal_conv(sd, prefix, x, dilation):
    v, g, b = sd[prefix + ".weight_v"], sd[prefix + ".weight_g"], sd[prefix + ".bias"]
    w = g * v / np.sqrt((v ** 2).sum(axis=(1, 2), keepdims=True))
    kernel = w.shape[2]
    pad = (kernel - 1) * dilation
    padded = np.concatenate([np.zeros((pad, x.shape[1])), x])
    return sum(padded[k * dilation : k * dilation + len(x)] @ w[:, :, k].T
               for k in range(kernel)) + b


def fusion_features(sd, x):
    x = relu(linear(sd, "embedding.3", relu(linear(sd, "embedding.0", x))))
    for level in range(3):
        p = f"tcn.tcn.network.{level}"
        out = relu(causal_conv(sd, p + ".conv1", x, 2 ** level))
        out = relu(causal_conv(sd, p + ".conv2", out, 2 ** level))
        x = relu(out + x)
    return x


def scores(weights, video, audio, flow):
    v = unimodal(weights["v"], video)
    a = unimodal(weights["a"], audio)
    f = unimodal(weights["f"], flow)
    fused_in = np.concatenate([v, projection(weights["va"], a), projection(weights["vf"], f)], 1)
    features = fusion_features(weights["vaf"], fused_in)
    # The scores of these inputs sit near 0, where sigmoid hides differences: the tests also
    # compare the O(1) values before the MIL heads.
    return {
        "video_features": v.ravel(),
        "fusion_features": features.ravel(),
        "fused": mil(weights["vaf"], "mil.regressor", features),
        "video": mil(weights["v"], "mil.regressor", v),
        "audio": mil(weights["a"], "mil.regressor", a),
        "flow": mil(weights["f"], "mil.regressor", f),
    }


# --- inputs both sides can make -----------------------------------------------------------------

def probe_features(snippets, width, modality):
    """Non-negative like pooled ReLU features; `vigil::train::mavd::probe_features` is the same
    formula. Computed in float64, stored as float32."""
    t = np.arange(snippets, dtype=np.float64)[:, None]
    c = np.arange(width, dtype=np.float64)[None, :]
    value = 0.5 * (1.0 + np.sin(0.37 * (t + 1.0) * (modality + 1.0) + 0.013 * c * (c % 7.0 + 1.0)))
    return value.astype(np.float32).astype(np.float64)


def main(weights_dir, out):
    os.makedirs(out, exist_ok=True)
    weights = {name: read_state_dict(os.path.join(weights_dir, f"{name}_model.pth"))
               for name in ("v", "a", "f", "va", "vf", "vaf")}
    cases = []
    for snippets in (12, 40):
        video = probe_features(snippets, 1024, 0)
        audio = probe_features(snippets, 128, 1)
        flow = probe_features(snippets, 1024, 2)
        result = scores(weights, video, audio, flow)
        cases.append({"snippets": snippets,
                      **{k: [float(x) for x in v] for k, v in result.items()}})
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"source": "scripts/reference/mavd_reference.py", "cases": cases}, f, indent=1)

    # Damaged copies of the small projection and fusion files.
    import torch_fixtures as tf

    def write(path, sd):
        entries = collections.OrderedDict()
        for index, (key, value) in enumerate(sd.items()):
            raw = np.ascontiguousarray(value, "<f4")
            storage = tf.storage(str(index), "FloatStorage", raw.tobytes(), 4)
            stride = [int(s // 4) for s in raw.strides]
            entries[key] = tf.Tensor(storage, 0, raw.shape, stride)
        tf.write_zip(path, entries)

    va = weights["va"]
    missing = collections.OrderedDict((k, v) for k, v in va.items() if k != "regressor.3.bias")
    write(os.path.join(out, "va_missing_bias.pth"), missing)
    extra = collections.OrderedDict(va)
    extra["regressor.9.weight"] = np.ones((32, 32))
    write(os.path.join(out, "va_extra_layer.pth"), extra)
    vaf = collections.OrderedDict(weights["vaf"])
    vaf["tcn.tcn.network.1.net.4.bias"] = vaf["tcn.tcn.network.1.net.4.bias"] + 0.5
    write(os.path.join(out, "vaf_alias_differs.pth"), vaf)
    print(f"wrote {out}: {[c['snippets'] for c in cases]} snippets, fused[0] = "
          f"{cases[0]['fused'][0]:.6f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
