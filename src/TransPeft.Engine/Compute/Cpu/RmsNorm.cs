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
        T cT = T.CreateChecked(c), epsT = T.CreateChecked(eps);
        CpuParallel.For(n, i =>
        {
            var x = inp.AsSpan(i * c, c);
            T ms = TensorPrimitives.SumOfSquares<T>(x) / cT;
            T r = T.One / T.Sqrt(ms + epsT);
            rstd[i] = r;
            var y = outp.AsSpan(i * c, c);
            TensorPrimitives.Multiply(x, r, y);
            TensorPrimitives.Multiply(y, weight, y);
        }, parallel: (long)n * c > 32_768);
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
            // s = Σ_j x_j w_j dy_j
            T s = T.Zero;
            for (int j = 0; j < c; j++) s += x[j] * weight[j] * dy[j];
            T coef = s * r * r * r / cT;
            for (int j = 0; j < c; j++) dx[j] += r * weight[j] * dy[j] - x[j] * coef;
        }, parallel: (long)n * c > 32_768);
        if (dweight is not null)
        {
            // Column sums: rows are independent, so this stays serial over rows and SIMD over columns.
            for (int i = 0; i < n; i++)
            {
                var x = inp.AsSpan(i * c, c);
                var dy = dout.AsSpan(i * c, c);
                T r = rstd[i];
                for (int j = 0; j < c; j++) dweight[j] += dy[j] * x[j] * r;
            }
        }
    }
}
