#!/usr/bin/env bash
# The demo command: installs what is missing, fetches YAMNet and the brick texture, runs
# `vigil demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL_CROSS=0 bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/fetch-models.sh
# The factory-line part draws its frames from the brick texture; without it (no network) that
# part says so and is skipped, the rest of the demo runs.
bash scripts/fetch-photos.sh || echo "demo.sh: textures not fetched; the factory-line part will be skipped" >&2
cargo run --release --quiet -- demo
