#!/usr/bin/env bash
# Installs what building and testing vigil needs, when missing, on Debian as root:
# GStreamer development files and plugins, libclang (v4l bindings), the aarch64 cross
# toolchain and qemu-user (ARM tests), Mosquitto and openssl (the MQTT tests' broker and its
# TLS certificates), Rust with the aarch64 target, the Python packages the reference scripts
# use, a font for vigil-train's plots, and the real recordings MAVD-edge's clips are staged
# from (opencv-doc's street videos, hedgewars' recorded voices, lmms' samples, codec2's speech,
# decoded by gstreamer1.0-libav; see ../shared/data/README.md). Every step is skipped when
# already satisfied.
set -euo pipefail
want_cross=${VIGIL_CROSS:-1}

packages=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good libclang-dev mosquitto openssl python3 python3-pip python3-venv curl ca-certificates fonts-dejavu-core
  gstreamer1.0-libav opencv-doc hedgewars-data lmms-common codec2-examples)
if [ "$want_cross" = 1 ]; then
  packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "installing Rust with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95
  }
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if [ "$want_cross" = 1 ] && command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
fi
