using TransPeft.Engine.Compute.Cuda;
using TransPeft.KernelEmulation;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The cuda-emulated backend the tests share: the real kernels/*.cu built for the host once per source change
/// (<see cref="HostKernelLibrary"/>, g++, cached by hash in the user's cache folder) and loaded by
/// <see cref="CudaBackend.TryCreateEmulated"/>. Without g++ the tests skip with the reason (and fail under CI=true:
/// CI must run the real kernels).
/// </summary>
internal static class HostEmulatedBackend
{
    private static readonly Lazy<(CudaBackend? Backend, string? Library, string Reason)> s_backend = new(() =>
    {
        if (!HostKernelLibrary.TryBuild(null, out var library, out var reason)) return (null, null, reason);
        return CudaBackend.TryCreateEmulated(library!, out var backend, out reason) ? (backend, library, "") : (null, library, reason);
    });

    /// <summary>The host-built kernel library (for <c>SessionOptions.EmulatorLibrary</c>); skips or fails as <see cref="Require"/>.</summary>
    public static string Library
    {
        get
        {
            Require();
            return s_backend.Value.Library!;
        }
    }

    public static CudaBackend Require()
    {
        var (backend, _, reason) = s_backend.Value;
        if (backend is not null) return backend;
        if (CudaTestEnvironment.IsCi) Assert.Fail($"cuda-emulated is unavailable under CI=true: {reason}");
        throw new SkipException($"cuda-emulated is unavailable: {reason}");
    }

    public static IComputeDevice NewDevice(bool graphs = true) => Require().OpenDevice(graphs);
}

/// <summary>Every kernel through <see cref="CudaOps"/> against the CPU reference, run by the REAL kernel code compiled
/// for the host: the kernels' indexing, reductions, masking, tiling and fragment layouts are checked without a GPU.</summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class HostEmulatedKernelParityTests : KernelParityTests
{
    internal override IComputeDevice NewDevice() => HostEmulatedBackend.NewDevice();
}

/// <summary>The training-step parity scenarios (LoRA + Trans-PEFT, full fine-tuning, tensor-core head dims, masks,
/// accumulation, device AdamW, the Trainer) on cuda-emulated, with the GPU's bf16 tolerances.</summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class HostEmulatedBackendParityTests : BackendParityTests
{
    internal override IComputeDevice NewDevice() => HostEmulatedBackend.NewDevice();
    internal override ParityTolerance Tolerance => ParityTolerance.Bf16;
    protected override bool IsGpu => false;
}

/// <summary>Every golden fixture's logits, losses, gradients and greedy tokens on cuda-emulated.</summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class HostEmulatedBackendGoldenFixtureTests : BackendGoldenFixtureTests
{
    internal override IComputeDevice NewDevice() => HostEmulatedBackend.NewDevice();
}

/// <summary>
/// The cuda-emulated classes run one after another: the emulator serializes launches process-wide anyway (static
/// __shared__ arrays), so running them side by side would only contend, and ./build.sh test times them as one group.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostEmulatedCollection
{
    public const string Name = "cuda-emulated";
}
