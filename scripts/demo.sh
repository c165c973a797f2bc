#!/usr/bin/env bash
# The demo command: installs what is missing, fetches YAMNet, runs `vigil demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
VIGIL_CROSS=0 bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/fetch-models.sh
cargo run --release --quiet -- demo
