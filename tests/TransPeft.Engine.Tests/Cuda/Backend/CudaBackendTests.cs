using TransPeft.Cuda;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The backend's entry point and what only a real GPU shows: <see cref="CudaBackend.TryCreate"/> says why it cannot
/// start (here: no driver or no device) or describes the GPU; a step on
/// the GPU allocates nothing, on the device or the managed heap.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class CudaBackendTests
{
    [Fact]
    public void TryCreateEitherOpensTheGpuOrSaysWhyNot()
    {
        bool ok = CudaBackend.TryCreate(0, out var backend, out var reason);
        if (!ok)
        {
            Assert.False(CudaTestEnvironment.GpuRequired, $"TPEFT_REQUIRE_GPU=1 but the CUDA backend did not start: {reason}");
            Assert.Null(backend);
            Assert.False(string.IsNullOrWhiteSpace(reason));
            Assert.Matches("no CUDA driver|no CUDA GPU|sm_80|no NVRTC|no cuBLAS|does not compile|does not load|CUDA failed|CUDA library", reason);
            if (CudaTestEnvironment.UsingUnpackedDriver) Assert.Contains("CUDA_ERROR_NO_DEVICE", reason); // Debian's libcuda on a machine without a GPU
            return;
        }
        using (backend)
        {
            Assert.Equal("", reason);
            Assert.Equal(backend!.Context.Arch, backend.Arch);
            Assert.Contains(backend.Arch, backend.Description);
            Assert.Contains("NVRTC", backend.Description);
            Assert.True(backend.Context.ComputeCapability.Major >= 8);
            // Asking for a GPU that is not there is a reason, not an exception.
            Assert.False(CudaBackend.TryCreate(CudaContext.DeviceCount, out var none, out var why));
            Assert.Null(none);
            Assert.Contains($"GPU {CudaContext.DeviceCount} was asked for", why);
        }
    }

    [Fact]
    public void ANegativeGpuIndexIsAReason()
    {
        Assert.False(CudaBackend.TryCreate(-1, out var backend, out var reason));
        Assert.Null(backend);
        Assert.Contains("negative", reason);
    }

    [SkippableFact]
    public void ASecondBackendLoadsEveryKernelFromTheDiskCache()
    {
        GpuBackend.Require();
        Assert.True(CudaBackend.TryCreate(0, out var again, out var reason), reason);
        using (again) Assert.True(again!.KernelsFromCache, "every cubin was compiled once already in this process");
    }

    [SkippableFact]
    public void AGpuStepAfterTheFirstAllocatesNothing()
    {
        var backend = GpuBackend.Require();
        var c = BackendParityTests.Config("llama", hidden: 64, heads: 4, kvHeads: 2, headDim: 64, inter: 96);
        var device = backend.CreateDevice();
        using var m = new CudaTransformer(device, BackendParityTests.Model(c, 1), BackendParityTests.Adapter(c, 2, dropout: 0.1), ownsDevice: true);
        var batch = BackendParityTests.Batch(c, 2, 40, 3);
        var ctx = BackendParityTests.PhiloxContext(c.NumLayers, 0.2, 0.5);
        m.ZeroGrad();
        m.ForwardBackward(batch, 0.01f, ctx);
        int allocations = device.AllocationCount;
        long before = GC.GetAllocatedBytesForCurrentThread();
        m.ZeroGrad();
        m.ForwardBackward(batch, 0.01f, ctx);
        m.Loss(batch);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(allocations, device.AllocationCount);
        Assert.Equal(0, allocated);
    }

    [SkippableFact]
    public void ALargerVocabularyRunsTheHeadInChunks()
    {
        // A small chunk budget forces several LM-head chunks per step; the result must not depend on it.
        var backend = GpuBackend.Require();
        var c = BackendParityTests.Config("llama", vocab: 3001);
        var cpu = new CpuTransformer(BackendParityTests.Model(c, 9), fullFineTune: true);
        using var gpu = backend.CreateTransformer(BackendParityTests.Model(c, 9), fullFineTune: true,
            options: new CudaTransformerOptions { HeadChunkBytes = 4L * 3001 * 7 });
        var batch = BackendParityTests.Batch(c, 2, 19, 10);
        Assert.Equal(7, ActivationLayout.ChunkRows(38, 3001, 4L * 3001 * 7));
        int counted = batch.CountedTargets();
        cpu.ZeroGrad(); gpu.ZeroGrad();
        var (cl, _) = cpu.ForwardBackward(batch, 1f / counted, new StepContext(default, null, true));
        var (gl, _) = gpu.ForwardBackward(batch, 1f / counted, new StepContext(default, null, true));
        ParityCheck.Relative("chunked head loss", cl, gl, ParityTolerance.Bf16.Loss);
        for (int i = 0; i < cpu.TrainableParameters.Count; i++)
            ParityCheck.Gradient("chunked head grad " + cpu.TrainableParameters[i].Name, cpu.TrainableParameters[i].Grad, gpu.TrainableParameters[i].Grad, ParityTolerance.Bf16);
    }
}
