using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Compute;

/// <summary>The CPU reference against libtorch float64 autograd: logits, losses, every gradient, greedy tokens.</summary>
public class GoldenFixtureTests
{
    public static IEnumerable<object[]> Fixtures => GoldenFixture.Names();

    private static void AssertLogits(GoldenFixture f, string key, float[] got) =>
        Tolerance.Elementwise(key, f.Expected.ReadFloat64(key), got, atol: 1e-4, rtol: 1e-4);

    [Theory, MemberData(nameof(Fixtures))]
    public void BaseLogitsAndLossMatch(string name)
    {
        using var f = new GoldenFixture(name);
        var m = new CpuTransformer(f.Model);
        AssertLogits(f, "logits_base", m.ForwardLogits(f.Ids, f.B, f.T));
        var (sum, count) = m.Loss(f.Batch);
        Assert.Equal(f.Batch.CountedTargets(), count);
        Tolerance.Relative("loss_base", f.ExpectedScalar("loss_base"), sum / count, 1e-5);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void LoraLogitsAndLossMatch(string name)
    {
        using var f = new GoldenFixture(name);
        var m = new CpuTransformer(f.Model, f.LoadAdapter());
        AssertLogits(f, "logits_lora", m.ForwardLogits(f.Ids, f.B, f.T));
        var (sum, count) = m.Loss(f.Batch);
        Tolerance.Relative("loss_lora", f.ExpectedScalar("loss_lora"), sum / count, 1e-5);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void TransPeftLogitsAndLossMatchWithExplicitMasks(string name)
    {
        using var f = new GoldenFixture(name);
        var m = new CpuTransformer(f.Model, f.LoadAdapter());
        AssertLogits(f, "logits_transpeft", m.ForwardLogits(f.Ids, f.B, f.T, f.Perturbation));
        var ctx = new StepContext(default, f.Perturbation, Training: true);
        int counted = f.Batch.CountedTargets();
        var (sum, count) = m.ForwardBackward(f.Batch, 1f / counted, ctx);
        Tolerance.Relative("loss_transpeft", f.ExpectedScalar("loss_transpeft"), sum / count, 1e-5);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void FullFineTuneGradientsMatchEveryTensor(string name)
    {
        using var f = new GoldenFixture(name);
        var m = new CpuTransformer(f.Model, fullFineTune: true);
        int counted = f.Batch.CountedTargets();
        m.ZeroGrad();
        var (sum, _) = m.ForwardBackward(f.Batch, 1f / counted, new StepContext(default, null, true));
        Tolerance.Relative("loss_base", f.ExpectedScalar("loss_base"), sum / counted, 1e-5);
        int checkedTensors = 0;
        foreach (var p in f.Model.Parameters())
        {
            Tolerance.PerTensor("grad." + p.Name, f.Expected.ReadFloat64("grad." + p.Name), p.Grad);
            checkedTensors++;
        }
        Assert.Equal(f.Expected.Names.Count(n => n.StartsWith("grad.model.", StringComparison.Ordinal) || n == "grad.lm_head.weight"), checkedTensors);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void LoraGradientsMatchAndBaseGetsNone(string name)
    {
        using var f = new GoldenFixture(name);
        var adapter = f.LoadAdapter();
        var m = new CpuTransformer(f.Model, adapter);
        int counted = f.Batch.CountedTargets();
        m.ZeroGrad();
        m.ForwardBackward(f.Batch, 1f / counted, new StepContext(default, null, true));
        foreach (var p in adapter.Parameters())
            Tolerance.PerTensor("grad." + p.Name, f.Expected.ReadFloat64("grad." + p.Name), p.Grad);
        Assert.All(f.Model.Parameters(), p => Assert.Null(p.Grad));
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void TransPeftGradientsMatchAndDroppedLayersFfnLoraGetZero(string name)
    {
        using var f = new GoldenFixture(name);
        var adapter = f.LoadAdapter();
        var m = new CpuTransformer(f.Model, adapter);
        int counted = f.Batch.CountedTargets();
        m.ZeroGrad();
        m.ForwardBackward(f.Batch, 1f / counted, new StepContext(default, f.Perturbation, true));
        foreach (var p in adapter.Parameters())
            Tolerance.PerTensor("grad_transpeft." + p.Name, f.Expected.ReadFloat64("grad_transpeft." + p.Name), p.Grad);
        foreach (var mod in adapter.Modules().Where(x => f.Dropped[x.Layer] && x.Projection.IsFfn()))
        {
            Assert.All(mod.A.Grad!, g => Assert.Equal(0f, g));
            Assert.All(mod.B.Grad!, g => Assert.Equal(0f, g));
        }
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void GreedyTokensMatchExactly(string name)
    {
        using var f = new GoldenFixture(name);
        foreach (var (key, adapter) in new[] { ("greedy_base", (global::TransPeft.Engine.Lora.LoraAdapter?)null), ("greedy_lora", f.LoadAdapter()) })
        {
            var m = new CpuTransformer(f.Model, adapter);
            var seq = f.Expected.ReadInt64("greedy_prompt").Select(x => (int)x).ToList();
            var want = f.Expected.ReadInt64(key).Select(x => (int)x).ToArray();
            var got = new List<int>();
            for (int step = 0; step < want.Length; step++)
            {
                var logits = m.ForwardLogits(seq.ToArray(), 1, seq.Count);
                int v = f.Model.Config.VocabSize;
                var last = logits.AsSpan((seq.Count - 1) * v, v);
                int arg = 0;
                for (int j = 1; j < v; j++) if (last[j] > last[arg]) arg = j;
                got.Add(arg); seq.Add(arg);
            }
            Assert.Equal(want, got.ToArray());
        }
    }
}
