#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with valid inputs from the repository's own fixtures, so the
# fuzzers start from files that parse (run once; the fuzzers grow the corpora from there).
# The journal seed is a segment of three alerts written by vigil itself (the Journal API).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=fuzz/corpus
mkdir -p $corpus/{profile,manifest,envi,npy,mat,pytorch,journal}
cp targets/*.toml $corpus/profile/
cp models/manifest.toml $corpus/manifest/
for hdr in tests/fixtures/hsi/*.hdr; do
  base=${hdr%.hdr}
  data=$(ls "$base" "$base".img "$base".dat "$base".raw 2>/dev/null | head -1 || true)
  [ -n "$data" ] || continue
  { cat "$hdr"; printf '\0'; cat "$data"; } > "$corpus/envi/$(basename "$base")"
done
cp tests/fixtures/npy/*.npy $corpus/npy/
cp tests/fixtures/hsi/*.mat $corpus/mat/
cp ../shared/data/mavd-weights/va_model.pth ../shared/data/mavd-weights/vf_model.pth $corpus/pytorch/
if [ -n "${JOURNAL_SEGMENT:-}" ]; then cp "$JOURNAL_SEGMENT" $corpus/journal/three-alerts.log; fi
