using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;
using static TransPeft.Engine.Tests.Cuda.Backend.DeviceScratch;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// Every kernel the backend launches, through <see cref="CudaOps"/> (so with the backend's own launch shapes and
/// argument packing), against the CPU reference op of Compute/Cpu on fresh random inputs, at several shapes including
/// odd ones (T = 37 and 130, head_dim 8/16/64/128, GQA, rows and columns that are not multiples of 4, 8 or 64).
/// Outputs are poisoned with NaN first, so an element a kernel fails to write fails the test; NaN never passes.
/// Inputs are bf16-rounded before the CPU sees them. Tolerances: one bf16 rounding of the output (relative 2^-8)
/// plus fp32 summation order, stated per test. Run on the GPU by <see cref="GpuKernelParityTests"/>; the emulated
/// run only checks this harness.
/// </summary>
public abstract class KernelParityTests
{
    internal abstract IComputeDevice NewDevice();

    private DeviceScratch Scratch() => new(NewDevice());

    /// <summary>|got − want| ≤ frac·max|want| + rel·|want|: bf16 outputs whose small elements carry cancellation.</summary>
    private static void Close(string what, float[] want, float[] got, double frac = 4e-3, double rel = 8e-3) =>
        ParityCheck.Elementwise(what, want, got, frac * MaxAbs(want) + 1e-30, rel);

    [SkippableTheory]
    [InlineData(1, 8, 61)]
    [InlineData(37, 64, 61)]
    [InlineData(130, 72, 1000)]
    public void EmbeddingForwardAndBackward(int n, int c, int v)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var wte = Random(v * c, 1);
        var ids = TinyIds(n, v, 2);
        var dWte = s.Bf16(wte);
        var dIds = s.I32(ids);
        var outp = s.PoisonedBf16((long)n * c);
        ops.EmbeddingForward(outp, dIds, dWte, n, c, v);
        var want = new float[n * c];
        Embedding.Forward(want, ids, wte, n, c, v);
        ParityCheck.Elementwise("embedding_forward", want, s.ReadBf16(outp, n * c), 0, 0);

        var dout = Random(n * c, 3);
        var dDout = s.Bf16(dout);
        var grad = Random(v * c, 4); // the kernel adds into an existing gradient
        var dGrad = s.F32(grad);
        ops.EmbeddingBackward(dGrad, dDout, dIds, n, c, v);
        Embedding.Backward(grad, dout, ids, n, c);
        ParityCheck.Elementwise("embedding_backward", grad, s.ReadF32(dGrad, v * c), 1e-6, 1e-5);
    }

    private static int[] TinyIds(int n, int v, int seed)
    {
        var rng = new Random(seed);
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = rng.Next(Math.Min(v, 7)) * (v / 7 > 0 ? v / 7 : 1) % v; // repeats, so rows collide
        return ids;
    }

    [SkippableTheory]
    [InlineData(1, 8)]
    [InlineData(37, 36)]
    [InlineData(64, 64)]
    [InlineData(130, 200)]
    public void RmsNormForwardResidualAndBackward(int n, int c)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        const float eps = 1e-5f;
        var x = Random(n * c, 10, 2);
        var y = Random(n * c, 11);
        var w = Random(c, 12);
        for (int i = 0; i < c; i++) w[i] += 1;
        var dX = s.Bf16(x);
        var dY = s.Bf16(y);
        var dW = s.Bf16(w);

        var outp = s.PoisonedBf16((long)n * c);
        var rstd = s.PoisonedF32(n);
        ops.RmsNormForward(outp, rstd, dX, dW, n, c, eps);
        var want = new float[n * c];
        var wantRstd = new float[n];
        RmsNorm.Forward(want, wantRstd, x, w, n, c, eps);
        Close("rmsnorm_forward", want, s.ReadBf16(outp, n * c));
        ParityCheck.Elementwise("rmsnorm_forward rstd", wantRstd, s.ReadF32(rstd, n), 0, 1e-5);

        // Fused residual: h = bf16(x + y), then the norm of the rounded h.
        var h = s.PoisonedBf16((long)n * c);
        var outp2 = s.PoisonedBf16((long)n * c);
        var rstd2 = s.PoisonedF32(n);
        ops.RmsNormResidualForward(h, outp2, rstd2, dX, dY, dW, n, c, eps);
        var hWant = Bf16Models.Rounded(x.Zip(y, (a, b) => a + b).ToArray());
        ParityCheck.Elementwise("rmsnorm_residual_forward h", hWant, s.ReadBf16(h, n * c), 0, 0);
        RmsNorm.Forward(want, wantRstd, hWant, w, n, c, eps);
        Close("rmsnorm_residual_forward out", want, s.ReadBf16(outp2, n * c));
        ParityCheck.Elementwise("rmsnorm_residual_forward rstd", wantRstd, s.ReadF32(rstd2, n), 0, 1e-5);

        // Backward from the kernel's own rstd (fp32), with and without accumulation into dinp.
        var rstdUsed = s.ReadF32(rstd, n);
        RmsNorm.Forward(want, wantRstd, x, w, n, c, eps);
        var dout = Random(n * c, 13);
        var dDout = s.Bf16(dout);
        foreach (bool accumulate in new[] { false, true })
        {
            var start = Random(n * c, 14);
            var dInp = accumulate ? s.Bf16(start) : s.PoisonedBf16((long)n * c);
            ops.RmsNormBackward(dInp, dDout, dX, dW, rstd, n, c, accumulate);
            var g = accumulate ? (float[])start.Clone() : new float[n * c];
            RmsNorm.Backward(g, null, dout, x, w, rstdUsed, n, c);
            Close($"rmsnorm_backward accumulate={accumulate}", g, s.ReadBf16(dInp, n * c), 8e-3, 8e-3);
        }
        var dWeight0 = Random(c, 15);
        var dWeight = s.F32(dWeight0);
        ops.RmsNormBackwardWeight(dWeight, dDout, dX, rstd, n, c);
        var gw = (float[])dWeight0.Clone();
        RmsNorm.Backward(new float[n * c], gw, dout, x, w, rstdUsed, n, c);
        ParityCheck.Elementwise("rmsnorm_backward_weight", gw, s.ReadF32(dWeight, c), 1e-4 * MaxAbs(gw), 1e-4);
    }

    [SkippableTheory]
    [InlineData(2, 37, 4, 8, 0, false)]
    [InlineData(1, 37, 2, 64, 0, false)]
    [InlineData(2, 13, 3, 128, 5, false)]
    [InlineData(1, 130, 2, 64, 0, true)]
    public void RopeForwardAndBackward(int b, int t, int heads, int d, int pos0, bool llama3Scaling)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var config = new ModelConfig
        {
            HiddenSize = heads * d, IntermediateSize = 8, NumLayers = 1, NumHeads = heads, NumKvHeads = heads, HeadDim = d, VocabSize = 8,
            RopeTheta = llama3Scaling ? 500000 : 10000, MaxPositionEmbeddings = 4096,
            RopeScaling = llama3Scaling ? new RopeScaling(8, 1, 4, 64) : null,
        };
        var rope = new Rope<float>(config, pos0 + t);
        var invFreq = s.F64(Rope<float>.InverseFrequencies(config));
        foreach (bool forward in new[] { true, false })
        {
            var x = Random(b * t * heads * d, forward ? 20 : 21, 3);
            var dx = s.Bf16(x);
            if (forward) { ops.RopeForward(dx, invFreq, b, t, heads, d, pos0); rope.Forward(x, b, t, heads, pos0); }
            else { ops.RopeBackward(dx, invFreq, b, t, heads, d, pos0); rope.Backward(x, b, t, heads, pos0); }
            Close(forward ? "rope_forward" : "rope_backward", x, s.ReadBf16(dx, x.Length), 2e-3, 8e-3);
        }
    }

    [SkippableTheory]
    [InlineData(2, 37, 4, 2, 8)]
    [InlineData(1, 37, 4, 4, 16)]
    [InlineData(2, 37, 4, 2, 64)]
    [InlineData(1, 130, 2, 1, 64)]
    [InlineData(2, 37, 4, 2, 128)]
    [InlineData(1, 70, 8, 2, 128)]
    [InlineData(1, 5, 2, 2, 6)]
    public void AttentionForwardAndBackward(int b, int t, int nh, int nkv, int d)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        float scale = 1f / MathF.Sqrt(d);
        var q = Random(b * t * nh * d, 30, 1.5);
        var k = Random(b * t * nkv * d, 31, 1.5);
        var v = Random(b * t * nkv * d, 32);
        var dq = s.Bf16(q); var dk = s.Bf16(k); var dv = s.Bf16(v);
        var outp = s.PoisonedBf16((long)b * t * nh * d);
        var lse = s.PoisonedF32((long)b * nh * t);
        ops.AttentionForward(outp, lse, dq, dk, dv, b, t, t, t, nh, nkv, d, scale);
        var want = new float[b * t * nh * d];
        var wantLse = new float[b * nh * t];
        Attention.Forward(want, wantLse, q, k, v, b, t, t, 0, nh, nkv, d);
        Close($"attention forward d={d}", want, s.ReadBf16(outp, want.Length), 1e-2, 1e-2);
        ParityCheck.Elementwise($"attention lse d={d}", wantLse, s.ReadF32(lse, wantLse.Length), 1e-3, 1e-3);

        // Backward from the reference's out and lse (so this checks the backward kernels alone).
        var outRef = Bf16Models.Rounded(want);
        var dOut = s.Bf16((float[])outRef.Clone());
        var dLse = s.F32(wantLse);
        var gradOut = Random(b * t * nh * d, 33);
        var dGradOut = s.Bf16(gradOut);
        var gq = s.PoisonedBf16((long)b * t * nh * d);
        var gk = s.PoisonedBf16((long)b * t * nkv * d);
        var gv = s.PoisonedBf16((long)b * t * nkv * d);
        var dsum = s.PoisonedF32((long)b * nh * t);
        ops.AttentionBackward(gq, gk, gv, dsum, dGradOut, dq, dk, dv, dOut, dLse, b, t, nh, nkv, d, scale);
        var wq = new float[q.Length]; var wk = new float[k.Length]; var wv = new float[v.Length];
        Attention.Backward(wq, wk, wv, gradOut, q, k, v, outRef, wantLse, b, t, nh, nkv, d);
        Close($"attention dq d={d}", wq, s.ReadBf16(gq, wq.Length), 2e-2, 2e-2);
        Close($"attention dk d={d}", wk, s.ReadBf16(gk, wk.Length), 2e-2, 2e-2);
        Close($"attention dv d={d}", wv, s.ReadBf16(gv, wv.Length), 2e-2, 2e-2);
    }

    [SkippableTheory]
    [InlineData(8)]
    [InlineData(64)]
    [InlineData(128)]
    public void AttentionForwardWithAKvCacheOffset(int d)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        const int b = 2, tq = 5, tkv = 40, tcap = 48, nh = 4, nkv = 2;
        var q = Random(b * tq * nh * d, 40, 1.5);
        var k = Random(b * tcap * nkv * d, 41, 1.5);
        var v = Random(b * tcap * nkv * d, 42);
        var dq = s.Bf16(q); var dk = s.Bf16(k); var dv = s.Bf16(v);
        var outp = s.PoisonedBf16((long)b * tq * nh * d);
        var lse = s.PoisonedF32((long)b * nh * tq);
        ops.AttentionForward(outp, lse, dq, dk, dv, b, tq, tkv, tcap, nh, nkv, d, 1f / MathF.Sqrt(d));
        var want = new float[b * tq * nh * d];
        var wantLse = new float[b * nh * tq];
        Attention.Forward(want, wantLse, q, k, v, b, tq, tcap, tkv - tq, nh, nkv, d);
        Close($"cached attention d={d}", want, s.ReadBf16(outp, want.Length), 1e-2, 1e-2);
        ParityCheck.Elementwise($"cached attention lse d={d}", wantLse, s.ReadF32(lse, wantLse.Length), 1e-3, 1e-3);
    }

    [SkippableTheory]
    [InlineData(37, 48, 0.0)]
    [InlineData(5, 13, 0.25)]
    [InlineData(64, 176, 0.2)]
    public void SwiGluForwardAndBackwardWithPhiloxMasks(int n, int inter, double pMask)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var stream = new RandomStream(0xDEADBEEF12345UL, 7, 3);
        const int layer = 5;
        var gate = Random(n * inter, 50, 4);
        var up = Random(n * inter, 51, 2);
        var dGate = s.Bf16(gate); var dUp = s.Bf16(up);
        float[]? mask = null;
        if (pMask > 0)
        {
            mask = new float[n * inter];
            new PhiloxFfnPerturbation(stream, pMask, 0).FillMask(layer, 0, n, inter, mask);
        }
        // The mask comes from the StepParams in device memory; its dropout stream and loss scale must not matter.
        var step = s.Step(StepParams.For(stream, (float)pMask, new RandomStream(1, 2, 3), 5f));
        var a = s.PoisonedBf16((long)n * inter);
        ops.SwiGluForward(a, dGate, dUp, n, inter, step, layer);
        var want = new float[n * inter];
        SwiGlu.Forward(want, gate, up, mask, n * inter);
        Close("swiglu_forward", want, s.ReadBf16(a, want.Length), 1e-3, 8e-3);

        var da = Random(n * inter, 52);
        var dDa = s.Bf16(da);
        var dg = s.PoisonedBf16((long)n * inter);
        var du = s.PoisonedBf16((long)n * inter);
        ops.SwiGluBackward(dg, du, dDa, dGate, dUp, n, inter, step, layer);
        var wg = new float[n * inter]; var wu = new float[n * inter];
        SwiGlu.Backward(wg, wu, da, gate, up, mask, n * inter);
        Close("swiglu_backward dgate", wg, s.ReadBf16(dg, wg.Length), 1e-3, 8e-3);
        Close("swiglu_backward dup", wu, s.ReadBf16(du, wu.Length), 1e-3, 8e-3);
        if (mask is not null)
        {
            var got = s.ReadBf16(a, want.Length);
            for (int i = 0; i < mask.Length; i++)
                if (mask[i] == 0) Assert.True(got[i] == 0, $"swiglu_forward[{i}] is masked but {got[i]}");
            // Without StepParams (inference) nothing is masked.
            var plain = s.PoisonedBf16((long)n * inter);
            ops.SwiGluForward(plain, dGate, dUp, n, inter, DevicePtr.Null, layer);
            SwiGlu.Forward(want, gate, up, null, n * inter);
            Close("swiglu_forward without StepParams", want, s.ReadBf16(plain, want.Length), 1e-3, 8e-3);
        }
    }

    [SkippableTheory]
    [InlineData(37, 32, 4, 0.0)]
    [InlineData(130, 96, 8, 0.1)]
    [InlineData(64, 200, 72, 0.2)]
    [InlineData(5, 13, 1, 0.3)]
    public void LoraShrinkAndDropoutApply(int n, int inDim, int r, double p)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var stream = new RandomStream(99, 4, 2);
        const int layer = 3, projection = 5;
        uint lane = layer * 8 + projection;
        var x = Random(n * inDim, 60, 2);
        var A = Random(r * inDim, 61, 0.5);
        var dX = s.Bf16(x); var dA = s.Bf16(A);
        float pf = (float)p;
        var xd = new float[n * inDim];
        for (int i = 0; i < xd.Length; i++)
            xd[i] = pf > 0 && stream.Uniform(RandomStream.TagLoraDropout, lane, (uint)i) < pf ? 0f : pf > 0 ? x[i] * (1f / (1f - pf)) : x[i];
        var xdRounded = Bf16Models.Rounded(xd);

        // The dropout stream comes from the StepParams in device memory; its mask stream and p_mask must not matter.
        var step = s.Step(StepParams.For(new RandomStream(5, 6, 7), 0.5f, stream, 3f));
        var t = s.PoisonedBf16((long)n * r);
        ops.LoraShrink(t, dX, dA, n, inDim, r, pf, step, layer, projection);
        var want = new float[n * r];
        for (int row = 0; row < n; row++)
            for (int q = 0; q < r; q++)
            {
                double acc = 0;
                for (int c = 0; c < inDim; c++) acc += xdRounded[row * inDim + c] * A[q * inDim + c];
                want[row * r + q] = (float)acc;
            }
        Close("lora_dropout_shrink", want, s.ReadBf16(t, want.Length), 2e-3, 8e-3);

        var outp = s.PoisonedBf16((long)n * inDim);
        ops.LoraDropoutApply(outp, dX, n, inDim, pf, step, layer, projection, accumulate: false);
        ParityCheck.Elementwise("lora_dropout_apply", xdRounded, s.ReadBf16(outp, xd.Length), 0, 0);
        var start = Random(n * inDim, 62);
        var acc2 = s.Bf16(start);
        ops.LoraDropoutApply(acc2, dX, n, inDim, pf, step, layer, projection, accumulate: true);
        Close("lora_dropout_apply accumulate", start.Zip(xd, (a, b) => a + b).ToArray(), s.ReadBf16(acc2, xd.Length), 0, 8e-3);
    }

    [SkippableTheory]
    [InlineData(37, 61, true)]
    [InlineData(16, 1000, true)]
    [InlineData(4, 5003, false)]
    [InlineData(9, 64, false)]
    public void CrossEntropyFusedLossAndGradient(int n, int v, bool bf16)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var logits = Random(n * v, 70, 6);
        var rng = new Random(71);
        var targets = Enumerable.Range(0, n).Select(i => i % 5 == 2 ? TokenBatch.IgnoreIndex : rng.Next(v)).ToArray();
        float scale = 1f / n;
        var dLogits = bf16 ? s.Bf16(logits) : s.F32(logits);
        var dTargets = s.I32(targets);
        var loss = s.PoisonedF32(n);
        var step = s.Step(StepParams.For(new RandomStream(5, 6, 7), 0.5f, default, scale)); // the scale is read from the device
        if (bf16) ops.CrossEntropyBf16(dLogits, dTargets, loss, n, v, step);
        else ops.CrossEntropyF32(dLogits, dTargets, loss, n, v, step);
        var grad = (float[])logits.Clone();
        var perRow = new float[n];
        for (int r = 0; r < n; r++)
            perRow[r] = (float)CrossEntropy.ForwardBackward(grad, r * v, targets, r, 1, v, (float?)scale);
        ParityCheck.Elementwise("cross entropy loss", perRow, s.ReadF32(loss, n), 1e-4, 1e-5);
        var got = bf16 ? s.ReadBf16(dLogits, n * v) : s.ReadF32(dLogits, n * v);
        if (bf16) Close("cross entropy dlogits (bf16)", grad, got, 1e-3, 8e-3);
        else ParityCheck.Elementwise("cross entropy dlogits", grad, got, 1e-6 * scale, 1e-4);
        for (int r = 0; r < n; r++)
            if (targets[r] == TokenBatch.IgnoreIndex)
                for (int j = 0; j < v; j++) Assert.True(got[r * v + j] == 0, $"ignored row {r} has gradient {got[r * v + j]}");
    }

    [SkippableTheory]
    [InlineData(37, 33, 45)]
    [InlineData(1, 64, 8)]
    [InlineData(130, 8, 97)]
    public void GemmsMatchTheCpuWithEveryTransposeAndAccumulate(int n, int c, int oc)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var x = Random(n * c, 80); var w = Random(oc * c, 81); var dy = Random(n * oc, 82);
        var dX = s.Bf16(x); var dW = s.Bf16(w); var dDy = s.Bf16(dy);
        unsafe
        {
            // y = x·Wᵀ (bf16 out, alpha 0.5), then += again (beta 1).
            var y = s.PoisonedBf16((long)n * oc);
            ops.MatmulNT(y, dX, dW, n, c, oc, accumulate: false, alpha: 0.5f);
            var want = new float[n * oc];
            fixed (float* pw = want, px = x, pww = w) Gemm.MatmulNT(pw, px, pww, n, c, oc, false, 0.5f);
            var got = s.ReadBf16(y, want.Length);
            Close("MatmulNT", want, got, 4e-3, 8e-3);
            ops.MatmulNT(y, dX, dW, n, c, oc, accumulate: true, alpha: 0.5f);
            var want2 = got.Zip(want, (a, b) => a + b).ToArray();
            Close("MatmulNT accumulate", want2, s.ReadBf16(y, want.Length), 4e-3, 8e-3);

            // dx = dy·W (fp32 out).
            var dx = s.PoisonedF32((long)n * c);
            ops.MatmulNN(dx, dDy, dW, n, oc, c, accumulate: false, outType: CudaDataType.R32F);
            var wantDx = new float[n * c];
            fixed (float* pd = wantDx, pdy = dy, pww = w) Gemm.MatmulNN(pd, pdy, pww, n, oc, c, false, 1f);
            ParityCheck.Elementwise("MatmulNN fp32", wantDx, s.ReadF32(dx, wantDx.Length), 1e-5 * MaxAbs(wantDx), 1e-4);

            // dW += dyᵀ·x (fp32, beta 1 onto an existing gradient).
            var g0 = Random(oc * c, 83);
            var dG = s.F32(g0);
            ops.MatmulTN(dG, dDy, dX, n, oc, c, accumulate: true);
            var wantG = (float[])g0.Clone();
            fixed (float* pg = wantG, pdy = dy, px = x) Gemm.MatmulTN(pg, pdy, px, n, oc, c, true, 1f);
            ParityCheck.Elementwise("MatmulTN fp32 accumulate", wantG, s.ReadF32(dG, wantG.Length), 1e-5 * MaxAbs(wantG), 1e-4);
        }
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(1000)]
    [InlineData(4099)]
    public void ElementwiseKernels(int n)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var a = Random(n, 90, 3); var b = Random(n, 91, 3);
        var dA = s.Bf16(a); var dB = s.Bf16(b);
        var o = s.PoisonedBf16(n);
        ops.Add(o, dA, dB, n);
        ParityCheck.Elementwise("add_bf16", Bf16Models.Rounded(a.Zip(b, (x, y) => x + y).ToArray()), s.ReadBf16(o, n), 0, 0);
        var mask = Enumerable.Range(0, n).Select(i => i % 3 == 0 ? 0f : 1f).ToArray();
        var dMask = s.Bf16(mask);
        ops.Multiply(dA, dA, dMask, n); // in place, as the backend applies explicit masks
        ParityCheck.Elementwise("mul_bf16", a.Zip(mask, (x, m) => x * m).ToArray(), s.ReadBf16(dA, n), 0, 0);

        var f = Random(n, 92, 5);
        var df = s.F32(f);
        var cast = s.PoisonedBf16(n);
        ops.CastF32ToBf16(cast, df, n);
        ParityCheck.Elementwise("cast_f32_to_bf16", Bf16Models.Rounded(f), s.ReadBf16(cast, n), 0, 0);
        var back = s.PoisonedF32(n);
        ops.CastBf16ToF32(back, cast, n);
        ParityCheck.Elementwise("cast_bf16_to_f32", Bf16Models.Rounded(f), s.ReadF32(back, n), 0, 0);

        var sum = s.PoisonedF32(1);
        ops.ReduceSum(sum, df, n, 0.5f);
        ParityCheck.Elementwise("reduce_sum_f32", [(float)(f.Sum(x => (double)x) * 0.5)], s.ReadF32(sum, 1), 1e-5 * n, 1e-5);
    }

    [SkippableTheory]
    [InlineData(5, 3)]
    [InlineData(37, 70)]
    [InlineData(130, 896)]
    public void BiasAddAndColumnSum(int rows, int cols)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        var y = Random(rows * cols, 100); var bias = Random(cols, 101);
        var dY = s.Bf16(y); var dBias = s.Bf16(bias);
        ops.BiasAdd(dY, dBias, rows, cols);
        var want = Bf16Models.Rounded(Enumerable.Range(0, rows * cols).Select(i => y[i] + bias[i % cols]).ToArray());
        ParityCheck.Elementwise("bias_add_bf16", want, s.ReadBf16(dY, rows * cols), 0, 0);

        var g0 = Random(cols, 102);
        var dG = s.F32(g0);
        ops.ColumnSum(dG, dY, rows, cols);
        var wantG = Enumerable.Range(0, cols).Select(c => g0[c] + Enumerable.Range(0, rows).Sum(r => want[r * cols + c])).ToArray();
        ParityCheck.Elementwise("column_sum_bf16", wantG, s.ReadF32(dG, cols), 1e-5 * rows, 1e-5);
    }

    [SkippableFact]
    public void AdamWStepAndGlobalNormMatchTheHostOptimizer()
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        const int n1 = 1000, n2 = 37;
        var p1 = new Parameter("w", [25, 40], Random(n1, 110));
        var p2 = new Parameter("b", [n2], Random(n2, 111));
        p1.EnableGrad(); p2.EnableGrad();
        Random(n1, 112, 3).CopyTo(p1.Grad!, 0);
        Random(n2, 113, 3).CopyTo(p2.Grad!, 0);

        var partial = s.PoisonedF32(ops.Plan.NormPartials);
        var norm = s.PoisonedF32(1);
        var clip = s.PoisonedF32(1);
        var g1 = s.F32(p1.Grad!); var g2 = s.F32(p2.Grad!);
        ops.GlobalNormSquared(partial, g1, n1, accumulate: false);
        ops.GlobalNormSquared(partial, g2, n2, accumulate: true);
        const double maxNorm = 2.0;
        ops.GlobalNormFinalize(norm, clip, partial, ops.Plan.NormPartials, (float)maxNorm);
        double hostNorm = GradientClipping.GlobalNorm([p1, p2]);
        ParityCheck.Relative("global norm", hostNorm, s.ReadF32(norm, 1)[0], 1e-5);
        ParityCheck.Relative("clip scale", maxNorm / (hostNorm + 1e-6), s.ReadF32(clip, 1)[0], 1e-5);

        var host = new AdamW([p1, p2], 0.9, 0.999, 1e-8, 0.01);
        var m1 = s.F32(new float[n1]); var v1 = s.F32(new float[n1]); var m2 = s.F32(new float[n2]); var v2 = s.F32(new float[n2]);
        var w1 = s.F32(p1.Data); var w2 = s.F32(p2.Data);
        var b1 = s.PoisonedBf16(n1);
        for (int step = 1; step <= 3; step++)
        {
            GradientClipping.ClipGlobalNorm([p1, p2], step == 1 ? maxNorm : 0);
            host.Update(1e-2);
            var scale = step == 1 ? clip : s.F32([1f]);
            ops.AdamWStep(w1, b1, g1, m1, v1, n1, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, step, scale);
            ops.AdamWStep(w2, default, g2, m2, v2, n2, 1e-2f, 0.9f, 0.999f, 1e-8f, 0f, step, scale); // 1-D: no decay
            if (step == 1) { s.Device.Upload<float>(g1, p1.Grad); s.Device.Upload<float>(g2, p2.Grad); } // the host clipped its copy in place
        }
        ParityCheck.Elementwise("adamw matrix", p1.Data, s.ReadF32(w1, n1), 1e-6, 1e-5);
        ParityCheck.Elementwise("adamw vector", p2.Data, s.ReadF32(w2, n2), 1e-6, 1e-5);
        ParityCheck.Elementwise("adamw bf16 copy", Bf16Models.Rounded(s.ReadF32(w1, n1)), s.ReadBf16(b1, n1), 0, 0);
        ParityCheck.Elementwise("adamw exp_avg", host.FirstMoment(0).ToArray(), s.ReadF32(m1, n1), 1e-7, 1e-5);
        ParityCheck.Elementwise("adamw exp_avg_sq", host.SecondMoment(1).ToArray(), s.ReadF32(v2, n2), 1e-9, 1e-5);
    }
    /// <summary>
    /// decode.cu: rope_rows (each row at its own position, read from the device) against the CPU's Rope at that position;
    /// kv_append writing each row into its slot and position of a [S, cap, nkv, d] arena (and nothing else); and
    /// decode_attention of each row over its slot's keys 0..pos against the CPU's attention with one query at qPos0 = pos.
    /// </summary>
    [SkippableTheory]
    [InlineData(8, 4, 2)]
    [InlineData(64, 4, 1)]
    [InlineData(96, 2, 2)]
    [InlineData(128, 8, 2)]
    public void DecodeRopeKvAppendAndAttentionMatchTheCpuPerRow(int d, int nh, int nkv)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        const int slots = 3, cap = 40;
        int[] rowSlot = [2, 0, 1, 0];   // rows of two requests may share nothing but the step; a slot per request
        int[] rowPos = [39, 0, 17, 33];
        int n = rowSlot.Length, kvd = nkv * d, qd = nh * d;
        float scale = 1f / MathF.Sqrt(d);
        var config = new ModelConfig
        {
            HiddenSize = qd, IntermediateSize = 8, NumLayers = 1, NumHeads = nh, NumKvHeads = nkv, HeadDim = d, VocabSize = 8,
            RopeTheta = 10000, MaxPositionEmbeddings = cap,
        };
        var rope = new Rope<float>(config, cap);
        var invFreq = s.F64(Rope<float>.InverseFrequencies(config));
        var dSlot = s.I32(rowSlot); var dPos = s.I32(rowPos);

        // rope_rows on q [N, nh, d] and k [N, nkv, d].
        var q = Bf16Models.Rounded(Random(n * qd, 300, 1.5));
        var kNew = Bf16Models.Rounded(Random(n * kvd, 301, 1.5));
        var vNew = Bf16Models.Rounded(Random(n * kvd, 302));
        var dq = s.Bf16(q); var dk = s.Bf16(kNew); var dv = s.Bf16(vNew);
        ops.RopeRows(dq, invFreq, dPos, n, nh, d);
        ops.RopeRows(dk, invFreq, dPos, n, nkv, d);
        var qWant = (float[])q.Clone(); var kWant = (float[])kNew.Clone();
        for (int r = 0; r < n; r++)
        {
            var qr = qWant.AsSpan(r * qd, qd).ToArray(); rope.Forward(qr, 1, 1, nh, rowPos[r]); qr.CopyTo(qWant, r * qd);
            var kr = kWant.AsSpan(r * kvd, kvd).ToArray(); rope.Forward(kr, 1, 1, nkv, rowPos[r]); kr.CopyTo(kWant, r * kvd);
        }
        Close("rope_rows q", qWant, s.ReadBf16(dq, qWant.Length), 2e-3, 8e-3);
        Close("rope_rows k", kWant, s.ReadBf16(dk, kWant.Length), 2e-3, 8e-3);

        // kv_append into a cache whose other positions hold earlier keys/values.
        var kCache = Bf16Models.Rounded(Random(slots * cap * kvd, 303, 1.5));
        var vCache = Bf16Models.Rounded(Random(slots * cap * kvd, 304));
        var dkc = s.Bf16(kCache); var dvc = s.Bf16(vCache);
        ops.KvAppend(dkc, dvc, dk, dv, dSlot, dPos, n, cap, kvd);
        var kRoped = s.ReadBf16(dk, (long)n * kvd);
        for (int r = 0; r < n; r++)
        {
            Array.Copy(kRoped, r * kvd, kCache, ((long)rowSlot[r] * cap + rowPos[r]) * kvd, kvd);
            Array.Copy(vNew, r * kvd, vCache, ((long)rowSlot[r] * cap + rowPos[r]) * kvd, kvd);
        }
        ParityCheck.Elementwise("kv_append k", kCache, s.ReadBf16(dkc, kCache.Length), 0, 0);
        ParityCheck.Elementwise("kv_append v", vCache, s.ReadBf16(dvc, vCache.Length), 0, 0);

        // decode_attention per row against the CPU's one-query attention over that slot's cache.
        var outp = s.PoisonedBf16((long)n * qd);
        ops.DecodeAttention(outp, dq, dkc, dvc, dSlot, dPos, n, cap, nh, nkv, d, scale);
        var got = s.ReadBf16(outp, (long)n * qd);
        var qRoped = s.ReadBf16(dq, (long)n * qd);
        var want = new float[n * qd];
        for (int r = 0; r < n; r++)
        {
            var o = new float[qd];
            var kSlot = kCache.AsSpan(rowSlot[r] * cap * kvd, cap * kvd).ToArray();
            var vSlot = vCache.AsSpan(rowSlot[r] * cap * kvd, cap * kvd).ToArray();
            Attention.Forward(o, new float[nh], qRoped.AsSpan(r * qd, qd).ToArray(), kSlot, vSlot, 1, 1, cap, rowPos[r], nh, nkv, d);
            o.CopyTo(want, r * qd);
        }
        Close($"decode_attention d={d}", want, got, 1e-2, 1e-2);

        // The generic flash kernel on the same slot, as the last query of a prefill, gives the same bits (same row code).
        if (LaunchPlanner.AttentionFor(d) == AttentionVariant.Generic)
            for (int r = 0; r < n; r++)
            {
                int keys = rowPos[r] + 1;
                var one = s.PoisonedBf16(qd);
                var lse = s.PoisonedF32(nh);
                ops.AttentionForward(one, lse, dq.OffsetBytes((long)r * qd * 2), dkc.OffsetBytes((long)rowSlot[r] * cap * kvd * 2),
                    dvc.OffsetBytes((long)rowSlot[r] * cap * kvd * 2), 1, 1, keys, cap, nh, nkv, d, scale);
                var flash = s.ReadBf16(one, qd);
                for (int c = 0; c < qd; c++)
                    Assert.True(BitConverter.SingleToInt32Bits(flash[c]) == BitConverter.SingleToInt32Bits(got[r * qd + c]),
                        $"row {r} element {c}: decode_attention {got[r * qd + c]} != flash_attention_forward {flash[c]}");
            }
    }

    /// <summary>
    /// lora_multi.cu: BGMV (per-row slots) and SGMV (segments) against the CPU's <see cref="MixedLora"/>, on a pool of
    /// adapters with different ranks padded to the largest (and one slot that does not adapt this projection:
    /// scaling 0, zero weights), with base-only rows that must come back bit for bit.
    /// </summary>
    [SkippableTheory]
    [InlineData(new[] { 0, 0, 0, 1, 1, -1, 2, 2, 2, 2 }, 40, 27)]
    [InlineData(new[] { 1, 0, 1, 0, -1, 2, -1, 1, 3 }, 96, 130)]
    [InlineData(new[] { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1 }, 70, 65)]
    public void MultiAdapterShrinkAndExpandMatchTheCpuMixedLora(int[] rowSlots, int inDim, int outDim)
    {
        using var s = Scratch();
        var ops = new CudaOps(s.Device);
        int n = rowSlots.Length;
        int[] ranks = [4, 72, 1];   // 72 crosses the kernels' 64-rank and 32-deep tiles
        float[] scalings = [2f, 0.5f, 1f];
        var slots = new LoraModule?[ranks.Length + 1];
        for (int a = 0; a < ranks.Length; a++)
            slots[a] = new LoraModule(0, Projection.Q, new Parameter("A", [ranks[a], inDim], Bf16Models.Rounded(Random(ranks[a] * inDim, 200 + a))),
                new Parameter("B", [outDim, ranks[a]], Bf16Models.Rounded(Random(outDim * ranks[a], 210 + a))), scalings[a]);
        int rmax = ranks.Max(), pool = slots.Length;
        // The device pool as the decoder lays it out: each slot holds this module's A [rmax, in] then B [out, rmax] (and
        // 3 elements of another module's room), A rows and B columns padded with zeros to rmax; the last slot stays empty.
        // Scalings [pool, 2]: this module's is the second of each slot's pair.
        long aSize = (long)rmax * inDim, slotStride = aSize + (long)outDim * rmax + 3;
        var arena = new float[pool * slotStride];
        var scale = new float[pool * 2];
        for (int a = 0; a < pool; a++)
        {
            if (slots[a] is not { } m) continue;
            scale[a * 2 + 1] = m.Scaling;
            long slot0 = a * slotStride;
            for (int j = 0; j < m.Rank; j++) Array.Copy(m.A.Data, j * inDim, arena, slot0 + (long)j * inDim, inDim);
            for (int o = 0; o < outDim; o++)
                for (int j = 0; j < m.Rank; j++) arena[slot0 + aSize + (long)o * rmax + j] = m.B.Data[o * m.Rank + j];
        }
        var x = Bf16Models.Rounded(Random(n * inDim, 220));
        var yBase = Bf16Models.Rounded(Random(n * outDim, 221));
        var want = (float[])yBase.Clone();
        var segments = AdapterSegments.FromRowSlots(rowSlots);
        var keep = new List<CpuLoraImage>();
        MixedLora.Forward(want, x, n, inDim, outDim, segments, Lora.MixedLoraTests.Slots(slots, bf16: false, keep), new float[n * rmax]);
        GC.KeepAlive(keep);

        var dx = s.Bf16(x); var dA = s.Bf16(arena); var dB = dA.OffsetBytes(aSize * 2); var dScale = s.F32(scale).OffsetBytes(4);
        var dSlots = s.I32(rowSlots);
        var dStart = s.I32(segments.Starts); var dSegSlot = s.I32(segments.Slots);
        int longest = Enumerable.Range(0, segments.Count).Max(i => segments.Starts[i + 1] - segments.Starts[i]);
        foreach (var sgmv in new[] { false, true })
        {
            var t = s.PoisonedF32((long)n * rmax);
            var y = s.Bf16(yBase);
            if (sgmv)
            {
                ops.SgmvShrink(t, dx, dA, dStart, dSegSlot, segments.Count, longest, inDim, rmax, slotStride);
                ops.SgmvExpand(y, t, dB, dScale, dStart, dSegSlot, segments.Count, longest, outDim, rmax, slotStride, 2);
            }
            else
            {
                ops.BgmvShrink(t, dx, dA, dSlots, n, inDim, rmax, slotStride);
                ops.BgmvExpand(y, t, dB, dScale, dSlots, n, outDim, rmax, slotStride, 2);
            }
            var got = s.ReadBf16(y, (long)n * outDim);
            string what = sgmv ? "sgmv" : "bgmv";
            Close(what, want, got, 4e-3, 8e-3);
            for (int r = 0; r < n; r++)
                if (rowSlots[r] < 0)
                    for (int o = 0; o < outDim; o++)
                        Assert.True(got[r * outDim + o] == yBase[r * outDim + o], $"{what}: base-only row {r} changed at {o}");
        }
    }
}
