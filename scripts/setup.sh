#!/usr/bin/env bash
# Octet set-up: install build dependencies (Debian packages), build, and run the main job.
# Until the trainer lands, the main job is `octet fidelity` on the built-in heavy-tailed
# activation sample: every FP8 recipe's SNR, error, flush and saturation in one table.
# Usage: scripts/setup.sh            (BUILD_DIR=build by default; OCTET_CUDA=OFF to skip CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/install_deps.sh

cuda_flag=()
[ -n "${OCTET_CUDA:-}" ] && cuda_flag=(-DOCTET_CUDA="$OCTET_CUDA")
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flag[@]}"
cmake --build "$BUILD_DIR" -j "$(nproc)"

echo
"$BUILD_DIR"/bin/octet fidelity
