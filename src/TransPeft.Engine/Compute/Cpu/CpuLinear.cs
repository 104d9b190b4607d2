using System.Buffers;
using System.Numerics.Tensors;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// A linear layer with an optional bias and an optional LoRA module:
///   y = x·Wᵀ + b + s · (drop(x)·Aᵀ)·Bᵀ,  W [out,in], A [r,in], B [out,r], s = alpha/r.
/// The LoRA path multiplies through the rank-r side first and saves only t = drop(x)·Aᵀ [N,r]; the
/// dropout mask is regenerated from the Philox stream in the backward, never stored. Backward (unsloth's
/// fast_lora order): dt = s·dy·B;  dB += s·dyᵀ·t (those two in one pass over dy);  dA += dtᵀ·drop(x);  dx += dy·W + drop'(dt·A).
/// Frozen W (Grad == null) gets no weight-gradient GEMM at all: that is where LoRA saves 1/3 of the FLOPs.
/// </summary>
internal static unsafe class CpuLinear
{
    /// <summary>y[N,out] = x[N,in]·Wᵀ + b (+ LoRA). <paramref name="loraT"/> [N,r] receives drop(x)·Aᵀ.</summary>
    public static void Forward(float[] y, float[] x, int n, Parameter w, Parameter? bias, LoraModule? lora, float[]? loraT,
        float[] scratchIn, in StepContext ctx)
    {
        int inDim = w.Shape[1], outDim = w.Shape[0];
        fixed (float* py = y, px = x, pw = w.Data)
            Gemm.MatmulNT(py, px, pw, n, inDim, outDim, accumulate: false, 1f);
        if (bias is not null)
            for (int i = 0; i < n; i++)
                TensorPrimitives.Add(y.AsSpan(i * outDim, outDim), bias.Data, y.AsSpan(i * outDim, outDim));
        if (lora is null) return;
        int r = lora.Rank;
        float[] xin = x;
        if (UsesDropout(lora, ctx))
        {
            ApplyDropout(scratchIn, x, n, inDim, lora, ctx);
            xin = scratchIn;
        }
        fixed (float* pt = loraT, px = xin, pa = lora.A.Data, pb = lora.B.Data, py = y)
        {
            Gemm.MatmulNT(pt, px, pa, n, inDim, r, accumulate: false, 1f);
            Gemm.MatmulNT(py, pt, pb, n, r, outDim, accumulate: true, lora.Scaling);
        }
    }

    /// <summary>
    /// dx[N,in] += dy·W (+ LoRA path); dW, db, dA, dB accumulated when their parameter has a gradient buffer
    /// (dW and db only when <paramref name="baseGrads"/>: a LoRA backend keeps the base frozen whatever buffers it has).
    /// dx = null skips the input gradient (nothing upstream learns).
    /// </summary>
    public static void Backward(float[]? dx, float[] dy, float[] x, int n, Parameter w, Parameter? bias, LoraModule? lora,
        float[]? loraT, float[] scratchIn, float[] scratchR, in StepContext ctx, bool baseGrads = true)
    {
        int inDim = w.Shape[1], outDim = w.Shape[0];
        fixed (float* pdx = dx, pdy = dy, px = x, pw = w.Data)
        {
            if (baseGrads && w.Grad is { } gw)
                fixed (float* pgw = gw) Gemm.MatmulTN(pgw, pdy, px, n, outDim, inDim, accumulate: true, 1f);
            if (dx is not null) Gemm.MatmulNN(pdx, pdy, pw, n, outDim, inDim, accumulate: true, 1f);
        }
        if (baseGrads && bias?.Grad is { } gb)
            for (int i = 0; i < n; i++)
                TensorPrimitives.Add(gb, dy.AsSpan(i * outDim, outDim), gb);
        if (lora is null) return;

        int r = lora.Rank;
        bool dropout = UsesDropout(lora, ctx);
        float[] xin = x;
        if (dropout)
        {
            ApplyDropout(scratchIn, x, n, inDim, lora, ctx);
            xin = scratchIn;
        }
        // dt[N,r] = s · dy[N,out] · B[out,r] and dB += s · dyᵀ·t, in one pass over dy.
        LoraDtAndDb(scratchR, lora.B.Grad, dy, loraT!, lora.B.Data, n, outDim, r, lora.Scaling);
        fixed (float* pdt = scratchR, pa = lora.A.Data, pxin = xin)
        {
            if (lora.A.Grad is { } gA)
                fixed (float* pgA = gA) Gemm.MatmulTN(pgA, pdt, pxin, n, r, inDim, accumulate: true, 1f);
            if (dx is null) return;
            if (!dropout)
            {
                fixed (float* pdx = dx) Gemm.MatmulNN(pdx, pdt, pa, n, r, inDim, accumulate: true, 1f);
                return;
            }
            // With dropout, d(drop(x))/dx = keep/(1-p): form dt·A into scratch, then mask and add.
            fixed (float* ps = scratchIn) Gemm.MatmulNN(ps, pdt, pa, n, r, inDim, accumulate: false, 1f);
        }
        // The dropout derivative is the same keep/(1-p) mask: applied in place to the gradient.
        ApplyDropout(scratchIn, scratchIn, n, inDim, lora, ctx);
        TensorPrimitives.Add(dx!.AsSpan(0, n * inDim), scratchIn.AsSpan(0, n * inDim), dx.AsSpan(0, n * inDim));
    }

    /// <summary>
    /// dt[N,r] = s·dy·B (written) and dB[out,r] += s·dyᵀ·t (when gB is not null). Both only stream dy (memory-bound
    /// at rank r), so one pass does both: per row, r dot products and r axpys against L1-resident rows of Bᵀ and
    /// of a per-thread partial dBᵀ, reduced at the end.
    /// </summary>
    private static void LoraDtAndDb(float[] dt, float[]? gB, float[] dy, float[] t, float[] b, int n, int outDim, int r, float s)
    {
        var bt = ArrayPool<float>.Shared.Rent(r * outDim);
        for (int o = 0; o < outDim; o++)
            for (int j = 0; j < r; j++) bt[j * outDim + o] = b[o * r + j];
        int parts = Math.Max(1, Math.Min(CpuParallel.Threads, n / 64));
        var partial = gB is null ? null : new float[parts * r * outDim];
        CpuParallel.For(parts, part =>
        {
            int i0 = (int)((long)n * part / parts), i1 = (int)((long)n * (part + 1) / parts);
            for (int i = i0; i < i1; i++)
            {
                var dyi = dy.AsSpan(i * outDim, outDim);
                for (int j = 0; j < r; j++)
                {
                    dt[i * r + j] = s * TensorPrimitives.Dot(dyi, bt.AsSpan(j * outDim, outDim));
                    if (partial is null) continue;
                    var acc = partial.AsSpan((part * r + j) * outDim, outDim);
                    TensorPrimitives.MultiplyAdd(dyi, s * t[i * r + j], acc, acc);
                }
            }
        }, parallel: (long)n * outDim * r > 1_000_000);
        ArrayPool<float>.Shared.Return(bt);
        if (gB is null || partial is null) return;
        for (int part = 0; part < parts; part++)
            for (int j = 0; j < r; j++)
                for (int o = 0; o < outDim; o++) gB[o * r + j] += partial[(part * r + j) * outDim + o];
    }

    private static bool UsesDropout(LoraModule lora, in StepContext ctx) => ctx.Training && lora.Dropout > 0;

    private static uint Lane(LoraModule lora) => (uint)(lora.Layer * 8 + (int)lora.Projection);

    /// <summary>dst = x ∘ keep / (1 − p) (dst may be x), keep drawn per element (row·in + col) of this module's lane.</summary>
    private static void ApplyDropout(float[] dst, float[] x, int n, int inDim, LoraModule lora, StepContext ctx)
    {
        float p = (float)lora.Dropout, scale = 1f / (1f - p);
        uint lane = Lane(lora);
        var rs = ctx.Random;
        CpuParallel.For(n, row =>
        {
            // keep/(1-p) for this row, then one vector multiply (dst may be x).
            var keep = System.Buffers.ArrayPool<float>.Shared.Rent(inDim);
            var k = keep.AsSpan(0, inDim);
            rs.FillKeep(RandomStream.TagLoraDropout, lane, (uint)(row * inDim), k, p, scale);
            TensorPrimitives.Multiply(x.AsSpan(row * inDim, inDim), k, dst.AsSpan(row * inDim, inDim));
            System.Buffers.ArrayPool<float>.Shared.Return(keep);
        }, parallel: (long)n * inDim > 32_768);
    }

}
