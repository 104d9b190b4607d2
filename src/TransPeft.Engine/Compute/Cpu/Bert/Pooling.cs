using System.Numerics;
using System.Numerics.Tensors;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Compute.Cpu.Bert;

/// <summary>
/// Sentence pooling over last_hidden_state [B*T, H]: Mean averages the valid (non-padding) rows of each sequence,
/// as sentence-transformers does with the attention mask; Cls takes row 0 (the [CLS] token). Backward spreads
/// dpooled back: 1/valid to each valid row (mean) or all of it to row 0 (CLS).
/// </summary>
internal static class Pooling
{
    public static void Forward<T>(T[] pooled, T[] hidden, int[] validLength, int b, int t, int h, BertPooling mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < b; i++)
        {
            var dst = pooled.AsSpan(i * h, h);
            if (mode == BertPooling.Cls) { hidden.AsSpan(i * t * h, h).CopyTo(dst); continue; }
            dst.Clear();
            for (int j = 0; j < validLength[i]; j++) TensorPrimitives.Add<T>(dst, hidden.AsSpan((i * t + j) * h, h), dst);
            TensorPrimitives.Divide(dst, T.CreateChecked(validLength[i]), dst);
        }
    }

    /// <summary>dhidden [B*T, H] = the gradient of the pooled rows (written, padding rows zero).</summary>
    public static void Backward<T>(T[] dhidden, T[] dpooled, int[] validLength, int b, int t, int h, BertPooling mode)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Array.Clear(dhidden, 0, b * t * h);
        for (int i = 0; i < b; i++)
        {
            var src = dpooled.AsSpan(i * h, h);
            if (mode == BertPooling.Cls) { src.CopyTo(dhidden.AsSpan(i * t * h, h)); continue; }
            T inv = T.One / T.CreateChecked(validLength[i]);
            for (int j = 0; j < validLength[i]; j++) TensorPrimitives.Multiply(src, inv, dhidden.AsSpan((i * t + j) * h, h));
        }
    }
}
