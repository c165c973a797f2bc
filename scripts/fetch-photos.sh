#!/usr/bin/env bash
# Fetches two real photos for the MobileNetV2 conversion test from PyPI scikit-image 0.26.0
# (CC0 images): chelsea.png (a tabby cat) and coffee.png (a cup of coffee), into
# models/cache/photos/. The wheel is pinned by platform so its sha256 is the same everywhere;
# the photos' own sha256s are checked too. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/models/cache/photos"
python=${PYTHON:-python3}
declare -A want=(
  [chelsea.png]=596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
  [coffee.png]=cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
)
have_all() {
  for f in "${!want[@]}"; do
    echo "${want[$f]}  $out/$f" | sha256sum --check --status 2>/dev/null || return 1
  done
}
if have_all; then exit 0; fi

wheel=scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
wheel_sha=74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching photos from PyPI scikit-image==0.26.0" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --implementation cp --platform manylinux_2_28_x86_64 --dest "$tmp" scikit-image==0.26.0
echo "$wheel_sha  $tmp/$wheel" | sha256sum --check --quiet
mkdir -p "$out"
"$python" - "$tmp/$wheel" "$out" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    for name in ("chelsea.png", "coffee.png"):
        with open(f"{out}/{name}.tmp", "wb") as f:
            f.write(w.read(f"skimage/data/{name}"))
PY
for f in "${!want[@]}"; do
  echo "${want[$f]}  $out/$f.tmp" | sha256sum --check --quiet
  mv "$out/$f.tmp" "$out/$f"
done
echo "photos in $out" >&2
