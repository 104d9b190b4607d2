using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Emulation;

/// <summary>
/// The flash-attention contract of kernels/README.md (attention.cu, attention_mma.cu) in plain C#: causal GQA
/// with the explicit scale, lse saved in fp32, FlashAttention-2's backward from (O, lse) with Dsum = rowsum(dO·O).
/// Layouts q, out, dq [B, Tq, nh, d]; k, v [B, Tcap, nkv, d]; dk, dv [B, T, nkv, d]; lse, Dsum [B, nh, Tq].
/// Accumulates in double; stores bf16 (outputs) and fp32 (lse, Dsum) as the kernels do.
/// </summary>
internal static class EmulatedAttention
{
    private static float[] Load(EmulatedDevice dev, global::TransPeft.Cuda.DevicePtr p, long n)
    {
        var v = dev.Bf(p, n);
        var r = new float[n];
        for (int i = 0; i < n; i++) r[i] = v[i];
        return r;
    }

    private static void Store(EmulatedDevice dev, global::TransPeft.Cuda.DevicePtr p, double[] values)
    {
        var v = dev.Bf(p, values.Length);
        for (int i = 0; i < values.Length; i++) v[i] = (float)values[i];
    }

    public static void Forward(EmulatedDevice dev, ReadOnlySpan<KernelArgument> a)
    {
        int b = a[5].AsI32, tq = a[6].AsI32, tkv = a[7].AsI32, tcap = a[8].AsI32, nh = a[9].AsI32, nkv = a[10].AsI32, d = a[11].AsI32;
        float scale = a[12].AsF32;
        var o = new double[(long)b * tq * nh * d]; var lse = new float[(long)b * nh * tq];
        var q = Load(dev, a[2].AsPtr, (long)b * tq * nh * d); var k = Load(dev, a[3].AsPtr, (long)b * tcap * nkv * d); var v = Load(dev, a[4].AsPtr, (long)b * tcap * nkv * d);
        int group = nh / nkv, pos0 = tkv - tq;
        var s = new double[tkv];
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < nh; h++)
                for (int t = 0; t < tq; t++)
                {
                    int qo = ((bi * tq + t) * nh + h) * d;
                    lse[(bi * nh + h) * tq + t] = Row(o, qo, q, qo, k, v, (bi * tcap * nkv + h / group) * d, nkv * d, pos0 + t, d, scale, s);
                }
        Store(dev, a[0].AsPtr, o);
        lse.CopyTo(dev.F32(a[1].AsPtr, lse.Length));
    }

    /// <summary>One query row over keys 0..last at kv offset kv0 + j·stride: o[oo..] (double), returns lse.</summary>
    private static float Row(double[] o, int oo, float[] q, int qo, float[] k, float[] v, int kv0, int stride, int last, int d, float scale, double[] s)
    {
        int keys = last + 1;
        double max = double.NegativeInfinity;
        for (int j = 0; j < keys; j++)
        {
            double dot = 0;
            for (int c = 0; c < d; c++) dot += q[qo + c] * k[kv0 + j * stride + c];
            s[j] = dot * scale;
            max = Math.Max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < keys; j++) sum += Math.Exp(s[j] - max);
        double l = max + Math.Log(sum);
        for (int c = 0; c < d; c++)
        {
            double acc = 0;
            for (int j = 0; j < keys; j++) acc += Math.Exp(s[j] - l) * v[kv0 + j * stride + c];
            o[oo + c] = acc;
        }
        return (float)l;
    }

    /// <summary>decode_attention: one query per row n over keys 0..pos[n] of cache slot slot[n] ([S, cap, nkv, d]).</summary>
    public static void Decode(EmulatedDevice dev, ReadOnlySpan<KernelArgument> a)
    {
        int n = a[6].AsI32, cap = a[7].AsI32, nh = a[8].AsI32, nkv = a[9].AsI32, d = a[10].AsI32;
        float scale = a[11].AsF32;
        var slot = dev.I32(a[4].AsPtr, n).ToArray(); var pos = dev.I32(a[5].AsPtr, n).ToArray();
        int slots = slot.DefaultIfEmpty(-1).Max() + 1;
        var q = Load(dev, a[1].AsPtr, (long)n * nh * d);
        var k = Load(dev, a[2].AsPtr, (long)slots * cap * nkv * d); var v = Load(dev, a[3].AsPtr, (long)slots * cap * nkv * d);
        var o = new double[(long)n * nh * d];
        var s = new double[cap];
        for (int r = 0; r < n; r++)
        {
            if (pos[r] < 0 || pos[r] >= cap) throw new InvalidOperationException($"decode_attention row {r}: position {pos[r]} outside the cache's {cap}");
            for (int h = 0; h < nh; h++)
                Row(o, (r * nh + h) * d, q, (r * nh + h) * d, k, v, (slot[r] * cap * nkv + h / (nh / nkv)) * d, nkv * d, pos[r], d, scale, s);
        }
        Store(dev, a[0].AsPtr, o);
    }

    public static void Preprocess(EmulatedDevice dev, ReadOnlySpan<KernelArgument> a)
    {
        int b = a[3].AsI32, t = a[4].AsI32, nh = a[5].AsI32, d = a[6].AsI32;
        var o = Load(dev, a[1].AsPtr, (long)b * t * nh * d); var dout = Load(dev, a[2].AsPtr, (long)b * t * nh * d);
        var dsum = dev.F32(a[0].AsPtr, (long)b * nh * t);
        for (int bi = 0; bi < b; bi++)
            for (int ti = 0; ti < t; ti++)
                for (int h = 0; h < nh; h++)
                {
                    int off = ((bi * t + ti) * nh + h) * d;
                    double acc = 0;
                    for (int c = 0; c < d; c++) acc += dout[off + c] * o[off + c];
                    dsum[(bi * nh + h) * t + ti] = (float)acc;
                }
    }

    /// <summary>P and dS for query row (bi, h, qi) against key j.</summary>
    private static (double P, double DS) Probabilities(float[] q, float[] k, float[] v, float[] dout, float[] lse, float[] dsum,
        int bi, int h, int qi, int j, int t, int nh, int nkv, int d, float scale)
    {
        int g = h / (nh / nkv);
        int qo = ((bi * t + qi) * nh + h) * d, ko = ((bi * t + j) * nkv + g) * d;
        double dot = 0, dpv = 0;
        for (int c = 0; c < d; c++) { dot += q[qo + c] * k[ko + c]; dpv += dout[qo + c] * v[ko + c]; }
        double p = Math.Exp(dot * scale - lse[(bi * nh + h) * t + qi]);
        return (p, p * (dpv - dsum[(bi * nh + h) * t + qi]));
    }

    public static void BackwardDq(EmulatedDevice dev, ReadOnlySpan<KernelArgument> a)
    {
        int b = a[7].AsI32, t = a[8].AsI32, nh = a[9].AsI32, nkv = a[10].AsI32, d = a[11].AsI32;
        float scale = a[12].AsF32;
        long qn = (long)b * t * nh * d, kn = (long)b * t * nkv * d;
        var dq = new double[qn]; var q = Load(dev, a[1].AsPtr, qn); var k = Load(dev, a[2].AsPtr, kn); var v = Load(dev, a[3].AsPtr, kn);
        var dout = Load(dev, a[4].AsPtr, qn); var lse = dev.F32(a[5].AsPtr, (long)b * nh * t).ToArray(); var dsum = dev.F32(a[6].AsPtr, (long)b * nh * t).ToArray();
        var acc = new double[d];
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < nh; h++)
                for (int qi = 0; qi < t; qi++)
                {
                    Array.Clear(acc);
                    int g = h / (nh / nkv);
                    for (int j = 0; j <= qi; j++)
                    {
                        var (_, ds) = Probabilities(q, k, v, dout, lse, dsum, bi, h, qi, j, t, nh, nkv, d, scale);
                        int ko = ((bi * t + j) * nkv + g) * d;
                        for (int c = 0; c < d; c++) acc[c] += ds * k[ko + c];
                    }
                    int qo = ((bi * t + qi) * nh + h) * d;
                    for (int c = 0; c < d; c++) dq[qo + c] = acc[c] * scale;
                }
        Store(dev, a[0].AsPtr, dq);
    }

    public static void BackwardDkDv(EmulatedDevice dev, ReadOnlySpan<KernelArgument> a)
    {
        int b = a[8].AsI32, t = a[9].AsI32, nh = a[10].AsI32, nkv = a[11].AsI32, d = a[12].AsI32;
        float scale = a[13].AsF32;
        long qn = (long)b * t * nh * d, kn = (long)b * t * nkv * d;
        var dk = new double[kn]; var dv = new double[kn];
        var q = Load(dev, a[2].AsPtr, qn); var k = Load(dev, a[3].AsPtr, kn); var v = Load(dev, a[4].AsPtr, kn);
        var dout = Load(dev, a[5].AsPtr, qn); var lse = dev.F32(a[6].AsPtr, (long)b * nh * t).ToArray(); var dsum = dev.F32(a[7].AsPtr, (long)b * nh * t).ToArray();
        int group = nh / nkv;
        var accK = new double[d];
        var accV = new double[d];
        for (int bi = 0; bi < b; bi++)
            for (int g = 0; g < nkv; g++)
                for (int j = 0; j < t; j++)
                {
                    Array.Clear(accK); Array.Clear(accV);
                    for (int h = g * group; h < (g + 1) * group; h++)
                        for (int qi = j; qi < t; qi++)
                        {
                            var (p, ds) = Probabilities(q, k, v, dout, lse, dsum, bi, h, qi, j, t, nh, nkv, d, scale);
                            int qo = ((bi * t + qi) * nh + h) * d;
                            for (int c = 0; c < d; c++)
                            {
                                accK[c] += ds * q[qo + c];
                                accV[c] += p * dout[qo + c];
                            }
                        }
                    int ko = ((bi * t + j) * nkv + g) * d;
                    for (int c = 0; c < d; c++) { dk[ko + c] = accK[c] * scale; dv[ko + c] = accV[c]; }
                }
        Store(dev, a[0].AsPtr, dk);
        Store(dev, a[1].AsPtr, dv);
    }
}
