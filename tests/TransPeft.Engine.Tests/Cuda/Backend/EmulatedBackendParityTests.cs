using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Tests.Cuda.Emulation;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The training-step parity scenarios on the emulated device in exact mode (bf16 tensors keep their fp32 values):
/// the CUDA backend's own code (arenas, launches, GEMM shapes and transposes, the order of the backward, masks,
/// dropout, drops) must then reproduce the CPU reference to fp32 accuracy. Runs everywhere; says nothing about the
/// real kernels.
/// </summary>
public sealed class EmulatedExactBackendParityTests : BackendParityTests
{
    internal override IComputeDevice NewDevice() => new EmulatedDevice(exactBf16: true);
    internal override ParityTolerance Tolerance => ParityTolerance.Exact;
    protected override bool IsGpu => false;
    protected override bool StoresBf16 => false;
}

/// <summary>
/// The same scenarios on the emulated device with bf16 storage, rounding exactly where the kernels store bf16: checks
/// that <see cref="ParityTolerance.Bf16"/>, which the GPU run uses, holds for bf16 activations with margin.
/// </summary>
public sealed class EmulatedBf16BackendParityTests : BackendParityTests
{
    internal override IComputeDevice NewDevice() => new EmulatedDevice();
    internal override ParityTolerance Tolerance => ParityTolerance.Bf16;
    protected override bool IsGpu => false;
}

/// <summary>The golden fixtures through the backend on the emulated device with bf16 storage.</summary>
public sealed class EmulatedBackendGoldenFixtureTests : BackendGoldenFixtureTests
{
    internal override IComputeDevice NewDevice() => new EmulatedDevice();
}

/// <summary>The kernel parity tests against the emulator: checks the test harness (shapes, poisoning, references,
/// tolerances) and the emulator's own contract code; only the GPU run checks the kernels.</summary>
public sealed class EmulatedKernelParityTests : KernelParityTests
{
    internal override IComputeDevice NewDevice() => new EmulatedDevice();
}
