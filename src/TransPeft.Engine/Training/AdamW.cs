using TransPeft.Engine.Model;

namespace TransPeft.Engine.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization"), in PyTorch's order:
/// <code>
///   θ ← θ (1 - lr·wd)                     decay, decoupled from the gradient
///   m ← β1 m + (1 - β1) g
///   v ← β2 v + (1 - β2) g²
///   θ ← θ - (lr / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)
/// </code>
/// Scalars in fp64, elements in fp32 (fp32 master weights and moments, as on the GPU).
/// </summary>
internal sealed class AdamW : Optimizer
{
    private readonly float[][] _m, _v;

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }
    public override string Kind => "adamw";

    public AdamW(IReadOnlyList<Parameter> parameters, double beta1, double beta2, double eps, double weightDecay) : base(parameters)
    {
        Beta1 = beta1; Beta2 = beta2; Epsilon = eps; WeightDecay = weightDecay;
        _m = parameters.Select(p => new float[p.Length]).ToArray();
        _v = parameters.Select(p => new float[p.Length]).ToArray();
    }

    public override void Update(double lr)
    {
        Step++;
        double bc1 = 1 - Math.Pow(Beta1, Step), bc2 = 1 - Math.Pow(Beta2, Step);
        float stepSize = (float)(lr / bc1);
        float invSqrtBc2 = (float)(1 / Math.Sqrt(bc2));
        float b1 = (float)Beta1, b2 = (float)Beta2, eps = (float)Epsilon;
        float oneMinusB1 = (float)(1 - Beta1), oneMinusB2 = (float)(1 - Beta2);
        for (int k = 0; k < Parameters.Count; k++)
        {
            var p = Parameters[k];
            var w = p.Data; var g = GradientClipping.Grad(p);
            var m = _m[k]; var v = _v[k];
            float decay = Decays(p) ? (float)(1 - lr * WeightDecay) : 1f;
            for (int i = 0; i < w.Length; i++)
            {
                float gi = g[i];
                m[i] = b1 * m[i] + oneMinusB1 * gi;
                v[i] = b2 * v[i] + oneMinusB2 * gi * gi;
                float denom = MathF.Sqrt(v[i]) * invSqrtBc2 + eps;
                w[i] = w[i] * decay - stepSize * (m[i] / denom);
            }
        }
    }

    protected override IEnumerable<(string, float[], Parameter)> State()
    {
        for (int k = 0; k < Parameters.Count; k++)
        {
            yield return ("exp_avg", _m[k], Parameters[k]);
            yield return ("exp_avg_sq", _v[k], Parameters[k]);
        }
    }

    internal ReadOnlySpan<float> FirstMoment(int k) => _m[k];
    internal ReadOnlySpan<float> SecondMoment(int k) => _v[k];
}
