using TransPeft.Cuda;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The backend's entry point and what only a real GPU shows: <see cref="CudaBackend.TryCreate"/> says why it cannot
/// start (here: no driver or no device) or describes the GPU; CUDA-graph replay gives the eager results; a step on
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

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void GraphReplayGivesTheEagerResults(bool transPeft)
    {
        var backend = GpuBackend.Require();
        var c = BackendParityTests.Config("qwen2");
        using var eager = backend.CreateTransformer(BackendParityTests.Model(c, 1), BackendParityTests.Adapter(c, 2));
        using var graphed = backend.CreateTransformer(BackendParityTests.Model(c, 1), BackendParityTests.Adapter(c, 2), options: new CudaTransformerOptions { CaptureGraphs = true });
        var batch = BackendParityTests.Batch(c, 2, 12, 3);
        for (int step = 1; step <= 3; step++)
        {
            // Without Trans-PEFT nothing changes between steps, so steps 2 and 3 replay step 1's graph; with it the
            // Philox stream moves every step and the graph is captured again.
            var stream = new RandomStream(7, transPeft ? (uint)step : 1, 0);
            var ctx = new StepContext(stream, transPeft ? new PhiloxFfnPerturbation(stream, 0.2, 0.5) : null, true);
            eager.ZeroGrad(); graphed.ZeroGrad();
            var (le, _) = eager.ForwardBackward(batch, 0.05f, ctx);
            var (lg, _) = graphed.ForwardBackward(batch, 0.05f, ctx);
            ParityCheck.Relative("graph loss", le, lg, 1e-6);
            for (int i = 0; i < eager.TrainableParameters.Count; i++)
                ParityCheck.Elementwise("graph grad " + eager.TrainableParameters[i].Name, eager.TrainableParameters[i].Grad, graphed.TrainableParameters[i].Grad, 1e-7, 1e-5);
        }
        Assert.Equal(3, graphed.GraphLaunches);
        Assert.Equal(transPeft ? 3 : 1, graphed.GraphCaptures);
        // Evaluation graphs replay across batches of one shape.
        var (a, _) = graphed.Loss(batch);
        var (b, _) = graphed.Loss(BackendParityTests.Batch(c, 2, 12, 4));
        ParityCheck.Relative("graph eval loss", eager.Loss(batch).LossSum, a, 1e-6);
        ParityCheck.Relative("graph eval loss, another batch", eager.Loss(BackendParityTests.Batch(c, 2, 12, 4)).LossSum, b, 1e-6);
        Assert.Equal(transPeft ? 4 : 2, graphed.GraphCaptures);
        Assert.Equal(5, graphed.GraphLaunches);
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
