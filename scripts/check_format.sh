#!/usr/bin/env bash
# Fails, listing the files, when a C++/CUDA source differs from what clang-format makes of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
    clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
done < <(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')
if ((${#bad[@]})); then
    echo "clang-format would change: ${bad[*]}" >&2
    echo "fix with: clang-format -i ${bad[*]}" >&2
    exit 1
fi
