using TorchSharp;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;
using static TorchSharp.torch;

namespace TransPeft.Bench.Compare;

/// <summary>
/// Before anything is timed: both implementations must compute the same thing on the same weights and
/// batch, or the throughput ratio means nothing. Loss within 1e-4 relative; gradients (fp32, different
/// summation orders) within 1e-3 relative L2 per tensor. Any miss throws: the bench stops loudly.
/// </summary>
internal static class Parity
{
    public const double LossTolerance = 1e-4, GradTolerance = 1e-3;

    public static void CheckLoss(string what, InferenceContext engine, TorchLlama tm, TokenBatch batch, Tensor ids, bool useLora)
    {
        var (sum, counted) = engine.Loss(batch);
        double e = sum / counted;
        double t;
        using (torch.no_grad())
        {
            tm.UseLora = useLora;
            using var l = tm.Loss(ids);
            t = l.item<float>();
        }
        double rel = Math.Abs(e - t) / Math.Abs(t);
        Console.WriteLine($"  parity {what,-11} engine {e:F7}  libtorch {t:F7}  rel diff {rel:E2}");
        if (!(rel <= LossTolerance))
            throw new InvalidOperationException($"{what}: engine and libtorch disagree ({e} vs {t}, rel {rel:E2} > {LossTolerance:E0}); timings would compare different computations");
    }

    public static void CheckGradients(string what, TrainingContext engine, TorchLlama tm, TokenBatch batch, Tensor ids, bool useLora)
    {
        engine.ComputeGradients(batch);
        tm.SetTrainable(useLora);
        tm.UseLora = useLora;
        using (var scope = torch.NewDisposeScope())
        {
            var loss = tm.Loss(ids);
            loss.backward();
        }
        double worst = 0;
        string worstName = "";
        int tensors = 0;
        foreach (var (name, grad) in engine.Gradients())
        {
            var tg = tm.Named(name).grad ?? throw new InvalidOperationException($"{what}: libtorch computed no gradient for {name}");
            var t = tg.data<float>().ToArray();
            var g = grad.Span;
            double diff = 0, norm = 0;
            for (int i = 0; i < t.Length; i++) { double d = g[i] - t[i]; diff += d * d; norm += (double)t[i] * t[i]; }
            double rel = Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
            if (rel > worst || worstName == "") { worst = rel; worstName = name; }
            tensors++;
        }
        foreach (var p in tm.BaseParameters.Concat(tm.LoraParameters)) { p.grad?.Dispose(); p.grad = null; }
        Console.WriteLine($"  parity {what,-11} {tensors} tensors, worst rel L2 {worst:E2} ({worstName})");
        if (!(worst <= GradTolerance))
            throw new InvalidOperationException($"{what}: gradient of {worstName} differs by {worst:E2} relative L2 (> {GradTolerance:E0})");
    }
}
