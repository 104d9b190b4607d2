#!/usr/bin/env bash
# Builds everything the GPU machine needs into ONE folder plus a tarball (< 64 MiB), because that machine has the
# NVIDIA driver, the CUDA toolkit and PyTorch but no .NET SDK and no network:
#   gpu-package/tpeft-gpu/
#     dotnet/            the .NET runtime copied from this machine's SDK install (dotnet, host/, shared/Microsoft.NETCore.App/<ver>)
#     vstest/            the SDK's test runner (vstest.console.dll + its loggers): runs xunit tests with only the runtime
#     tpeft/             the tpeft CLI, framework-dependent, linux-x64
#     tests/             TransPeft.Engine.Tests, framework-dependent, linux-x64 (test adapter and testhost included)
#     servebench/        tools/TransPeft.ServeBench (serving latency on --device cuda), framework-dependent, linux-x64
#     gpu-check.sh       the one script to run there (a copy of tools/gpu-check.sh)
#     gpu-check.d/       optional extra steps (tools/gpu-check.d/*.sh), run in name order
#     GPU-CHECK.md       the procedure
#   gpu-package/tpeft-gpu.tar.gz
# Usage: tools/gpu-package.sh            (called by ./build.sh gpu-package)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
out="$repo/gpu-package"
pkg="$out/tpeft-gpu"
limit=$((64 * 1024 * 1024))

dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
runtime_version="$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" {print $2}' | grep '^10\.' | sort -V | tail -1)"
sdk_version="$(dotnet --version)"
sdk_dir="$dotnet_root/sdk/$sdk_version"
[ -n "$runtime_version" ] || { echo "gpu-package: no Microsoft.NETCore.App 10.x runtime under $dotnet_root" >&2; exit 1; }
[ -f "$sdk_dir/vstest.console.dll" ] || { echo "gpu-package: $sdk_dir/vstest.console.dll not found" >&2; exit 1; }

rm -rf "$pkg"
mkdir -p "$pkg"
echo "gpu-package: publishing tpeft and the tests (Release, linux-x64, framework-dependent)"
common=(-c Release -r linux-x64 --self-contained false -p:DebugType=portable -p:SatelliteResourceLanguages=en -nologo -v quiet)
dotnet publish src/TransPeft.Cli "${common[@]}" -o "$pkg/tpeft"
dotnet publish tests/TransPeft.Engine.Tests "${common[@]}" -o "$pkg/tests"
dotnet publish tools/TransPeft.ServeBench "${common[@]}" -o "$pkg/servebench"
# Code-coverage collectors (Microsoft.CodeCoverage, ~20 MB of Windows/macOS/Alpine binaries) are not used there.
rm -rf "$pkg/tests/CodeCoverage" "$pkg/tests"/{x86,x64,arm64,alpine,ubuntu,macos}
# ONNX Runtime (a Windows onnxruntime.dll and libonnxruntime.so, 55 MB) serves only the CPU-only BERT parity tests,
# which the GPU check never runs; with it the tarball passes the 64 MiB the GPU machine accepts.
rm -f "$pkg/tests/onnxruntime.dll" "$pkg/tests/libonnxruntime.so" "$pkg/tests/libonnxruntime_providers_shared.so"

# tpeft's and servebench's files are mostly a subset of the tests' (the tests reference both): hard-link the identical
# ones, so tar stores them once.
for tool in tpeft servebench; do
  while IFS= read -r -d '' f; do
    rel="${f#"$pkg/$tool/"}"
    if [ -f "$pkg/tests/$rel" ] && cmp -s "$f" "$pkg/tests/$rel"; then ln -f "$pkg/tests/$rel" "$f"; fi
  done < <(find "$pkg/$tool" -type f -print0)
done

echo "gpu-package: copying the .NET runtime $runtime_version and the SDK's vstest runner ($sdk_version)"
mkdir -p "$pkg/dotnet/shared/Microsoft.NETCore.App"
cp "$dotnet_root/dotnet" "$pkg/dotnet/"
cp -r "$dotnet_root/host" "$pkg/dotnet/"
cp -r "$dotnet_root/shared/Microsoft.NETCore.App/$runtime_version" "$pkg/dotnet/shared/Microsoft.NETCore.App/"
for f in LICENSE.txt ThirdPartyNotices.txt; do [ -f "$dotnet_root/$f" ] && cp "$dotnet_root/$f" "$pkg/dotnet/"; done

mkdir -p "$pkg/vstest/Extensions"
cp "$sdk_dir"/vstest.console.{dll,deps.json,runtimeconfig.json,dll.config} "$pkg/vstest/"
cp "$sdk_dir"/Microsoft.TestPlatform.*.dll "$sdk_dir"/Microsoft.VisualStudio.TestPlatform.*.dll "$pkg/vstest/"
cp "$sdk_dir"/Microsoft.Extensions.FileSystemGlobbing.dll "$sdk_dir"/Microsoft.Extensions.DependencyModel.dll "$sdk_dir"/Newtonsoft.Json.dll "$pkg/vstest/"
cp "$sdk_dir"/Extensions/*.dll "$pkg/vstest/Extensions/"

cp tools/gpu-check.sh "$pkg/gpu-check.sh"
chmod +x "$pkg/gpu-check.sh"
mkdir -p "$pkg/gpu-check.d"
if compgen -G "tools/gpu-check.d/*" >/dev/null; then cp -r tools/gpu-check.d/. "$pkg/gpu-check.d/"; fi
cp docs/GPU-CHECK.md "$pkg/"
git -C "$repo" rev-parse HEAD > "$pkg/COMMIT" 2>/dev/null || echo unknown > "$pkg/COMMIT"

rm -f "$out"/tpeft-gpu.tar.*
# gzip, not zstd: the GPU machine may lack zstd, and gpu-check.sh must unpack with what any Linux has.
tarball="$out/tpeft-gpu.tar.gz"
tar -C "$out" -cf - tpeft-gpu | gzip -9 > "$tarball.tmp"
mv -f "$tarball.tmp" "$tarball"
size=$(stat -c %s "$tarball")
echo "gpu-package: $(du -sh "$pkg" | cut -f1) unpacked, $tarball $((size / 1024 / 1024)) MiB"
if [ "$size" -ge "$limit" ]; then
  echo "gpu-package: $tarball is $size bytes, over the 64 MiB limit" >&2
  exit 1
fi
