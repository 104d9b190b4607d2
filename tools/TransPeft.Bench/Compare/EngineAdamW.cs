using System.Numerics;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;

namespace TransPeft.Bench.Compare;

/// <summary>
/// A minimal AdamW (decoupled weight decay, bias-corrected moments, as torch.optim.AdamW) so the bench times
/// the same optimizer work on both sides. Stand-in until the engine's Training/AdamW lands; then the bench
/// should call that instead.
/// </summary>
internal sealed class EngineAdamW(IReadOnlyList<Parameter> parameters, float lr, float beta1 = 0.9f, float beta2 = 0.999f,
    float eps = 1e-8f, float weightDecay = 0.01f)
{
    private readonly float[][] _m = parameters.Select(p => new float[p.Length]).ToArray();
    private readonly float[][] _v = parameters.Select(p => new float[p.Length]).ToArray();
    private int _t;

    public void Step()
    {
        _t++;
        float bc1 = 1f - MathF.Pow(beta1, _t), bc2 = 1f - MathF.Pow(beta2, _t);
        float stepSize = lr / bc1, invSqrtBc2 = 1f / MathF.Sqrt(bc2), decay = 1f - lr * weightDecay;
        CpuParallel.For(parameters.Count, i =>
        {
            var p = parameters[i];
            float[] w = p.Data, g = p.Grad!, m = _m[i], v = _v[i];
            int n = w.Length, k = 0, width = Vector<float>.Count;
            var b1 = new Vector<float>(beta1); var b2 = new Vector<float>(beta2);
            var ob1 = new Vector<float>(1 - beta1); var ob2 = new Vector<float>(1 - beta2);
            for (; k <= n - width; k += width)
            {
                var gv = new Vector<float>(g, k);
                var mv = b1 * new Vector<float>(m, k) + ob1 * gv;
                var vv = b2 * new Vector<float>(v, k) + ob2 * gv * gv;
                mv.CopyTo(m, k); vv.CopyTo(v, k);
                var upd = mv * stepSize / (Vector.SquareRoot(vv) * invSqrtBc2 + new Vector<float>(eps));
                (new Vector<float>(w, k) * decay - upd).CopyTo(w, k);
            }
            for (; k < n; k++)
            {
                m[k] = beta1 * m[k] + (1 - beta1) * g[k];
                v[k] = beta2 * v[k] + (1 - beta2) * g[k] * g[k];
                w[k] = w[k] * decay - stepSize * m[k] / (MathF.Sqrt(v[k]) * invSqrtBc2 + eps);
            }
        });
    }
}
