using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu.Bert;

/// <summary>
/// LayerNorm with weight and bias (BERT's): y = (x − μ)·rstd·w + b, rstd = 1/sqrt(var + eps), var the biased
/// variance. The forward saves μ and rstd per row. Backward with x̂ = (x − μ)·rstd and g = dy∘w:
///   dx = rstd · (g − mean(g) − x̂ · mean(g∘x̂)),   dw += Σ_rows dy∘x̂,   db += Σ_rows dy.
/// </summary>
internal static class LayerNorm
{
    /// <summary>out[N,C], mean[N], rstd[N] from inp[N,C], weight[C], bias[C].</summary>
    public static void Forward<T>(T[] outp, T[] mean, T[] rstd, T[] inp, T[] weight, T[] bias, int n, int c, double eps)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T cT = T.CreateChecked(c), epsT = T.CreateChecked(eps);
        CpuParallel.For(n, i =>
        {
            var x = inp.AsSpan(i * c, c);
            var y = outp.AsSpan(i * c, c);
            T mu = TensorPrimitives.Sum<T>(x) / cT;
            TensorPrimitives.Subtract(x, mu, y);
            T var = TensorPrimitives.SumOfSquares<T>(y) / cT;
            T r = T.One / T.Sqrt(var + epsT);
            mean[i] = mu;
            rstd[i] = r;
            TensorPrimitives.Multiply(y, r, y);
            TensorPrimitives.FusedMultiplyAdd<T>(y, weight, bias, y);
        }, parallel: (long)n * c > 32_768);
    }

    /// <summary>dinp[N,C] += dx; dweight, dbias [C] += their gradients when not null (frozen: no gradient).</summary>
    public static void Backward<T>(T[] dinp, T[]? dweight, T[]? dbias, T[] dout, T[] inp, T[] weight, T[] mean, T[] rstd, int n, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T cT = T.CreateChecked(c);
        CpuParallel.For(n, i =>
        {
            T[] buf = System.Buffers.ArrayPool<T>.Shared.Rent(2 * c);
            var xhat = buf.AsSpan(0, c);
            var g = buf.AsSpan(c, c);
            TensorPrimitives.Subtract(inp.AsSpan(i * c, c), mean[i], xhat);
            TensorPrimitives.Multiply(xhat, rstd[i], xhat);
            TensorPrimitives.Multiply<T>(dout.AsSpan(i * c, c), weight, g);
            T meanG = TensorPrimitives.Sum<T>(g) / cT;
            T meanGx = TensorPrimitives.Dot<T>(g, xhat) / cT;
            // dx += rstd · (g − meanG − x̂·meanGx)
            TensorPrimitives.Subtract(g, meanG, g);
            TensorPrimitives.MultiplyAdd<T>(xhat, -meanGx, g, g);
            var dx = dinp.AsSpan(i * c, c);
            TensorPrimitives.MultiplyAdd<T>(g, rstd[i], dx, dx);
            System.Buffers.ArrayPool<T>.Shared.Return(buf);
        }, parallel: (long)n * c > 32_768);
        if (dweight is null && dbias is null) return;
        T[] tmp = System.Buffers.ArrayPool<T>.Shared.Rent(c);
        var t = tmp.AsSpan(0, c);
        for (int i = 0; i < n; i++)
        {
            var dy = dout.AsSpan(i * c, c);
            if (dbias is not null) TensorPrimitives.Add<T>(dbias, dy, dbias);
            if (dweight is null) continue;
            TensorPrimitives.Subtract(inp.AsSpan(i * c, c), mean[i], t);
            TensorPrimitives.Multiply(t, rstd[i], t);
            TensorPrimitives.MultiplyAdd<T>(t, dy, dweight, dweight);
        }
        System.Buffers.ArrayPool<T>.Shared.Return(tmp);
    }
}
