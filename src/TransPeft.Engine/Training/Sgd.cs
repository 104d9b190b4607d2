using TransPeft.Engine.Model;

namespace TransPeft.Engine.Training;

/// <summary>
/// SGD as torch.optim.SGD (no dampening, no Nesterov): weight decay is coupled (added to the gradient),
/// and with momentum μ the buffer starts as the first gradient, then b ← μ b + g; θ ← θ - lr · b.
/// </summary>
internal sealed class Sgd : Optimizer
{
    private readonly float[][] _buf;

    public double Momentum { get; }
    public double WeightDecay { get; }
    public override string Kind => "sgd";

    public Sgd(IReadOnlyList<Parameter> parameters, double momentum, double weightDecay) : base(parameters)
    {
        Momentum = momentum; WeightDecay = weightDecay;
        _buf = momentum > 0 ? parameters.Select(p => new float[p.Length]).ToArray() : [];
    }

    public override void Update(double lr)
    {
        bool first = Step == 0;
        Step++;
        float rate = (float)lr, mu = (float)Momentum;
        for (int k = 0; k < Parameters.Count; k++)
        {
            var p = Parameters[k];
            var w = p.Data; var g = GradientClipping.Grad(p);
            float wd = Decays(p) ? (float)WeightDecay : 0f;
            for (int i = 0; i < w.Length; i++)
            {
                float d = g[i] + wd * w[i];
                if (mu > 0)
                {
                    d = first ? d : mu * _buf[k][i] + d;
                    _buf[k][i] = d;
                }
                w[i] -= rate * d;
            }
        }
    }

    protected override IEnumerable<(string, float[], Parameter)> State()
    {
        for (int k = 0; k < _buf.Length; k++) yield return ("momentum_buffer", _buf[k], Parameters[k]);
    }
}
