#!/usr/bin/env bash
# Install Octet's build dependencies from Debian packages (and, for the CUDA backend, the
# cudnn-frontend headers from PyPI), only those missing (no network use when all are present).
# CUDA is optional: with nvcc on PATH (CUDA 13 under /usr/local/cuda) the CUDA backend is built too.
set -euo pipefail
# bible-kjv: the default dataset's text; gnuplot-nox: `octet plot`; libcpptoml-dev: configs.
packages=(cmake ninja-build g++ libgtest-dev clang-format libopenblas-openmp-dev libcpptoml-dev
          gnuplot-nox bible-kjv)
# The CUDA backend drives cuDNN (flash attention) through the header-only cudnn-frontend (PyPI).
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
    site_include=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/include
    [ -f "$site_include/cudnn_frontend.h" ] ||
        python3 -m pip install --quiet --disable-pip-version-check nvidia-cudnn-frontend==1.32.0
fi
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
