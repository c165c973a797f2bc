#!/usr/bin/env bash
# The release soak: two factory-line streams, each fed twice the frames ISSTAD-edge takes on
# this machine, for an hour (or $1 seconds), through the whole runtime. Prints the report
# (also in var/soak/soak-report.txt) and exits non-zero if memory grew, latency ran away, a
# drop went uncounted or an alert was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/fetch-models.sh
cargo build --release
exec target/release/vigil soak --seconds "${1:-3600}" --streams 2 --overload 2 --work var/soak
