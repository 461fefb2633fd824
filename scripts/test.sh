#!/usr/bin/env bash
# The whole Octet test suite: formatting check, build with warnings as errors, then every test
# through CTest. GPU tests report "skipped: no GPU" where there is none.
# Usage: scripts/test.sh            (BUILD_DIR=build by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/check_format.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOCTET_WERROR=ON
cmake --build "$BUILD_DIR" -j "$(nproc)"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 ||
    echo "octet: no GPU on this machine: the gpu-labelled tests will report 'skipped: no GPU'"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
