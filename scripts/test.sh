#!/usr/bin/env bash
# The test command: installs what is missing, then lints, runs every test on x86_64, and runs
# the library's tests (tract's NEON kernels included) for aarch64 under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/fetch-models.sh

cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release

# aarch64: GStreamer can't be cross-built here, so the ARM build leaves its feature out.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
cargo test --release --target aarch64-unknown-linux-gnu --no-default-features --lib --test yamnet_parity
