using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.TransPeft;

/// <summary>Trans-PEFT masking/dropping and LoRA dropout inside the whole CPU model.</summary>
public class PerturbationModelTests
{
    [Fact]
    public void DroppedLayerIsAResidualPassThrough()
    {
        var model = TinyModels.Model(11);
        var ids = TinyModels.RandomIds(2 * 6, model.Config.VocabSize, 1);
        var dropped = new CpuTransformer(model).ForwardLogits(ids, 2, 6, new ExplicitFfnPerturbation(null, [false, true]));
        var zeroed = model.Clone();
        Array.Clear(zeroed.Layers[1].Down.Data); // MLP output of layer 1 is then exactly zero
        var reference = new CpuTransformer(zeroed).ForwardLogits(ids, 2, 6);
        Assert.Equal(reference, dropped);
        Assert.NotEqual(reference, new CpuTransformer(model).ForwardLogits(ids, 2, 6));
    }

    [Fact]
    public void EvaluationNeverPerturbs()
    {
        var model = TinyModels.Model(12);
        var adapter = TinyModels.TrainedAdapter(model.Config, dropout: 0.3);
        var m = new CpuTransformer(model, adapter);
        var batch = TokenBatch.FromIds(2, 8, TinyModels.RandomIds(16, model.Config.VocabSize, 2));
        var before = m.Loss(batch);
        var ctx = new StepContext(new RandomStream(1, 0, 0), new PhiloxFfnPerturbation(new RandomStream(1, 0, 0), 0.3, 0.3), true);
        var trained = m.ForwardBackward(batch, 1f, ctx);
        Assert.NotEqual(before.LossSum, trained.LossSum);      // training did perturb
        Assert.Equal(before.LossSum, m.Loss(batch).LossSum);    // evaluation does not
    }

    /// <summary>
    /// The backward regenerates the same Philox masks (FFN mask, layer drops, LoRA dropout) as the forward:
    /// the analytic LoRA gradient under a perturbation equals finite differences of the perturbed loss.
    /// </summary>
    [Theory]
    [InlineData(0.3, 0.0, 0.0)]
    [InlineData(0.2, 0.4, 0.0)]
    [InlineData(0.0, 0.0, 0.25)]
    public void GradientUnderPhiloxPerturbationMatchesFiniteDifferences(double pMask, double pDrop, double loraDropout)
    {
        var model = TinyModels.Model(13);
        var adapter = TinyModels.TrainedAdapter(model.Config, dropout: loraDropout);
        var m = new CpuTransformer(model, adapter);
        var batch = TokenBatch.FromIds(2, 5, TinyModels.RandomIds(10, model.Config.VocabSize, 3));
        var rs = new RandomStream(2024, 5, 1);
        var ctx = new StepContext(rs, new PhiloxFfnPerturbation(rs, pMask, pDrop), true);
        m.ZeroGrad();
        m.ForwardBackward(batch, 1f, ctx);
        foreach (var mod in adapter.Modules().Where((_, i) => i % 3 == 0))
        {
            var p = mod.B;
            for (int k = 0; k < p.Length; k += 7)
            {
                float keep = p.Data[k], h = 1e-2f;
                p.Data[k] = keep + h; double up = m.Loss(batch, ctx);
                p.Data[k] = keep - h; double down = m.Loss(batch, ctx);
                p.Data[k] = keep;
                double fd = (up - down) / (2 * h);
                Assert.True(Math.Abs(fd - p.Grad![k]) <= 2e-3 * Math.Max(1, Math.Abs(fd)), $"{p.Name}[{k}]: analytic {p.Grad![k]}, finite difference {fd}");
            }
        }
    }
}

internal static class CpuTransformerTestExtensions
{
    /// <summary>The perturbed training loss without touching gradients (a fresh model over the same weights).</summary>
    public static double Loss(this CpuTransformer m, TokenBatch batch, StepContext ctx)
    {
        var probe = new CpuTransformer(m.Model, m.Adapter);
        // Gradients of the probe are discarded: it shares the adapter's Parameter objects, so save and restore them.
        var saved = m.TrainableParameters.Select(p => (float[])p.Grad!.Clone()).ToList();
        var (sum, _) = probe.ForwardBackward(batch, 0f, ctx);
        for (int i = 0; i < saved.Count; i++) saved[i].CopyTo(m.TrainableParameters[i].Grad!, 0);
        return sum;
    }
}
