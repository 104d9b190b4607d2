using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Lora;

public class LoraMergeTests
{
    [Theory, MemberData(nameof(GoldenFixture.Names), MemberType = typeof(GoldenFixture))]
    public void MergedModelGivesAdapterAppliedLogits(string name)
    {
        using var f = new GoldenFixture(name);
        var adapter = f.LoadAdapter();
        var merged = LoraMerge.Merge(f.Model, adapter);
        var logits = new CpuTransformer(merged).ForwardLogits(f.Ids, f.B, f.T);
        Tolerance.Elementwise("merged logits", f.Expected.ReadFloat64("logits_lora"), logits, 1e-4, 1e-4);
    }

    [Fact]
    public void UnmergeRestoresTheBase()
    {
        var model = TinyModels.Model(21);
        var adapter = TinyModels.TrainedAdapter(model.Config);
        var copy = model.Clone();
        LoraMerge.MergeInPlace(copy, adapter, +1);
        Assert.NotEqual(model.Layers[0].Q.Data, copy.Layers[0].Q.Data);
        LoraMerge.MergeInPlace(copy, adapter, -1);
        var orig = model.Parameters().ToList(); var back = copy.Parameters().ToList();
        for (int i = 0; i < orig.Count; i++)
            for (int k = 0; k < orig[i].Length; k++)
                Assert.True(Math.Abs(orig[i].Data[k] - back[i].Data[k]) < 1e-6, $"{orig[i].Name}[{k}]");
    }
}
