#!/usr/bin/env bash
# The one script to run on the GPU machine (NVIDIA driver + toolkit + PyTorch, no .NET SDK, no network).
#
#   Inside an unpacked package:  tpeft-gpu/gpu-check.sh LOGDIR
#   From a checkout:             tools/gpu-check.sh LOGDIR [gpu-package/tpeft-gpu.tar.zst]   (unpacks it first)
#
# Steps, each logged in full under LOGDIR, then a short table printed LAST:
#   environment   nvidia-smi, driver and GPU, CUDA libraries seen by the loader
#   kernels       tpeft kernels --arch <the GPU's sm_XX> --json   (if the CLI has the command)
#   cuda-tests    the CUDA test suite through the bundled runtime and vstest (TPEFT_REQUIRE_GPU=1: a test that
#                 cannot reach the GPU FAILS here instead of skipping)
#   train-parity  summary of the CUDA backend's training-step parity tests (part of cuda-tests): each GPU parity
#                 test appends "PASS|FAIL name: ..." to LOGDIR/train-parity.txt (TPEFT_PARITY_REPORT)
#   gpu-check.d/* extra steps shipped in the package (benchmarks, training parity, PyTorch baselines), in name
#                 order; each gets TPEFT_PKG, TPEFT_DOTNET, TPEFT_TPEFT, TPEFT_LOGDIR, TPEFT_ARCH in its environment
#                 and may print a line "summary: ..." that goes into the table.
# Knobs: TPEFT_GPU_TEST_FILTER (vstest filter, default FullyQualifiedName~TransPeft.Engine.Tests.Cuda),
#        TPEFT_REQUIRE_GPU (default 1), TPEFT_STEP_TIMEOUT (seconds per step, default 1500).
# Exit status: 0 when every step passed or was skipped, 1 otherwise.
set -uo pipefail

usage() { echo "usage: $0 LOGDIR [PACKAGE.tar.zst|PACKAGE.tar.gz]" >&2; exit 2; }
[ $# -ge 1 ] || usage
logdir="$(mkdir -p "$1" && cd "$1" && pwd)" || { echo "gpu-check: cannot create $1" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"

if [ $# -ge 2 ]; then
  tarball="$2"
  [ -f "$tarball" ] || { echo "gpu-check: package $tarball not found" >&2; exit 2; }
  unpack_dir="$(mktemp -d /tmp/tpeft-gpu.XXXXXX)"
  trap 'rm -rf "$unpack_dir"' EXIT
  case "$tarball" in
    *.zst) zstd -dc "$tarball" | tar -C "$unpack_dir" -xf - ;;
    *) tar -C "$unpack_dir" -xzf "$tarball" ;;
  esac
  pkg="$unpack_dir/tpeft-gpu"
elif [ -x "$here/dotnet/dotnet" ]; then
  pkg="$here"
elif [ -f "$here/../gpu-package/tpeft-gpu.tar.zst" ]; then
  exec "$0" "$logdir" "$here/../gpu-package/tpeft-gpu.tar.zst"
else
  echo "gpu-check: run me from an unpacked package, or pass the package tarball" >&2; exit 2
fi
[ -x "$pkg/dotnet/dotnet" ] || { echo "gpu-check: $pkg is not a tpeft GPU package (no dotnet/dotnet)" >&2; exit 2; }

export DOTNET_ROOT="$pkg/dotnet"
export PATH="$pkg/dotnet:$PATH"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export TPEFT_KERNEL_CACHE="${TPEFT_KERNEL_CACHE:-$logdir/kernel-cache}"
export TPEFT_REQUIRE_GPU="${TPEFT_REQUIRE_GPU:-1}"
dotnet_bin="$pkg/dotnet/dotnet"
tpeft_dll="$pkg/tpeft/tpeft.dll"
step_timeout="${TPEFT_STEP_TIMEOUT:-1500}"
filter="${TPEFT_GPU_TEST_FILTER:-FullyQualifiedName~TransPeft.Engine.Tests.Cuda}"

rows=()
failed=0
record() { # name status seconds detail
  rows+=("$1|$2|$3|$4")
  [ "$2" = FAIL ] && failed=1
  echo "gpu-check: $1: $2 ($3 s) $4"
}

# --- environment ---------------------------------------------------------------------------------------
t0=$SECONDS
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "package commit: $(cat "$pkg/COMMIT" 2>/dev/null)"
  echo "host: $(uname -a)"
  command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found"
  echo; echo "--- CUDA libraries in the loader cache"; ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc|libcublas|libnvToolsExt|libnvtx' || true
  echo; echo "--- bundled runtime"; "$dotnet_bin" --list-runtimes
} > "$logdir/environment.log" 2>&1
gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
arch="${TPEFT_ARCH:-${cc:+sm_$cc}}"
if [ -n "$gpu" ]; then record environment ok $((SECONDS - t0)) "$gpu, ${arch:-arch ?}"
else record environment FAIL $((SECONDS - t0)) "nvidia-smi found no GPU"; fi
export TPEFT_ARCH="${arch:-sm_90}"

# --- kernels ---------------------------------------------------------------------------------------------
t0=$SECONDS
if "$dotnet_bin" "$tpeft_dll" kernels --help 2>/dev/null | grep -qi 'usage'; then
  if timeout "$step_timeout" "$dotnet_bin" "$tpeft_dll" kernels --arch "$TPEFT_ARCH" --json > "$logdir/kernels.json" 2> "$logdir/kernels.log"; then
    n=$(grep -c '"kernel": *"' "$logdir/kernels.json" || true)
    bad=$(grep -c '"status": *"compile-error"' "$logdir/kernels.json" || true)
    spills=$(grep -c '"status": *"spills"' "$logdir/kernels.json" || true)
    if ! grep -q '^\[' "$logdir/kernels.json"; then record kernels FAIL $((SECONDS - t0)) "no JSON array from tpeft kernels --json"
    elif [ "$bad" = 0 ]; then record kernels ok $((SECONDS - t0)) "$n kernels for $TPEFT_ARCH, $spills with spills"
    else record kernels FAIL $((SECONDS - t0)) "$bad files failed to compile for $TPEFT_ARCH"; fi
  else
    record kernels FAIL $((SECONDS - t0)) "tpeft kernels exited non-zero, see kernels.log"
  fi
else
  record kernels skipped 0 "this tpeft has no 'kernels' command"
fi

# --- CUDA tests ------------------------------------------------------------------------------------------
t0=$SECONDS
parity="$logdir/train-parity.txt"
rm -f "$parity"
export TPEFT_PARITY_REPORT="$parity"
timeout "$step_timeout" "$dotnet_bin" "$pkg/vstest/vstest.console.dll" "$pkg/tests/TransPeft.Engine.Tests.dll" \
  "--TestCaseFilter:$filter" "--logger:trx;LogFileName=cuda-tests.trx" "--logger:console;verbosity=normal" \
  "--ResultsDirectory:$logdir" > "$logdir/cuda-tests.log" 2>&1
rc=$?
trx="$logdir/cuda-tests.trx"
if [ -f "$trx" ]; then
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -1)"
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  total=$(get total); passed=$(get passed); failedn=$(get failed); executed=$(get executed)
  skipped=$(( ${total:-0} - ${executed:-0} ))
  detail="${passed:-0} passed, ${failedn:-0} failed, $skipped skipped of ${total:-0}"
else
  detail="no TRX written (rc $rc), see cuda-tests.log"
fi
if [ $rc -eq 0 ] && [ -f "$trx" ] && [ "${total:-0}" -gt 0 ]; then record cuda-tests ok $((SECONDS - t0)) "$detail"
else record cuda-tests FAIL $((SECONDS - t0)) "$detail"; fi

# --- training-step parity (written by the CUDA tests above) ------------------------------------------------
if [ -s "$parity" ]; then
  npass=$(grep -c '^PASS ' "$parity" || true)
  nfail=$(grep -c '^FAIL ' "$parity" || true)
  # The largest "N.NNx" (error as a multiple of the allowed error) any passing scenario reported.
  worst=$(grep '^PASS ' "$parity" | grep -oE '[0-9]+\.[0-9]+x' | tr -d x | sort -g | tail -1)
  if [ "$nfail" -gt 0 ]; then
    record train-parity FAIL 0 "$nfail of $((npass + nfail)) failed, first: $(grep -m1 '^FAIL ' "$parity" | cut -c6- | cut -c1-120)"
  else
    record train-parity ok 0 "$npass scenarios (LoRA+Trans-PEFT, full FT, tensor-core heads, golden fixtures, trainer) GPU vs CPU within bf16 tolerance, worst error ${worst:-?}x of it"
  fi
elif [ "${TPEFT_REQUIRE_GPU}" = 1 ]; then
  record train-parity FAIL 0 "no parity result written (see cuda-tests.log)"
else
  record train-parity skipped 0 "no GPU parity test ran"
fi

# --- extra steps ------------------------------------------------------------------------------------------
export TPEFT_PKG="$pkg" TPEFT_DOTNET="$dotnet_bin" TPEFT_TPEFT="$tpeft_dll" TPEFT_LOGDIR="$logdir"
for step in "$pkg"/gpu-check.d/*.sh; do
  [ -f "$step" ] || continue
  name="$(basename "$step" .sh)"
  t0=$SECONDS
  timeout "$step_timeout" bash "$step" > "$logdir/$name.log" 2>&1
  rc=$?
  summary="$(grep -i '^summary:' "$logdir/$name.log" | tail -1 | cut -d: -f2- | sed 's/^ *//')"
  if [ $rc -eq 0 ]; then record "$name" ok $((SECONDS - t0)) "${summary:-done}"
  elif [ $rc -eq 77 ]; then record "$name" skipped $((SECONDS - t0)) "${summary:-skipped}"
  else record "$name" FAIL $((SECONDS - t0)) "${summary:-exit $rc}, see $name.log"; fi
done

# --- the table, last -------------------------------------------------------------------------------------
{
  echo
  echo "tpeft GPU check  $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(cut -c1-12 "$pkg/COMMIT" 2>/dev/null)  logs: $logdir"
  printf '%-16s %-8s %6s  %s\n' STEP STATUS SECONDS DETAIL
  for r in "${rows[@]}"; do
    IFS='|' read -r n s t d <<< "$r"
    printf '%-16s %-8s %6s  %s\n' "$n" "$s" "$t" "$d"
  done
} | tee "$logdir/summary.txt"
exit $failed
