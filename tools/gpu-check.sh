#!/usr/bin/env bash
# The one script to run on the GPU machine (NVIDIA driver, PyTorch in a venv, no .NET SDK, maybe no libicu, no
# network; 600 s per command, at most 8 files back from the output folder).
#
#   Inside an unpacked package:  tpeft-gpu/gpu-check.sh OUTDIR
#   From a checkout:             tools/gpu-check.sh OUTDIR [gpu-package/tpeft-gpu.tar.gz]   (unpacks it first)
#
# OUTDIR receives exactly three files, rewritten after every step so that a run killed half way still returns its
# table: summary.json (one JSON object per line and step), summary.txt (the table) and logs.tar.gz (every log).
# Steps, ordered for information, within TPEFT_CHECK_BUDGET seconds in all (default 480 = 8 minutes):
#   environment     nvidia-smi, driver and GPU, the CUDA libraries the loader and the Python wheels offer
#   kernels         every kernel compiled by the machine's own NVRTC for its sm_XX (registers, spills)
#   runtime         driver, cuBLAS and CUDA-graph tests (GpuRuntimeTests, CudaBackendTests, SharedBaseTests.OnAGpu*, NativeBindingTests,
#                   GpuGraphEmulationTests)
#   kernel-parity   every kernel against the CPU reference op (GpuKernelParityTests)
#   train-parity    golden-fixture and scenario training steps GPU vs CPU (GpuBackendParityTests,
#                   GpuBackendGoldenFixtureTests, which include KV-cached decoding), the KV-cached decoder
#                   (GpuKvDecoderTests: recompute parity, mixed adapters, eviction, graphs = plain launches, no
#                   managed allocation per token), with the worst error as a multiple of the bf16 tolerance
#   memcheck, racecheck  compute-sanitizer on the attention and LoRA kernel tests, if time remains
#   gpu-check.d/*   extra steps shipped in the package, in name order, if time remains
# Only GPU test classes run: the CPU-only suites are the CI's job and would spend device time for nothing.
# Without a GPU (no nvidia-smi, or it lists none) every step is "skipped: no device" and the exit status is 2,
# unless TPEFT_REQUIRE_GPU=0 (try the package on a CPU machine: the GPU tests then skip with their reason).
# Exit status: 0 when every step passed or was skipped, 1 when one failed, 2 without a device or on bad usage.
set -uo pipefail

usage() { echo "usage: $0 OUTDIR [PACKAGE.tar.gz]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out="$(mkdir -p "$1" && cd "$1" && pwd)" || { echo "gpu-check: cannot create $1" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
budget="${TPEFT_CHECK_BUDGET:-480}"
export TPEFT_REQUIRE_GPU="${TPEFT_REQUIRE_GPU:-1}"
# The machine may lack libicu; the engine needs no culture data.
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

work="$(mktemp -d /tmp/tpeft-gpu-check.XXXXXX)"
logs="$work/logs"
mkdir -p "$logs"
trap 'rm -rf "$work"' EXIT
rm -f "$out/summary.json" "$out/summary.txt" "$out/logs.tar.gz"

steps=(environment kernels runtime kernel-parity train-parity memcheck racecheck)
rows=()
failed=0

json_string() { # a JSON string literal: backslashes, quotes and control characters escaped
  local s="${1//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="$(printf '%s' "$s" | tr '\n\t\r' '   ' | tr -d '\000-\037')"
  printf '"%s"' "$s"
}

write_outputs() { # the table and the logs as they are now; renamed into place so a kill never leaves half a file
  {
    echo "tpeft GPU check  $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(cut -c1-12 "${pkg:-/nonexistent}/COMMIT" 2>/dev/null || echo '?')"
    printf '%-14s %-8s %7s  %s\n' STEP STATUS SECONDS DETAIL
    for r in "${rows[@]}"; do
      IFS='|' read -r n s t d <<< "$r"
      printf '%-14s %-8s %7s  %s\n' "$n" "$s" "$t" "$d"
    done
  } > "$out/summary.txt.tmp" && mv -f "$out/summary.txt.tmp" "$out/summary.txt"
  tar -C "$work" -czf "$out/logs.tar.gz.tmp" logs 2>/dev/null && mv -f "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"
}

record() { # name status seconds detail
  local detail="${4//|//}"
  rows+=("$1|$2|$3|$detail")
  [ "$2" = FAIL ] && failed=1
  printf '{"step": %s, "status": %s, "seconds": %d, "detail": %s}\n' "$(json_string "$1")" "$(json_string "$2")" "$3" "$(json_string "$detail")" >> "$out/summary.json"
  echo "gpu-check: $1: $2 ($3 s) $detail"
  write_outputs
}

print_table() { echo; cat "$out/summary.txt"; }

# --- no device: the same table, every step skipped, exit 2, within seconds --------------------------------------
gpu_list="$(nvidia-smi -L 2>/dev/null | grep '^GPU ' || true)"
if [ -z "$gpu_list" ] && [ "$TPEFT_REQUIRE_GPU" != 0 ]; then
  why="no device"
  command -v nvidia-smi >/dev/null || why="no device (nvidia-smi not found)"
  echo "gpu-check: $why; nothing to check (TPEFT_REQUIRE_GPU=0 runs the steps anyway)" > "$logs/environment.log"
  for s in "${steps[@]}"; do record "$s" skipped 0 "$why"; done
  print_table
  exit 2
fi

# --- the package ---------------------------------------------------------------------------------------------------
if [ $# -ge 2 ]; then
  tarball="$2"
  [ -f "$tarball" ] || { echo "gpu-check: package $tarball not found" >&2; exit 2; }
  case "$tarball" in
    *.zst) zstd -dc "$tarball" | tar -C "$work" -xf - ;;
    *) tar -C "$work" -xzf "$tarball" ;;
  esac
  pkg="$work/tpeft-gpu"
elif [ -x "$here/dotnet/dotnet" ]; then
  pkg="$here"
elif [ -f "$here/../gpu-package/tpeft-gpu.tar.gz" ]; then
  exec "$0" "$out" "$here/../gpu-package/tpeft-gpu.tar.gz"
else
  echo "gpu-check: run me from an unpacked package, or pass the package tarball" >&2; exit 2
fi
[ -x "$pkg/dotnet/dotnet" ] || { echo "gpu-check: $pkg is not a tpeft GPU package (no dotnet/dotnet)" >&2; exit 2; }

export DOTNET_ROOT="$pkg/dotnet"
export PATH="$pkg/dotnet:$PATH"
export TPEFT_KERNEL_CACHE="${TPEFT_KERNEL_CACHE:-$work/kernel-cache}"
dotnet_bin="$pkg/dotnet/dotnet"
tpeft_dll="$pkg/tpeft/tpeft.dll"

left() { echo $(( budget - SECONDS )); }
# Seconds a step may run: its own cap, but never past the budget (10 s kept for packing the logs).
step_limit() { local l=$(( $(left) - 10 )); [ "$1" -lt "$l" ] && l=$1; echo "$l"; }

# --- environment ---------------------------------------------------------------------------------------------------
t0=$SECONDS
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "package commit: $(cat "$pkg/COMMIT" 2>/dev/null)"
  echo "host: $(uname -a)"
  nvidia-smi || echo "nvidia-smi: not found"
  echo; echo "--- CUDA libraries in the loader cache"; ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc|libcublas|libnvToolsExt|libnvtx' || true
  echo; echo "--- NVIDIA wheels of the active Python ($(command -v python3 || echo 'no python3'))"
  python3 - <<'PY' 2>&1 || true
import glob, os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()]
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        print(d, " ".join(sorted(f for f in os.listdir(d) if ".so" in f)))
PY
  echo; echo "--- bundled runtime"; "$dotnet_bin" --list-runtimes
} > "$logs/environment.log" 2>&1
gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
arch="${TPEFT_ARCH:-${cc:+sm_$cc}}"
if [ -n "$gpu" ]; then record environment ok $((SECONDS - t0)) "$gpu, ${arch:-arch ?}"
elif [ "$TPEFT_REQUIRE_GPU" = 0 ]; then record environment skipped $((SECONDS - t0)) "no device (TPEFT_REQUIRE_GPU=0: steps run, GPU tests skip)"
else record environment FAIL $((SECONDS - t0)) "nvidia-smi lists a GPU but reports no name"; fi
export TPEFT_ARCH="${arch:-sm_90}"

# --- kernels: the machine's own NVRTC --------------------------------------------------------------------------------
t0=$SECONDS
if timeout "$(step_limit 120)" "$dotnet_bin" "$tpeft_dll" kernels --arch "$TPEFT_ARCH" --json > "$logs/kernels.json" 2> "$logs/kernels.log"; then
  n=$(grep -c '"kernel": *"' "$logs/kernels.json" || true)
  bad=$(grep -c '"status": *"compile-error"' "$logs/kernels.json" || true)
  spills=$(grep -c '"status": *"spills"' "$logs/kernels.json" || true)
  if ! grep -q '^\[' "$logs/kernels.json"; then record kernels FAIL $((SECONDS - t0)) "no JSON array from tpeft kernels --json"
  elif [ "$bad" = 0 ]; then record kernels ok $((SECONDS - t0)) "$n kernels for $TPEFT_ARCH, $spills with spills"
  else record kernels FAIL $((SECONDS - t0)) "$bad files failed to compile for $TPEFT_ARCH"; fi
else
  record kernels FAIL $((SECONDS - t0)) "tpeft kernels exited non-zero or timed out, see kernels.log: $(tail -1 "$logs/kernels.log" | cut -c1-160)"
fi

# --- test steps -----------------------------------------------------------------------------------------------------
# run_tests NAME CAP FILTER [launcher...]: one vstest run of the GPU test classes FILTER selects, counted from its
# TRX; sets st (ok/FAIL/skipped), secs and detail for the caller to record. A launcher (compute-sanitizer ...) wraps
# the runner.
run_tests() {
  local name="$1" cap="$2" filter="$3"; shift 3
  local t0=$SECONDS limit rc trx="$logs/$name.trx" counters total passed failedn executed
  limit=$(step_limit "$cap")
  secs=0
  if [ "$limit" -lt 20 ]; then st=skipped; detail="out of time (budget ${budget} s)"; return; fi
  timeout "$limit" "$@" "$dotnet_bin" "$pkg/vstest/vstest.console.dll" "$pkg/tests/TransPeft.Engine.Tests.dll" \
    "--TestCaseFilter:$filter" "--logger:trx;LogFileName=$name.trx" "--logger:console;verbosity=normal" \
    "--ResultsDirectory:$logs" > "$logs/$name.log" 2>&1
  rc=$?
  secs=$((SECONDS - t0))
  if [ -f "$trx" ]; then
    counters="$(grep -o '<Counters [^>]*>' "$trx" | head -1)"
    get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
    total=$(get total); passed=$(get passed); failedn=$(get failed); executed=$(get executed)
    detail="${passed:-0} passed, ${failedn:-0} failed, $(( ${total:-0} - ${executed:-0} )) skipped of ${total:-0}"
    [ "${failedn:-0}" -gt 0 ] && detail="$detail; first: $(grep -m1 -o 'testName="[^"]*" [^>]*outcome="Failed"' "$trx" | cut -d'"' -f2 | cut -c1-100)"
  else
    detail="no TRX written (rc $rc$([ $rc -eq 124 ] && echo ", timed out after $limit s")), see $name.log"
  fi
  if [ $rc -eq 0 ] && [ -f "$trx" ] && [ "${total:-0}" -gt 0 ]; then st=ok; else st=FAIL; fi
}

run_tests runtime 150 "FullyQualifiedName~.GpuRuntimeTests.|FullyQualifiedName~.CudaBackendTests.|FullyQualifiedName~.SharedBaseTests.OnAGpu|FullyQualifiedName~.NativeBindingTests.|FullyQualifiedName~.GpuGraphEmulationTests."
record runtime "$st" "$secs" "$detail"
run_tests kernel-parity 150 "FullyQualifiedName~.GpuKernelParityTests."
record kernel-parity "$st" "$secs" "$detail"

parity="$logs/train-parity.txt"
export TPEFT_PARITY_REPORT="$parity"
run_tests train-parity 180 "FullyQualifiedName~.GpuBackendParityTests.|FullyQualifiedName~.GpuBackendGoldenFixtureTests.|FullyQualifiedName~.GpuKvDecoderTests."
if [ -s "$parity" ]; then
  # Each GPU parity scenario appended "PASS|FAIL name: ... N.NNx" (error as a multiple of the bf16 tolerance).
  npass=$(grep -c '^PASS ' "$parity" || true)
  nfail=$(grep -c '^FAIL ' "$parity" || true)
  worst=$(grep '^PASS ' "$parity" | grep -oE '[0-9]+\.[0-9]+x' | tr -d x | sort -g | tail -1)
  if [ "$nfail" -gt 0 ]; then detail="$nfail of $((npass + nfail)) scenarios failed, first: $(grep -m1 '^FAIL ' "$parity" | cut -c6- | cut -c1-120); $detail"
  else detail="$npass scenarios GPU vs CPU within bf16 tolerance, worst error ${worst:-?}x of it; $detail"; fi
fi
record train-parity "$st" "$secs" "$detail"

# --- sanitizers: attention and LoRA kernels under compute-sanitizer, while time remains ------------------------------
sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)"
san_filter="FullyQualifiedName~.GpuKernelParityTests.&(FullyQualifiedName~Attention|FullyQualifiedName~Lora)"
if [ -z "$sanitizer" ]; then
  for tool in memcheck racecheck; do record "$tool" skipped 0 "compute-sanitizer not found"; done
else
  for tool in memcheck racecheck; do
    if [ "$(left)" -lt 60 ]; then record "$tool" skipped 0 "out of time ($(left) s left of ${budget} s)"; continue; fi
    run_tests "$tool" $(( ($(left) - 10) / 2 + 10 )) "$san_filter" "$sanitizer" --tool "$tool" --target-processes all --error-exitcode 1
    record "$tool" "$st" "$secs" "$detail"
  done
fi

# --- extra steps ----------------------------------------------------------------------------------------------------
export TPEFT_PKG="$pkg" TPEFT_DOTNET="$dotnet_bin" TPEFT_TPEFT="$tpeft_dll" TPEFT_LOGDIR="$logs"
for step in "$pkg"/gpu-check.d/*.sh; do
  [ -f "$step" ] || continue
  name="$(basename "$step" .sh)"
  limit=$(step_limit 300)
  if [ "$limit" -lt 20 ]; then record "$name" skipped 0 "out of time (budget ${budget} s)"; continue; fi
  export TPEFT_STEP_TIMEOUT="$limit"
  t0=$SECONDS
  timeout "$limit" bash "$step" > "$logs/$name.log" 2>&1
  rc=$?
  summary="$(grep -i '^summary:' "$logs/$name.log" | tail -1 | cut -d: -f2- | sed 's/^ *//')"
  if [ $rc -eq 0 ]; then record "$name" ok $((SECONDS - t0)) "${summary:-done}"
  elif [ $rc -eq 77 ]; then record "$name" skipped $((SECONDS - t0)) "${summary:-skipped}"
  else record "$name" FAIL $((SECONDS - t0)) "${summary:-exit $rc}, see $name.log"; fi
done

print_table
exit $failed
