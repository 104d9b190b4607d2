#!/usr/bin/env bash
# Builds and runs every emulated kernel test (g++ 12+, C++20, AddressSanitizer + UBSan).
# Usage: tools/kernel-emulator/run.sh [test_name ...]     e.g. run.sh test_lora
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$(cd "$here/../../kernels" && pwd)"
out="${TMPDIR:-/tmp}/tpeft-kernel-emulator"
mkdir -p "$out"
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in "$here"/test_*.cpp; do tests+=("$(basename "$f" .cpp)"); done
fi
failed=()
for t in "${tests[@]}"; do
  g++ -std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wall -Wno-unknown-pragmas \
      -Wno-unused-function -Wno-unused-variable -pthread -I "$here" -I "$kernels" -o "$out/$t" "$here/$t.cpp"
  if ! "$out/$t"; then failed+=("$t"); fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}" >&2; exit 1; fi
echo "kernel emulator: all ${#tests[@]} tests passed"
