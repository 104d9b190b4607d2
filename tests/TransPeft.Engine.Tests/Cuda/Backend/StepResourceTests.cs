using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Tests.Cuda.Emulation;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// What a training step costs besides compute, checked without a GPU: once the arena exists for a shape, a step
/// (and any smaller shape) makes no device allocation and no managed allocation (the host code around the launches:
/// argument packing, NVTX names, perturbation decisions, gradient transfer), NVTX ranges balance, and every
/// launch packs the arguments its kernel declares.
/// </summary>
public sealed class StepResourceTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AStepAfterTheFirstAllocatesNothing(bool fullFineTune)
    {
        var c = BackendParityTests.Config("qwen2");
        var device = new NullDevice();
        using var m = fullFineTune
            ? new CudaTransformer(device, BackendParityTests.Model(c, 1), fullFineTune: true)
            : new CudaTransformer(device, BackendParityTests.Model(c, 1), BackendParityTests.Adapter(c, 2, dropout: 0.1));
        var big = BackendParityTests.Batch(c, 2, 16, 3);
        var small = BackendParityTests.Batch(c, 3, 7, 4);
        var ctx = BackendParityTests.PhiloxContext(c.NumLayers, 0.2, 0.5);
        var explicitCtx = new StepContext(ctx.Random, new ExplicitFfnPerturbation(
            Enumerable.Range(0, c.NumLayers).Select(_ => new float[big.BatchSize * big.SeqLen * c.IntermediateSize]).ToArray(), [false, true]), true);

        void Steps()
        {
            m.ZeroGrad();
            m.ForwardBackward(big, 0.01f, ctx);
            m.ForwardBackward(small, 0.01f, ctx);
            m.ForwardBackward(small, 0.01f, explicitCtx);
            m.Loss(big);
            m.Loss(small);
        }
        Steps(); // lays out the arena for the largest shape (and the explicit-mask buffer)
        int allocations = device.Allocations;
        long before = GC.GetAllocatedBytesForCurrentThread();
        Steps();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(allocations, device.Allocations);
        Assert.Equal(0, allocated);
        Assert.True(device.Launches > 0);
    }

    [Fact]
    public void NvtxRangesBalanceAndAStepUsesTheExpectedKernels()
    {
        var c = BackendParityTests.Config("qwen2");
        var device = new EmulatedDevice(compute: false);
        using var m = new CudaTransformer(device, BackendParityTests.Model(c, 1), BackendParityTests.Adapter(c, 2, dropout: 0.1));
        var batch = BackendParityTests.Batch(c, 2, 9, 3);
        var ctx = BackendParityTests.PhiloxContext(c.NumLayers, 0.2, 0.5);
        m.ForwardBackward(batch, 0.1f, ctx);
        Assert.Equal(0, device.RangeDepth);
        int dropped = Enumerable.Range(0, c.NumLayers).Count(ctx.Perturbation!.IsDropped);
        int kept = c.NumLayers - dropped;
        int Count(KernelId k) => device.LaunchCounts[(int)k];
        Assert.Equal(1, Count(KernelId.EmbeddingForward));
        Assert.Equal(0, Count(KernelId.EmbeddingBackward)); // frozen embedding under LoRA
        Assert.Equal(c.NumLayers, Count(KernelId.FlashAttentionForward)); // head_dim 8: the generic kernels
        Assert.Equal(c.NumLayers, Count(KernelId.FlashAttentionBackwardDkDv));
        Assert.Equal(2 * kept, Count(KernelId.SwiGluForward)); // forward, and the recompute in the backward
        Assert.Equal(kept, Count(KernelId.SwiGluBackward));
        Assert.Equal(kept, Count(KernelId.RmsNormResidualForward));
        Assert.Equal(c.NumLayers * 4 + kept * 3, Count(KernelId.LoraDropoutShrink)); // one per adapted projection that runs
        Assert.Equal(0, Count(KernelId.RmsNormBackwardWeight)); // frozen norms
        Assert.Equal(3 * c.NumLayers, Count(KernelId.BiasAddBf16)); // qwen2 q/k/v biases
        Assert.Equal(0, Count(KernelId.MulBf16)); // Philox masks are drawn in-kernel
        Assert.Equal(1, Count(KernelId.CrossEntropyFusedBf16));
        Assert.Equal(1, Count(KernelId.ReduceSumF32));
        Assert.Equal(3, device.AllocationCount); // the parameter arena, the step values (StepParams) and the activation arena
        Assert.Equal(1, device.AsyncUploadCount); // the step values: one asynchronous copy per step
    }
}
