using TransPeft.Cuda;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>The backend's host-side planning as pure functions: launch shapes for given shapes, and the arena
/// layouts (sizes, alignment, no overlap, trainable blocks). No GPU.</summary>
public sealed class PlanningTests
{
    [Fact]
    public void GridStrideLaunchesCoverTheWorkAndAreCappedAtEightBlocksPerSm()
    {
        var plan = new LaunchPlanner(132);
        Assert.Equal(new LaunchShape(1, 256), plan.GridStride(0));
        Assert.Equal(new LaunchShape(1, 256), plan.GridStride(1));
        Assert.Equal(new LaunchShape(2, 256), plan.GridStride(257));
        Assert.Equal(new LaunchShape(8 * 132, 256), plan.GridStride(1L << 40));
        Assert.Equal(264, plan.NormPartials);
        Assert.Equal(new LaunchShape(264, 256), plan.GlobalNormSquared);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LaunchPlanner(0));
    }

    [Theory]
    [InlineData(64, "D64")]
    [InlineData(128, "D128")]
    [InlineData(8, "Generic")]
    [InlineData(96, "Generic")]
    [InlineData(256, "Generic")]
    public void HeadDimPicksTheAttentionKernels(int d, string want) => Assert.Equal(want, LaunchPlanner.AttentionFor(d).ToString());

    [Theory]
    [InlineData(7)]
    [InlineData(258)]
    [InlineData(0)]
    public void HeadDimsNoKernelHandlesAreRefusedUpFront(int d)
    {
        var e = Assert.Throws<NotSupportedException>(() => LaunchPlanner.AttentionFor(d));
        Assert.Contains($"head_dim {d}", e.Message);
    }

    [Fact]
    public void AttentionGridsFollowTheKernelsTiles()
    {
        // Tensor cores: 64 query rows (or keys) per block; generic: 4, one warp each.
        Assert.Equal(new LaunchShape(new Dim3(1, 14, 2), 128), LaunchPlanner.AttentionForward(AttentionVariant.D64, 2, 37, 14));
        Assert.Equal(new LaunchShape(new Dim3(3, 14, 2), 128), LaunchPlanner.AttentionForward(AttentionVariant.D128, 2, 130, 14));
        Assert.Equal(new LaunchShape(new Dim3(10, 4, 1), 128), LaunchPlanner.AttentionForward(AttentionVariant.Generic, 1, 37, 4));
        Assert.Equal(new LaunchShape(new Dim3(2, 2, 3), 128), LaunchPlanner.AttentionBackwardDkDv(AttentionVariant.D64, 3, 65, 2));
        Assert.Equal(new LaunchShape(new Dim3(17, 2, 3), 128), LaunchPlanner.AttentionBackwardDkDv(AttentionVariant.Generic, 3, 65, 2));
        // Preprocess: one warp per (b, t, h) row, 4 warps per block.
        Assert.Equal(new LaunchShape(37, 128), LaunchPlanner.AttentionPreprocess(1, 37, 4));
    }

    [Fact]
    public void RowAndColumnKernelShapes()
    {
        Assert.Equal(new LaunchShape(5, 256), LaunchPlanner.WarpPerRow(37)); // 8 rows per 256-thread block
        Assert.Equal(new LaunchShape(1, 256), LaunchPlanner.WarpPerRow(0));
        Assert.Equal(new LaunchShape(28, new Dim3(32, 16)), LaunchPlanner.ColumnReduction(896));
        Assert.Equal(new LaunchShape(37, 128), LaunchPlanner.PerRowSoftmax(37, 97));
        Assert.Equal(new LaunchShape(16, 1024), LaunchPlanner.PerRowSoftmax(16, 151936));
        Assert.Equal(new LaunchShape(16, 32), LaunchPlanner.PerRowSoftmax(16, 5));
        Assert.Equal(new LaunchShape(new Dim3(3, 2), 128), LaunchPlanner.LoraShrink(130, 72));
        Assert.Equal(new LaunchShape(new Dim3(1, 1), 128), LaunchPlanner.LoraShrink(5, 1));
        Assert.Equal(new LaunchShape(37, 128), LaunchPlanner.EmbeddingForward(37));
        Assert.Equal(new LaunchShape(151936, 256), LaunchPlanner.EmbeddingBackward(151936));
    }

    [Theory]
    [InlineData(16384, 151936, 512L << 20, 832)]   // 0.5B Qwen2 at 16k tokens: 832 rows (13 x 64) of fp32 logits fit 512 MiB
    [InlineData(74, 61, 512L << 20, 74)]           // everything fits: one chunk
    [InlineData(1000, 50000, 4L * 50000 * 10, 10)] // fewer than 64 rows fit: exactly what fits
    [InlineData(5, 1_000_000, 1, 1)]               // at least one row
    public void HeadChunkRows(int rows, int vocab, long budget, int want) => Assert.Equal(want, ActivationLayout.ChunkRows(rows, vocab, budget));

    private static ModelConfig Config(bool tied = false, string type = "llama") => BackendParityTests.Config(type, tied: tied);

    [Fact]
    public void ActivationArenaHoldsEveryTensorAlignedAndDisjoint()
    {
        var c = Config();
        var ranks = new int[c.NumLayers, 7];
        ranks[0, 0] = 4; ranks[1, 6] = 72;
        var plan = ActivationLayout.Plan(c, rows: 74, ranks, maskBuffer: true);
        Assert.Equal(74, plan.Rows);
        var regions = plan.Arena.Regions.Where(r => r.Bytes > 0).OrderBy(r => r.Offset).ToList();
        foreach (var r in plan.Arena.Regions) Assert.True(r.Offset % ArenaLayout.Alignment == 0, $"{r} is not 256-byte aligned");
        for (int i = 1; i < regions.Count; i++) Assert.True(regions[i - 1].End <= regions[i].Offset, $"{regions[i - 1]} overlaps {regions[i]}");
        Assert.True(regions[^1].End <= plan.Arena.TotalBytes);

        long n = 74;
        Assert.Equal(n * c.HiddenSize * 2, plan.Xs[0].Bytes);
        Assert.Equal(c.NumLayers + 1, plan.Xs.Length);
        Assert.Equal(n * c.QDim * 2, plan.Layers[1].Q.Bytes);
        Assert.Equal(n * c.KvDim * 2, plan.Layers[1].V.Bytes);
        Assert.Equal(n * c.NumHeads * 4, plan.Layers[0].Lse.Bytes);
        Assert.Equal(n * c.IntermediateSize * 2, plan.Layers[0].G.Bytes);
        Assert.Equal(n * 4 * 2, plan.Layers[0].LoraT[0].Bytes);
        Assert.Equal(n * 72 * 2, plan.Layers[1].LoraT[6].Bytes);
        Assert.Equal(0, plan.Layers[0].LoraT[1].Bytes);
        Assert.Equal(n * 72 * 2, plan.ScratchR.Bytes);
        Assert.Equal(n * Math.Max(c.HiddenSize, c.IntermediateSize) * 2, plan.ScratchIn.Bytes);
        Assert.Equal(n * c.IntermediateSize * 2, plan.Mask.Bytes);
        Assert.Equal((long)plan.HeadChunkRows * c.VocabSize * 4, plan.Logits.Bytes);
        Assert.Equal(0, ActivationLayout.Plan(c, 74, ranks, maskBuffer: false).Mask.Bytes);
    }

    [Fact]
    public void ParameterArenaPutsTrainableTensorsInOnePaddedBlockWithDecayingOnesFirst()
    {
        var c = Config(tied: true, type: "qwen2");
        var model = BackendParityTests.Model(c, 1);
        var all = model.Parameters().ToList();
        var trainable = all; // full fine-tuning
        var layout = ParameterLayout.Plan(all, trainable, c.HeadDim / 2);
        Assert.Equal(all.Count, layout.Trainable.Length);
        Assert.DoesNotContain(layout.Parameters, p => !p.Trainable);
        long index = 0;
        bool sawVector = false;
        foreach (var d in layout.Trainable)
        {
            Assert.Equal(index, d.TrainableIndex);
            Assert.Equal(0, d.TrainableIndex % ParameterLayout.TrainablePadding);
            Assert.Equal(layout.TrainableBf16.Offset + d.TrainableIndex * 2, d.Bf16.Offset);
            bool decays = d.Host.Shape.Length >= 2;
            Assert.False(decays && sawVector, $"{d.Host.Name} decays but comes after a non-decaying tensor");
            sawVector |= !decays;
            if (decays) Assert.True(d.TrainableIndex + d.Length <= layout.DecayingElements);
            else Assert.True(d.TrainableIndex >= layout.DecayingElements);
            index += ParameterLayout.Padded(d.Length);
        }
        Assert.Equal(index, layout.TrainableElements);
        Assert.Equal(index * 4, layout.Master.Bytes);
        Assert.Equal(index * 4, layout.Grad.Bytes);
        Assert.Equal(c.HeadDim / 2 * 8, layout.InvFreq.Bytes);
        Assert.Same(layout[model.Embed], layout.Parameters.Single(p => ReferenceEquals(p.Host, model.Embed)));

        // LoRA: the base is frozen (its own bf16 regions), only the adapter is in the trainable block.
        var adapter = BackendParityTests.Adapter(c, 2);
        var lora = ParameterLayout.Plan(all.Concat(adapter.Parameters()).ToList(), adapter.Parameters().ToList(), c.HeadDim / 2);
        Assert.Equal(adapter.Parameters().Count(), lora.Trainable.Length);
        Assert.All(all, p => Assert.False(lora[p].Trainable));
        Assert.Equal(lora.TrainableElements, lora.DecayingElements); // every LoRA A/B is a matrix
        Assert.All(lora.Parameters, p => Assert.True(p.Bf16.Offset % ArenaLayout.Alignment == 0 || p.Trainable));

        Assert.Throws<ArgumentException>(() => ParameterLayout.Plan(all, [Parameter.Zeros("stray", 3)], 4));
        Assert.Throws<ArgumentException>(() => ParameterLayout.Plan([.. all, all[0]], [], 4));
    }

    [Fact]
    public void ArenaLayoutAlignsEveryRegion()
    {
        var a = new ArenaLayout();
        var r1 = a.Add("a", 3, 2);
        var r2 = a.Add("b", 1, 4);
        var r3 = a.Add("empty", 0, 4);
        var r4 = a.Add("c", 100, 8);
        Assert.Equal(0, r1.Offset);
        Assert.Equal(256, r2.Offset);
        Assert.Equal(512, r3.Offset);
        Assert.Equal(512, r4.Offset);
        Assert.Equal(512 + 800, a.TotalBytes);
    }
}
