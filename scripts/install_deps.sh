#!/usr/bin/env bash
# Install Octet's build dependencies from Debian packages, only those missing (no network use
# when all are present). CUDA is optional: with nvcc on PATH (CUDA 13 under /usr/local/cuda) the
# CUDA backend is built too.
set -euo pipefail
# bible-kjv: the default dataset's text; gnuplot-nox: `octet plot`; libcpptoml-dev: configs.
packages=(cmake ninja-build g++ libgtest-dev clang-format libopenblas-openmp-dev libcpptoml-dev
          gnuplot-nox bible-kjv)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "octet: installing ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
$sudo_cmd apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
