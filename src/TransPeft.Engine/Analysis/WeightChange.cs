using TransPeft.Engine.Model;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Analysis;

/// <summary>
/// How far one or more weight tensors moved between two versions of a model: Σ (new − old)², Σ old², Σ new² and
/// Σ old·new, accumulated in float64 (a float32 sum over millions of weights would lose the small differences an
/// update makes). The one place the relative change and the cosine are computed, for the decoder
/// (<see cref="UpdateAnalyzer"/>) and the BERT encoder (<see cref="Model.Bert.BertUpdate"/>).
/// </summary>
internal sealed class WeightChange
{
    public double DiffSq, OldSq, NewSq, Dot;

    /// <summary>‖W_new − W_old‖ / ‖W_old‖ (Frobenius); 0 when nothing changed, +∞ when a zero tensor became nonzero.</summary>
    public double Relative => DiffSq == 0 ? 0 : Math.Sqrt(DiffSq) / Math.Sqrt(OldSq);

    /// <summary>cos(W_old, W_new) of the flattened tensors (NaN when one of them is all zeros).</summary>
    public double Cosine => Dot / Math.Sqrt(OldSq * NewSq);

    /// <summary>Adds another tensor's sums: the group's change is that of the concatenation, not a mean of ratios.</summary>
    public void Add(WeightChange o) { DiffSq += o.DiffSq; OldSq += o.OldSq; NewSq += o.NewSq; Dot += o.Dot; }

    public static WeightChange Of(Parameter oldP, Parameter newP)
    {
        if (!oldP.Shape.SequenceEqual(newP.Shape))
            throw new ArgumentException($"{oldP.Name}: shape {ArchitectureDiff.Shape(oldP.Shape)} vs {ArchitectureDiff.Shape(newP.Shape)}");
        return Of(oldP.Data, newP.Data);
    }

    /// <summary>The sums of two tensors of the same length (the caller checks shapes and names them).</summary>
    public static WeightChange Of(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"{a.Length} vs {b.Length} weights");
        double dd = 0, aa = 0, bb = 0, ab = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double x = a[i], y = b[i], d = y - x;
            dd += d * d; aa += x * x; bb += y * y; ab += x * y;
        }
        return new WeightChange { DiffSq = dd, OldSq = aa, NewSq = bb, Dot = ab };
    }
}
