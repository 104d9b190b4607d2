using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// One <see cref="CudaBackend"/> (GPU 0, kernels compiled once) shared by every GPU test in the process; each test
/// takes its own device (stream + cuBLAS handle) from it, so test classes may run in parallel. Without a usable
/// GPU the test skips with <see cref="CudaBackend.TryCreate"/>'s reason, or fails under TPEFT_REQUIRE_GPU=1.
/// </summary>
internal static class GpuBackend
{
    private static readonly Lazy<(CudaBackend? Backend, string Reason)> s_backend = new(() =>
        CudaBackend.TryCreate(0, out var backend, out var reason) ? (backend, "") : (null, reason));

    public static CudaBackend Require()
    {
        var (backend, reason) = s_backend.Value;
        if (backend is not null) return backend;
        var message = $"no usable CUDA backend: {reason.Split('\n')[0]}";
        if (CudaTestEnvironment.GpuRequired) Assert.Fail($"{message} (TPEFT_REQUIRE_GPU=1)");
        throw new SkipException(message);
    }

    /// <summary>A device of its own (stream and cuBLAS handle) on the shared backend.</summary>
    public static IComputeDevice NewDevice() => Require().CreateDevice();
}
