#!/usr/bin/env bash
# TransPeft.Engine build entry point. See README.md.
set -euo pipefail
cd "$(dirname "$0")"
cmd="${1:-build}"; shift || true
case "$cmd" in
  build) dotnet build TransPeft.Engine.sln -c Release ;;
  test)  dotnet test TransPeft.Engine.sln -c Release ;;
  *) echo "usage: ./build.sh build|test|demo|bench|gpu-package" >&2; exit 2 ;;
esac
