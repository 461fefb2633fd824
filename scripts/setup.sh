#!/usr/bin/env bash
# Octet set-up: install dependencies (Debian packages), build, prepare the default dataset (the
# King James Bible from Debian's bible-kjv, cached in data/kjv) and run the main job: `octet train`,
# the tiny GPT-2 with the MOSS recipe, about 2 minutes on 2 CPU cores.
# Usage: scripts/setup.sh            (BUILD_DIR=build by default; OCTET_CUDA=OFF to skip CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/install_deps.sh

cuda_flag=()
[ -n "${OCTET_CUDA:-}" ] && cuda_flag=(-DOCTET_CUDA="$OCTET_CUDA")
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flag[@]}"
cmake --build "$BUILD_DIR" -j "$(nproc)"

# The default dataset: every verse of the KJV, one per line, without the references; the last 5%
# of the lines are the validation split. Made once, then cached.
if [ ! -f data/kjv/train.bin ] || [ ! -f data/kjv/val.bin ] || [ ! -f data/kjv/tokenizer.bpe ]; then
    mkdir -p data
    env -u COLUMNS bible -f "Gen1:1-Rev22:21" | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' > data/kjv.txt.tmp
    mv data/kjv.txt.tmp data/kjv.txt
    "$BUILD_DIR"/bin/octet data prepare --text data/kjv.txt --out data/kjv --vocab-size 1024
fi

echo
"$BUILD_DIR"/bin/octet train
