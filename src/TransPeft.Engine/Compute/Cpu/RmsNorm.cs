using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// RMSNorm(x; w) = x * rstd * w with rstd = 1 / sqrt(mean(x²) + eps). The forward saves rstd per row so
/// the backward needs only the input: with y = x·r·w,
///   dx_i = r·w_i·dy_i − x_i · r³/C · Σ_j x_j·w_j·dy_j,     dw_i += Σ_rows dy_i·x_i·r.
/// </summary>
internal static class RmsNorm
{
    /// <summary>out[N,C], rstd[N] from inp[N,C], weight[C].</summary>
    public static void Forward<T>(T[] outp, T[] rstd, T[] inp, T[] weight, int n, int c, double eps)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T epsT = T.CreateChecked(eps);
        if (!CpuParallel.Splits(n, (long)n * c > 32_768))
        {
            for (int i = 0; i < n; i++) ForwardRow(outp, rstd, inp, weight, i, c, epsT);
            return;
        }
        ForwardParallel(outp, rstd, inp, weight, n, c, epsT);
    }

    // The lambda lives in its own method: its closure would otherwise be allocated on every call, split or not.
    private static void ForwardParallel<T>(T[] outp, T[] rstd, T[] inp, T[] weight, int n, int c, T eps) where T : unmanaged, IFloatingPointIeee754<T> =>
        CpuParallel.For(n, i => ForwardRow(outp, rstd, inp, weight, i, c, eps));

    private static void ForwardRow<T>(T[] outp, T[] rstd, T[] inp, T[] weight, int i, int c, T eps) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var x = inp.AsSpan(i * c, c);
        T ms = TensorPrimitives.SumOfSquares<T>(x) / T.CreateChecked(c);
        T r = T.One / T.Sqrt(ms + eps);
        rstd[i] = r;
        var y = outp.AsSpan(i * c, c);
        TensorPrimitives.Multiply(x, r, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>dinp[N,C] += dx; dweight[C] += dw when not null (frozen weights get no gradient).</summary>
    public static void Backward<T>(T[] dinp, T[]? dweight, T[] dout, T[] inp, T[] weight, T[] rstd, int n, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T cT = T.CreateChecked(c);
        CpuParallel.For(n, i =>
        {
            var x = inp.AsSpan(i * c, c);
            var dy = dout.AsSpan(i * c, c);
            var dx = dinp.AsSpan(i * c, c);
            T r = rstd[i];
            T[] buf = System.Buffers.ArrayPool<T>.Shared.Rent(c);
            var wdy = buf.AsSpan(0, c);
            // s = Σ_j x_j w_j dy_j;  dx += r·(w∘dy) − x·(s·r³/C)
            TensorPrimitives.Multiply<T>(weight, dy, wdy);
            T s = TensorPrimitives.Dot<T>(x, wdy);
            T coef = s * r * r * r / cT;
            TensorPrimitives.MultiplyAdd<T>(wdy, r, dx, dx);
            TensorPrimitives.MultiplyAdd<T>(x, -coef, dx, dx);
            System.Buffers.ArrayPool<T>.Shared.Return(buf);
        }, parallel: (long)n * c > 32_768);
        if (dweight is not null)
        {
            // Column sums: rows are independent, so this stays serial over rows and SIMD over columns.
            T[] buf = System.Buffers.ArrayPool<T>.Shared.Rent(c);
            var t = buf.AsSpan(0, c);
            for (int i = 0; i < n; i++)
            {
                TensorPrimitives.Multiply<T>(dout.AsSpan(i * c, c), inp.AsSpan(i * c, c), t);
                TensorPrimitives.MultiplyAdd<T>(t, rstd[i], dweight, dweight);
            }
            System.Buffers.ArrayPool<T>.Shared.Return(buf);
        }
    }
}
