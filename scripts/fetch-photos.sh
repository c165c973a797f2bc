#!/usr/bin/env bash
# Fetches real CC0 images from PyPI scikit-image 0.26.0 into models/cache/:
# - photos/: chelsea.png (a tabby cat) and coffee.png (a cup of coffee), which the MobileNetV2
#   conversion test classifies;
# - textures/: brick.png, grass.png and gravel.png (512x512 greyscale), from which
#   `vigil-train` writes MVTec-layout defect data sets for ISSTAD-edge (the list, with each
#   texture's symmetries, is TEXTURES in src/train/isstad/make_data.rs). Sources and licences,
#   as scikit-image's skimage/data/_fetchers.py states them:
#     brick.png   CC0Textures "Bricks25", CC0 (perspective-corrected, rotated, cropped, grey)
#     grass.png   DeviantArt linolafett "Grass-01", CC0 (cropped, grey)
#     gravel.png  CC0Textures "Gravel04", CC0 (rescaled, cropped, grey)
#   These are the only real surface photos of at least 384 px under CC0 or in the public domain
#   found in registry packages. Checked and not used: scikit-image's other data files (moon.png
#   states no licence; the rest are not surface textures), imageio (ships no images), robosuite
#   1.5.2's assets/textures (real photos, but an MIT package with no source or CC0 statement for
#   them); Debian's texture packages (nexuiz, ufoai, colobot) and wallpaper packages, not
#   downloaded: game art and desktop backgrounds by their descriptions, not surface photos.
# One wheel holds both sets, so one script fetches them and the wheel is downloaded once. The
# wheel is pinned by platform so its sha256 is the same everywhere; each image's own sha256 is
# checked too. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/models/cache"
python=${PYTHON:-python3}
# Keys are paths under models/cache/; the file name is the one inside skimage/data/.
declare -A want=(
  [photos/chelsea.png]=596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
  [photos/coffee.png]=cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
  [textures/brick.png]=7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf
  [textures/grass.png]=b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89
  [textures/gravel.png]=c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12
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
echo "fetching photos and textures from PyPI scikit-image==0.26.0" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --implementation cp --platform manylinux_2_28_x86_64 --dest "$tmp" scikit-image==0.26.0
echo "$wheel_sha  $tmp/$wheel" | sha256sum --check --quiet
mkdir -p "$out/photos" "$out/textures"
"$python" - "$tmp/$wheel" "$out" "${!want[@]}" <<'PY'
import sys, zipfile
wheel, out, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as w:
    for target in targets:
        name = target.rsplit("/", 1)[-1]
        with open(f"{out}/{target}.tmp", "wb") as f:
            f.write(w.read(f"skimage/data/{name}"))
PY
for f in "${!want[@]}"; do
  echo "${want[$f]}  $out/$f.tmp" | sha256sum --check --quiet
  mv "$out/$f.tmp" "$out/$f"
done
echo "photos in $out/photos, textures in $out/textures" >&2
