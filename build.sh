#!/usr/bin/env bash
# TransPeft.Engine: one entry point for building, testing, the demo and benchmarks.
#   ./build.sh demo         the main job: `tpeft experiment` (default preset cpu; args pass through, e.g. --preset cpu-sweep)
#   ./build.sh test         restore, build, install what the checks need, run every test
#   ./build.sh build        Release build of the solution
#   ./build.sh bench        CPU benchmarks against libtorch (TorchSharp-cpu), table printed last
#   ./build.sh gpu-package  everything a GPU machine without .NET needs, in one folder/archive
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
cmd="${1:-build}"; shift || true

tpeft() { dotnet "src/TransPeft.Cli/bin/Release/net10.0/tpeft.dll" "$@"; }

case "$cmd" in
  build)
    dotnet build TransPeft.Engine.sln -c Release -nologo -v quiet "$@"
    ;;
  test)
    dotnet build TransPeft.Engine.sln -c Release -nologo -v quiet
    log=$(mktemp)
    set +e
    dotnet test TransPeft.Engine.sln -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    # One plain closing line: "tests: N passed, N failed, N skipped".
    awk '/(Passed|Failed)!/ { for (i=1;i<=NF;i++) { gsub(",","",$(i+1)); if ($i=="Failed:") f+=$(i+1); if ($i=="Passed:") p+=$(i+1); if ($i=="Skipped:") s+=$(i+1) } }
         END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
    rm -f "$log"
    exit "$rc"
    ;;
  demo)
    dotnet build src/TransPeft.Cli -c Release -nologo -v quiet
    tpeft experiment "$@"
    ;;
  bench)
    dotnet build src/TransPeft.Cli -c Release -nologo -v quiet
    tpeft bench forward --preset tiny "$@"
    ;;
  *)
    echo "usage: ./build.sh build|test|demo|bench|gpu-package [args...]" >&2
    exit 2
    ;;
esac
