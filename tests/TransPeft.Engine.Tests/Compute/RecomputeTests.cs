using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Tests.Cuda.Backend;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Compute;

/// <summary>
/// Activation recomputation on the CPU (<see cref="TrainingOptions.Recompute"/>): the backward reruns each layer's
/// forward from its saved input, so the loss and every gradient must be bit-identical to the stored path's, with
/// LoRA dropout and Trans-PEFT masks and drops drawing from the step's random stream, and the memory kept for the
/// backward must be one layer's activations, not L.
/// </summary>
public sealed class RecomputeTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RecomputedGradientsAreBitIdenticalAndKeepLessMemory(bool fullFineTune)
    {
        var c = BackendParityTests.Config("qwen2", layers: 3);
        var batch = BackendParityTests.Batch(c, 2, 9, 17);
        var ctx = BackendParityTests.PhiloxContext(c.NumLayers, pMask: 0.25, pDrop: 0.4);
        CpuTransformer Make(bool recompute) => fullFineTune
            ? new CpuTransformer(BackendParityTests.Model(c, 5), fullFineTune: true, recompute: recompute)
            : new CpuTransformer(BackendParityTests.Model(c, 5), BackendParityTests.Adapter(c, 6, dropout: 0.1), recompute: recompute);
        var stored = Make(false);
        var recomputed = Make(true);
        stored.ZeroGrad(); recomputed.ZeroGrad();
        float scale = 1f / batch.CountedTargets();
        var (ls, cs) = stored.ForwardBackward(batch, scale, ctx);
        var (lr, cr) = recomputed.ForwardBackward(batch, scale, ctx);
        Assert.Equal(cs, cr);
        Assert.Equal(ls, lr);
        Assert.Equal(stored.TrainableParameters.Count, recomputed.TrainableParameters.Count);
        for (int i = 0; i < stored.TrainableParameters.Count; i++)
        {
            var (a, b) = (stored.TrainableParameters[i], recomputed.TrainableParameters[i]);
            Assert.Equal(a.Name, b.Name);
            Assert.True(a.Grad.AsSpan().SequenceEqual(b.Grad), $"{a.Name}: recomputed gradient differs from the stored path's");
        }
        Assert.Contains(stored.TrainableParameters, p => p.Grad!.Any(g => g != 0f));
        // Stored: L layer sets plus the residual stream; recomputed: one layer set plus the same stream.
        long s = stored.StoredActivationBytes, r = recomputed.StoredActivationBytes;
        long perLayer = (s - r) / (c.NumLayers - 1);
        Assert.True(r < s, $"recompute keeps {r} bytes, the stored path {s}");
        Assert.Equal(s - r, perLayer * (c.NumLayers - 1));
        Assert.True(perLayer > 4L * batch.BatchSize * batch.SeqLen * c.IntermediateSize, "a layer set holds at least g and u");
    }
}
