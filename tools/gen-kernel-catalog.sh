#!/usr/bin/env bash
# Regenerates what derives from the extern "C" kernel signatures in kernels/*.cu: the backend's parameter lists
# (src/TransPeft.Engine/Compute/Cuda/KernelSignatures.g.cs) and the signature table in kernels/README.md.
# The generator is tests/TransPeft.Engine.Tests/Cuda/Backend/KernelSignatureGenerator.cs; without TPEFT_REGENERATE
# the same tests fail while the files are stale. Two passes: the first rewrites the files, the second (after a
# rebuild that compiles the new table in) checks them.
set -euo pipefail
cd "$(dirname "$0")/.."
filter="FullyQualifiedName~KernelSignatureGenerationTests"
dotnet build tests/TransPeft.Engine.Tests -c Release -nologo -v quiet
TPEFT_REGENERATE=1 dotnet test tests/TransPeft.Engine.Tests -c Release --no-build -nologo --filter "$filter" > /dev/null || true
dotnet build tests/TransPeft.Engine.Tests -c Release -nologo -v quiet
dotnet test tests/TransPeft.Engine.Tests -c Release --no-build -nologo --filter "$filter"
