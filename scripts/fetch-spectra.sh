#!/usr/bin/env bash
# Fetches the earthlib spectral library (PyPI earthlib 1.1.0, MIT): 7 261 measured reflectance
# spectra × 180 bands, 0.40–2.45 µm, with their material classes (soil, vegetation, roofs, roads,
# paint, metal…), into models/cache/spectra/earthlib/. Synthetic hyperspectral training scenes
# are mixed from them. The wheel's and the files' sha256s are checked. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/models/cache/spectra/earthlib"
python=${PYTHON:-python3}
declare -A want=(
  [spectra.sli]=fcbc14e973fa28fba7daeeb510894987e02c304ca2fca83f11808d185fbfbd9a
  [spectra.sli.hdr]=27db225d30a437129b638611f0c424fe0a4f5492d300a00289b0f450cb09ef3d
  [spectra.csv]=3ab19c85d72827373a41d6bed4f46809dc639664208c09997b1fe9b055478968
)
have_all() {
  for f in "${!want[@]}"; do
    echo "${want[$f]}  $out/$f" | sha256sum --check --status 2>/dev/null || return 1
  done
}
if have_all; then exit 0; fi

wheel=earthlib-1.1.0-py3-none-any.whl
wheel_sha=05cf6ed65487d4a8683e4c2da58c4904e3893bc020200c29f65dfbee73de7b87
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the earthlib spectral library from PyPI earthlib==1.1.0" >&2
"$python" -m pip download --quiet --no-deps --dest "$tmp" earthlib==1.1.0
echo "$wheel_sha  $tmp/$wheel" | sha256sum --check --quiet
mkdir -p "$out"
"$python" - "$tmp/$wheel" "$out" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    for name in ("spectra.sli", "spectra.sli.hdr", "spectra.csv"):
        with open(f"{out}/{name}.tmp", "wb") as f:
            f.write(w.read(f"earthlib/data/{name}"))
PY
for f in "${!want[@]}"; do
  echo "${want[$f]}  $out/$f.tmp" | sha256sum --check --quiet
  mv "$out/$f.tmp" "$out/$f"
done
