using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Softmax cross-entropy over rows of logits, fused with its gradient: loss_n = logsumexp(z_n) − z_n[y_n];
/// the logits are overwritten in place by scale · (softmax(z_n) − onehot(y_n)), so no probability matrix is
/// ever stored. Rows whose target is -100 contribute nothing and get a zero gradient.
/// </summary>
internal static class CrossEntropy
{
    public const int IgnoreIndex = -100;

    /// <summary>Returns Σ loss over counted rows. logits[rows,V] become dlogits when <paramref name="gradScale"/> is given.</summary>
    public static double ForwardBackward<T>(T[] logits, int logitsOffset, int[] targets, int targetOffset, int rows, int v, T? gradScale)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var losses = new double[rows];
        CpuParallel.For(rows, r =>
        {
            var z = logits.AsSpan(logitsOffset + r * v, v);
            int y = targets[targetOffset + r];
            if (y == IgnoreIndex)
            {
                if (gradScale is not null) z.Clear();
                return;
            }
            if ((uint)y >= (uint)v) throw new ArgumentOutOfRangeException(nameof(targets), $"target id {y} is outside the vocabulary [0, {v})");
            T max = TensorPrimitives.Max<T>(z);
            T[] buf = ArrayPool<T>.Shared.Rent(v);
            var e = buf.AsSpan(0, v);
            // e = exp(z − max); lse = max + log Σ e; softmax = e / Σ e.
            TensorPrimitives.Subtract(z, max, e);
            TensorPrimitives.Exp<T>(e, e);
            T sum = TensorPrimitives.Sum<T>(e);
            T lse = max + T.Log(sum);
            losses[r] = double.CreateChecked(lse - z[y]);
            if (gradScale is T s)
            {
                TensorPrimitives.Multiply(e, s / sum, z);
                z[y] -= s;
            }
            ArrayPool<T>.Shared.Return(buf);
        }, parallel: (long)rows * v > 65_536);
        double total = 0;
        foreach (var l in losses) total += l;
        return total;
    }
}
