using System.Numerics;
using System.Numerics.Tensors;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Compute.Cpu.Bert;

/// <summary>
/// A BERT linear with bias and optional LoRA, generic over the element type so the float64 gradient checks run
/// the same code as training:  y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ. The LoRA path goes through the rank-r side first and
/// saves t = x·Aᵀ [N, r]. Backward: dB += s·dyᵀ·t;  dt = s·dy·B;  dA += dtᵀ·x;  dx += dy·W + dt·A; a frozen W
/// (Grad null) gets no weight-gradient GEMM.
/// </summary>
internal static unsafe class BertLinearOps
{
    /// <summary>y[N,out] = x[N,in]·Wᵀ + b (+ LoRA, whose x·Aᵀ goes to <paramref name="loraT"/> [N, r]).</summary>
    public static void Forward<T>(T[] y, T[] x, int n, BertLinear<T> lin, T[]? loraT) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int inDim = lin.In, outDim = lin.Out;
        fixed (T* py = y, px = x, pw = lin.Weight.Data)
            Gemm.MatmulNT(py, px, pw, n, inDim, outDim, accumulate: false, T.One);
        var bias = lin.Bias.Data;
        CpuParallel.For(n, i => TensorPrimitives.Add<T>(y.AsSpan(i * outDim, outDim), bias, y.AsSpan(i * outDim, outDim)),
            parallel: (long)n * outDim > 65_536);
        if (lin.Lora is not { } lora) return;
        int r = lora.Rank;
        fixed (T* pt = loraT, px = x, pa = lora.A.Data, pb = lora.B.Data, py = y)
        {
            Gemm.MatmulNT(pt, px, pa, n, inDim, r, accumulate: false, T.One);
            Gemm.MatmulNT(py, pt, pb, n, r, outDim, accumulate: true, T.CreateTruncating(lora.Scaling));
        }
    }

    /// <summary>dx[N,in] += dy·W (+ LoRA path) when dx is not null; gradients of W, b, A, B accumulated where enabled.</summary>
    public static void Backward<T>(T[]? dx, T[] dy, T[] x, int n, BertLinear<T> lin, T[]? loraT) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int inDim = lin.In, outDim = lin.Out;
        fixed (T* pdx = dx, pdy = dy, px = x, pw = lin.Weight.Data)
        {
            if (lin.Weight.Grad is { } gw)
                fixed (T* pgw = gw) Gemm.MatmulTN(pgw, pdy, px, n, outDim, inDim, accumulate: true, T.One);
            if (dx is not null) Gemm.MatmulNN(pdx, pdy, pw, n, outDim, inDim, accumulate: true, T.One);
        }
        if (lin.Bias.Grad is { } gb)
            for (int i = 0; i < n; i++) TensorPrimitives.Add<T>(gb, dy.AsSpan(i * outDim, outDim), gb);
        if (lin.Lora is not { } lora) return;
        int r = lora.Rank;
        T s = T.CreateTruncating(lora.Scaling);
        var dt = System.Buffers.ArrayPool<T>.Shared.Rent(n * r);
        fixed (T* pdy = dy, pt = loraT, pb = lora.B.Data, pa = lora.A.Data, pdt = dt, px = x, pdx = dx)
        {
            if (lora.B.Grad is { } gB)
                fixed (T* pgB = gB) Gemm.MatmulTN(pgB, pdy, pt, n, outDim, r, accumulate: true, s);
            Gemm.MatmulNN(pdt, pdy, pb, n, outDim, r, accumulate: false, s);
            if (lora.A.Grad is { } gA)
                fixed (T* pgA = gA) Gemm.MatmulTN(pgA, pdt, px, n, r, inDim, accumulate: true, T.One);
            if (dx is not null) Gemm.MatmulNN(pdx, pdt, pa, n, r, inDim, accumulate: true, T.One);
        }
        System.Buffers.ArrayPool<T>.Shared.Return(dt);
    }
}
