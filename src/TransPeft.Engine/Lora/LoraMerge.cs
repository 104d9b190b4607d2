using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Lora;

/// <summary>
/// Folding an adapter into its base and back: W ← W ± scaling · B·A for every adapted projection. This
/// is the one place B·A is materialised. A merged model computes the adapter-applied logits with no
/// LoRA path at run time (the serving form); unmerging restores the base up to fp32 rounding.
/// </summary>
public static class LoraMerge
{
    /// <summary>A new model whose weights are the base's with the adapter merged in (the base is untouched).</summary>
    public static TransformerModel Merge(TransformerModel baseModel, LoraAdapter adapter)
    {
        var merged = baseModel.Clone();
        MergeInPlace(merged, adapter, +1);
        // Finite inputs can still overflow fp32 (a huge scaling or B); a merged model with infinities is refused, not written.
        foreach (var m in adapter.Modules())
            NonFiniteValueException.ThrowIfAny(merged.Layers[m.Layer].Weight(m.Projection).Data, "merge", $"merged weight '{m.Projection.FullName(m.Layer)}'");
        return merged;
    }

    /// <summary>Adds (sign = +1) or subtracts (sign = −1) scaling · B·A into each adapted weight.</summary>
    public static void MergeInPlace(TransformerModel model, LoraAdapter adapter, int sign)
    {
        if (adapter.NumLayers != model.Config.NumLayers)
            throw new ArgumentException($"adapter has {adapter.NumLayers} layers, the model {model.Config.NumLayers}");
        foreach (var m in adapter.Modules())
        {
            var w = model.Layers[m.Layer].Weight(m.Projection);
            int outDim = m.Out, inDim = m.In, r = m.Rank;
            if (w.Shape[0] != outDim || w.Shape[1] != inDim)
                throw new ArgumentException($"{m.Projection.FullName(m.Layer)}: adapter is [{outDim} x {inDim}], weight is [{w.Shape[0]} x {w.Shape[1]}]");
            float s = sign * m.Scaling;
            var a = m.A.Data; var b = m.B.Data; var wd = w.Data;
            Parallel.For(0, outDim, o =>
            {
                // Row o of B·A = Σ_k B[o,k] · A[k,:]; accumulate in double so merge/unmerge round-trips tightly.
                var row = new double[inDim];
                for (int k = 0; k < r; k++)
                {
                    double bk = b[o * r + k];
                    for (int i = 0; i < inDim; i++) row[i] += bk * a[k * inDim + i];
                }
                for (int i = 0; i < inDim; i++) wd[o * inDim + i] = (float)(wd[o * inDim + i] + s * row[i]);
            });
        }
    }
}
