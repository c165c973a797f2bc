#!/usr/bin/env bash
# The test command: installs what is missing, then lints, runs every test on x86_64, and runs
# the library's tests (tract's NEON kernels included), every shipped network against
# onnxruntime's outputs and the other reference checks for aarch64 under qemu-user.
#
#   scripts/test.sh           everything (CI runs this; under 30 minutes on 2 idle cores)
#   scripts/test.sh --quick   local work: lint, unit tests and the fast integration binaries
#                             (inputs, references, runtime), no training, bench or ARM build
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac
if [ "$quick" = 1 ]; then VIGIL_CROSS=0 bash scripts/deps.sh; else bash scripts/deps.sh; fi
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/fetch-models.sh

cargo fmt --all -- --check
# The whole workspace in one build (the GStreamer element's crate beside the runtime, with the
# training companion's feature), so the runtime library is compiled once for both. The
# element's tests are a gst_check harness and gst-launch-1.0 loading libgstvigil.so.
if [ "$quick" = 1 ]; then
  cargo clippy --release --workspace --all-targets --features vigil/train -- -D warnings
  # Every shipped network against onnxruntime needs the models bench's references: full run.
  cargo test --release --features vigil/train --lib --test inputs --test references --test runtime \
    -- --skip networks_parity
  exit 0
fi
# Linted while built: clippy-driver is rustc with clippy's lints (what `cargo clippy` runs), so
# as the workspace members' compiler wrapper it lints every target this build compiles (lib,
# binaries, tests, the example; there are no benches) with the same -D warnings, and the
# dependencies are compiled once instead of a second time in check mode (~150 s of CI's run).
# Exported for the x86_64 commands below, which reuse this build; not for the aarch64 build.
export RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# One build for the binaries and the tests: `cargo build` would resolve features without the
# dev-dependencies (tempfile, serde_json's preserve_order) and `cargo test` would then compile
# burn and tract-onnx a second time for the changed serde_json, fastrand and rustix.
cargo test --release --workspace --features vigil/train --no-run
work=$(mktemp -d)
arm_build=
trap '[ -n "$arm_build" ] && kill "$arm_build" 2>/dev/null; rm -rf "$work"' EXIT

# onnxruntime and numpy for the peers and reference checks (PyPI, in a virtual environment
# under target/ so the system Python is left alone).
pyref=target/pyref
if ! "$pyref/bin/python" -c "import numpy, onnx, onnxruntime" 2>/dev/null; then
  python3 -m venv "$pyref"
  "$pyref/bin/pip" install --quiet numpy onnx onnxruntime
fi
# Every shipped network against onnxruntime's forms of it, 1 and 2 threads (few runs: this
# checks that each row is measured on both sides, the README's table takes more). It leaves
# onnxruntime's outputs of each shipped file in $work/references, which tests/references/networks_parity.rs
# holds this build to here and the aarch64 build to under qemu below.
PYTHON="$pyref/bin/python" target/release/vigil bench --suite models --runs 5 --json "$work/models.json" \
  --references "$work/references"
export VIGIL_NETWORK_REFERENCES="$work/references"
"$pyref/bin/python" - "$work/models.json" <<'PY'
import json, math, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) >= 6, rows
for row in rows:
    assert all(math.isfinite(ms) and ms > 0 for ms in row["vigil_ms"]), row
    assert row["peer_ms"], f"no onnxruntime form ran for {row['network']}: {row['peer_errors']}"
    # The patched tract against onnxruntime on the same file: fp32 graphs agree to float
    # rounding (int8 graphs differ by rounding ties; their numbers are in models/README.md).
    if row["form"] == "fp32":
        assert max(row["max_difference"]) < 1e-4, row
PY

# The aarch64 build (checked at the end) starts now at the lowest priority, in its own target
# folder (cargo locks one per build), and uses the CPU time the x86 tests below leave idle
# while they wait on brokers, restarts and timeouts. Nice 19 leaves the tests ~98 % of a
# contended core, so their timing checks see the machine they would see alone.
# The documented ARM build: without GStreamer, with the MQTT and webhook sinks.
arm=(--release --target aarch64-unknown-linux-gnu --no-default-features --features mqtt,webhook
  --lib --test references)
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
CARGO_TARGET_DIR=target/cross nice -n 19 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
  cargo test "${arm[@]}" --no-run >"$work/arm-build.log" 2>&1 &
arm_build=$!

cargo test --release --workspace --features vigil/train

# vigil-train through its command line, then its ONNX files against onnxruntime.
train=target/release/vigil-train
$train toy make-data "$work/data" --train 1200 --val 300 --test 300
$train toy train --data "$work/data" --out "$work/run" --epochs 3 --batch-size 32
$train toy export "$work/run"
$train toy quantize "$work/run"
$train toy eval "$work/run"
$train mobilenet convert --out "$work/mobilenet"
$train mobilenet classify --model "$work/mobilenet/mobilenet_v2.onnx" models/cache/photos/*.png
# Hyperspectral: a HAD100-layout set mixed from earthlib's spectra, scored from the command line,
# and a real ABU scene through SLRX with its anomaly map.
$train fers make-data --out "$work/fers" --train 2 --test 2 --size 32 --bands 50
target/release/vigil hsi "$work/fers/test/synthetic/test_0000.npy" --scores "$work/fers/scores.npy"
target/release/vigil hsi ../shared/data/hsi/abu-urban-1.mat --detector slrx --map "$work/urban-1.png"
# FERS-edge through its commands on a small configuration (50 bands: the Hadamard fusion), and
# the shipped 200-band model from `vigil hsi`.
$train fers make-data --out "$work/fers64" --train 2 --test 2 --size 64 --bands 50 --fill 0.1
$train fers train --data "$work/fers64" --sources synthetic --out "$work/fers-run" --bands 50 \
  --ferd-epochs 1 --student-epochs 1 --batch-size 2
$train fers export --run "$work/fers-run"
$train fers eval --run "$work/fers-run" --scenes ../shared/data/hsi
target/release/vigil hsi ../shared/data/hsi/abu-urban-2.mat --detector fers --scores "$work/fers.npy"
# ISSTAD-edge through its commands on the tiny configuration (one brick category made from the
# real texture), then the shipped models' speed against onnxruntime and int8 against fp32.
$train isstad make-data --out "$work/isstad" --side 64 --train 24 --test-good 4 --test-per-defect 1
$train isstad train --data "$work/isstad/brick" --out "$work/isstad-run" --size tiny \
  --mae-epochs 1 --pixel-epochs 1 --validation-every 6 --batch-size 8
$train isstad export --run "$work/isstad-run"
$train isstad eval --run "$work/isstad-run" --install "$work/isstad-models"
# PatchCore through its commands: the backbone exported again (it must be byte for byte the
# shipped file), a small brick category at the fitted scale, fit on its good images (the
# thresholds on its validation/good), evaluated on its test set and installed.
$train industrial backbone --out "$work/backbone.onnx"
cmp "$work/backbone.onnx" models/patchcore/mobilenet_v2_patch_features.onnx
$train isstad make-data --out "$work/patchcore" --side 224 --train 20 --test-good 6 --test-per-defect 2 \
  --validation 6
$train industrial fit --data "$work/patchcore/brick" --out "$work/patchcore-run"
$train industrial eval --run "$work/patchcore-run" --install "$work/patchcore-models"
# The same fit on the backbone with int8 convolutions (calibrated on the category's good images).
$train industrial quantize --data "$work/patchcore/brick" --out "$work/backbone-int8.onnx" \
  --calibration-images 4
$train industrial fit --data "$work/patchcore/brick" --backbone "$work/backbone-int8.onnx" \
  --out "$work/patchcore-int8-run"
$train industrial eval --run "$work/patchcore-int8-run"
# ISSTAD's pixel classifier on the same frozen backbone, one epoch: fit, export, eval, install.
$train industrial fit --method isstad --data "$work/patchcore/brick" --out "$work/isstad-mnv2-run" \
  --epochs 1 --batch-size 8
$train industrial eval --run "$work/isstad-mnv2-run" --install "$work/isstad-mnv2-models"
# MAVD: the authors' heads imported (every tensor checked) and exported as the runtime's
# sliding-window graph, checked against burn.
$train mavd import --out "$work/mavd-authors"
$train mavd export --run "$work/mavd-authors" --window 24 --out "$work/mavd-window.onnx"
for profile in targets/*.toml; do target/release/vigil check "$profile"; done
# Overload: two factory-line streams at twice what the model takes, a minute through the whole
# runtime (scripts/soak.sh runs the hour-long release soak).
target/release/vigil soak --seconds 60 --work "$work/soak"
"$pyref/bin/python" scripts/reference/check_onnx_ort.py "$train" \
  "$work/run/model.onnx" "$work/run/model-int8.onnx" "$work/mobilenet/mobilenet_v2.onnx" \
  models/fers-edge/*.onnx models/isstad-edge/*.onnx models/patchcore/*.onnx
# The surveillance pipeline stage by stage, with onnxruntime on the same extractor and head.
"$pyref/bin/python" scripts/bench/mavd.py "$train" --seconds 6 --repeats 5

# aarch64: GStreamer can't be cross-built here, so the ARM build leaves its feature out. The
# library's tests and the reference checks (every shipped network against onnxruntime's
# outputs, the detectors, readers and front end against numpy) run under qemu-user; the
# eight-scene AUC reproduction (minutes under emulation, no other kernel) runs on x86 only.
if ! wait "$arm_build"; then
  arm_build=
  cat "$work/arm-build.log" >&2
  echo "the aarch64 build failed (its log above)" >&2
  exit 1
fi
arm_build=
CARGO_TARGET_DIR=target/cross env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
  cargo test "${arm[@]}" -- --skip global_rx_reproduces_the_abu_aucs
