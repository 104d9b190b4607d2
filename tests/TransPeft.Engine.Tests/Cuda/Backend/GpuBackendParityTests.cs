using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>The training-step parity scenarios on GPU 0 (skipped without one; failing under TPEFT_REQUIRE_GPU=1).
/// Each result goes to the parity report that tools/gpu-check.sh summarises.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuBackendParityTests : BackendParityTests
{
    internal override IComputeDevice NewDevice() => GpuBackend.NewDevice();
    internal override ParityTolerance Tolerance => ParityTolerance.Bf16;
    protected override bool IsGpu => true;
}

/// <summary>The golden fixtures through the backend on GPU 0; results go to the parity report.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuBackendGoldenFixtureTests : BackendGoldenFixtureTests
{
    internal override IComputeDevice NewDevice() => GpuBackend.NewDevice();
    protected override bool IsGpu => true;
}

/// <summary>Every kernel against the CPU reference on GPU 0.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuKernelParityTests : KernelParityTests
{
    internal override IComputeDevice NewDevice() => GpuBackend.NewDevice();
}
