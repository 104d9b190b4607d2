using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Training;

/// <summary>
/// A stand-in for the transformer with a hand-written gradient: softmax regression of the next token on the
/// current one, logits(t) = W[ids[t], :] + b, trained against labels[t + 1] (the HF shift). Like the real
/// model it draws from the step's random stream: each position's W row is dropped with probability
/// <see cref="Dropout"/> (tag TagLoraDropout), and the whole W term is skipped for a micro-batch when the
/// Trans-PEFT perturbation drops layer 0. Every context it receives is recorded.
/// </summary>
internal sealed class FakeBigramModel : ITrainableModel
{
    public Parameter W { get; }
    public Parameter B { get; }
    public int Vocab { get; }
    public double Dropout { get; init; }
    /// <summary>Forward/backward calls after which the loss turns NaN (tests divergence handling); -1 = never.</summary>
    public int PoisonAfterCalls { get; init; } = -1;
    public List<(TokenBatch Batch, float Scale, StepContext Context)> Calls { get; } = [];

    public FakeBigramModel(int vocab, int seed)
    {
        Vocab = vocab;
        var rng = new Random(seed);
        W = new Parameter("model.w.weight", [vocab, vocab], Enumerable.Range(0, vocab * vocab).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray());
        B = new Parameter("model.b.bias", [vocab], new float[vocab]);
        W.EnableGrad(); B.EnableGrad();
    }

    public IReadOnlyList<Parameter> TrainableParameters => [W, B];

    public void ZeroGrad() { W.ZeroGrad(); B.ZeroGrad(); }

    public (double LossSum, int Counted) Loss(TokenBatch batch) => Run(batch, 0, StepContext.Eval, backward: false);

    public (double LossSum, int Counted) ForwardBackward(TokenBatch batch, float lossScale, in StepContext context)
    {
        Calls.Add((batch, lossScale, context));
        var r = Run(batch, lossScale, context, backward: true);
        return PoisonAfterCalls >= 0 && Calls.Count > PoisonAfterCalls ? (double.NaN, r.Counted) : r;
    }

    private (double LossSum, int Counted) Run(TokenBatch batch, float scale, StepContext ctx, bool backward)
    {
        int v = Vocab, T = batch.SeqLen;
        bool layerDropped = ctx.Perturbation?.IsDropped(0) ?? false;
        var logits = new double[v];
        double lossSum = 0;
        int counted = 0;
        for (int b = 0; b < batch.BatchSize; b++)
            for (int t = 0; t + 1 < T; t++)
            {
                int target = batch.Labels[b * T + t + 1];
                if (target == TokenBatch.IgnoreIndex) continue;
                int x = batch.InputIds[b * T + t];
                bool dropped = layerDropped
                    || (ctx.Training && Dropout > 0 && ctx.Random.Uniform(RandomStream.TagLoraDropout, 0, (uint)(b * T + t)) < Dropout);
                double max = double.NegativeInfinity;
                for (int k = 0; k < v; k++)
                {
                    logits[k] = (dropped ? 0 : W.Data[x * v + k]) + B.Data[k];
                    max = Math.Max(max, logits[k]);
                }
                double z = 0;
                for (int k = 0; k < v; k++) z += Math.Exp(logits[k] - max);
                lossSum += max + Math.Log(z) - logits[target];
                counted++;
                if (!backward) continue;
                for (int k = 0; k < v; k++)
                {
                    double d = Math.Exp(logits[k] - max) / z - (k == target ? 1 : 0);
                    float g = (float)d * scale;
                    if (!dropped) W.Grad![x * v + k] += g;
                    B.Grad![k] += g;
                }
            }
        return (lossSum, counted);
    }

    public float[] Snapshot() => [.. W.Data, .. B.Data];
    public float[] GradSnapshot() => [.. W.Grad!, .. B.Grad!];
}
