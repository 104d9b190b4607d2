#!/usr/bin/env bash
# Builds and runs every emulated kernel test (g++ 12+, C++20, AddressSanitizer + UBSan), then prints the time.
# Usage: tools/kernel-emulator/run.sh [test_name ...]     e.g. run.sh test_lora
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$(cd "$here/../../kernels" && pwd)"
out="${TMPDIR:-/tmp}/tpeft-kernel-emulator"
mkdir -p "$out"
start=$SECONDS
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in "$here"/test_*.cpp; do tests+=("$(basename "$f" .cpp)"); done
fi
command -v g++ >/dev/null || { echo "kernel emulator: g++ not found (needs g++ 12 or newer)" >&2; exit 1; }
# Compiling dominates: one g++ per core.
export here kernels out
printf '%s\n' "${tests[@]}" | xargs -P "$(nproc)" -I{} sh -c \
  'g++ -std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wall -Wno-unknown-pragmas \
       -Wno-unused-function -Wno-unused-variable -pthread -I "$here" -I "$kernels" -o "$out/{}" "$here/{}.cpp"' \
  || { echo "kernel emulator: a test did not compile" >&2; exit 1; }
compiled=$SECONDS
failed=()
for t in "${tests[@]}"; do
  if ! "$out/$t"; then failed+=("$t"); fi
done
echo "kernel emulator: compiled in $((compiled - start)) s, ran in $((SECONDS - compiled)) s"
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}" >&2; exit 1; fi
echo "kernel emulator: all ${#tests[@]} tests passed"
