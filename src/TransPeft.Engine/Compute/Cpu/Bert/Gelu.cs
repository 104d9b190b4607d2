using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TransPeft.Engine.Compute.Cpu.Bert;

/// <summary>
/// Exact GELU, BERT's activation: gelu(u) = u·Φ(u) = ½u(1 + erf(u/√2)), gelu'(u) = Φ(u) + u·φ(u) with
/// φ(u) = exp(−u²/2)/√(2π). .NET has no erf, so this file carries two: a rational approximation for fp32
/// (the one Eigen, and so TensorFlow and ONNX Runtime's CPU kernels, use; a few ulp on [−4, 4], ±1 beyond) and
/// a series/continued-fraction one accurate to ~1e-15 for the float64 finite-difference checks.
/// </summary>
internal static class Gelu
{
    private const double InvSqrt2 = 0.70710678118654752440, InvSqrt2Pi = 0.39894228040143267794;

    /// <summary>out[n] = gelu(inp[n]) (out may alias inp).</summary>
    public static void Forward<T>(Span<T> outp, ReadOnlySpan<T> inp) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T half = T.CreateTruncating(0.5), s = T.CreateTruncating(InvSqrt2);
        int i = 0;
        if (typeof(T) == typeof(float))
            i = ForwardVectors(MemoryMarshal.Cast<T, float>(outp), inp.Length, MemoryMarshal.Cast<T, float>(inp));
        for (; i < inp.Length; i++)
        {
            T u = inp[i];
            outp[i] = half * u * (T.One + Erf(u * s));
        }
    }

    /// <summary>
    /// The fp32 forward eight values at a time over the whole vectors of <paramref name="inp"/>; returns how many it
    /// did. Each lane performs exactly the scalar path's operations (the same fused multiply-adds, clamp, product and
    /// quotient), so the result is bit for bit the same; the scalar loop finishes the tail.
    /// </summary>
    private static int ForwardVectors(Span<float> outp, int n, ReadOnlySpan<float> inp)
    {
        if (!Vector256.IsHardwareAccelerated) return 0;
        int w = Vector256<float>.Count, i = 0;
        var half = Vector256.Create(0.5f);
        var s = Vector256.Create((float)InvSqrt2);
        for (; i + w <= n; i += w)
        {
            var u = Vector256.Create(inp.Slice(i, w));
            (half * u * (Vector256<float>.One + ErfFloat(u * s))).CopyTo(outp.Slice(i, w));
        }
        return i;
    }

    /// <summary><see cref="ErfFloat(float)"/> in every lane, with the same operations.</summary>
    private static Vector256<float> ErfFloat(Vector256<float> x)
    {
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-4f)), Vector256.Create(4f));
        var x2 = x * x;
        var p = Vector256.Create(-2.72614225801306e-10f);
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(2.77068142495902e-08f));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(-2.10102402082508e-06f));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(-5.69250639462346e-05f));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(-7.34990630326855e-04f));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(-2.95459980854025e-03f));
        p = Vector256.FusedMultiplyAdd(p, x2, Vector256.Create(-1.60960333262415e-02f));
        var q = Vector256.Create(-1.45660718464996e-05f);
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(-2.13374055278905e-04f));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(-1.68282697438203e-03f));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(-7.37332916720468e-03f));
        q = Vector256.FusedMultiplyAdd(q, x2, Vector256.Create(-1.42647390514189e-02f));
        return x * p / q;
    }

    /// <summary>din[n] = dout[n] · gelu'(inp[n]) (din may alias dout).</summary>
    public static void Backward<T>(Span<T> din, ReadOnlySpan<T> dout, ReadOnlySpan<T> inp) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T half = T.CreateTruncating(0.5), s = T.CreateTruncating(InvSqrt2), c = T.CreateTruncating(InvSqrt2Pi);
        for (int i = 0; i < inp.Length; i++)
        {
            T u = inp[i];
            T cdf = half * (T.One + Erf(u * s));
            din[i] = dout[i] * (cdf + u * c * T.Exp(-half * u * u));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Erf<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) ? T.CreateTruncating(ErfFloat(float.CreateTruncating(x))) : T.CreateTruncating(ErfDouble(double.CreateTruncating(x)));

    /// <summary>erf for fp32: odd rational p(x)/q(x) on x clamped to [−4, 4] (erf(4) = 1 − 1.5e-8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ErfFloat(float x)
    {
        x = Math.Clamp(x, -4f, 4f);
        float x2 = x * x;
        float p = -2.72614225801306e-10f;
        p = MathF.FusedMultiplyAdd(p, x2, 2.77068142495902e-08f);
        p = MathF.FusedMultiplyAdd(p, x2, -2.10102402082508e-06f);
        p = MathF.FusedMultiplyAdd(p, x2, -5.69250639462346e-05f);
        p = MathF.FusedMultiplyAdd(p, x2, -7.34990630326855e-04f);
        p = MathF.FusedMultiplyAdd(p, x2, -2.95459980854025e-03f);
        p = MathF.FusedMultiplyAdd(p, x2, -1.60960333262415e-02f);
        float q = -1.45660718464996e-05f;
        q = MathF.FusedMultiplyAdd(q, x2, -2.13374055278905e-04f);
        q = MathF.FusedMultiplyAdd(q, x2, -1.68282697438203e-03f);
        q = MathF.FusedMultiplyAdd(q, x2, -7.37332916720468e-03f);
        q = MathF.FusedMultiplyAdd(q, x2, -1.42647390514189e-02f);
        return x * p / q;
    }

    /// <summary>erf for float64: Maclaurin series below |x| = 2.5, the erfc continued fraction above.</summary>
    public static double ErfDouble(double x)
    {
        double ax = Math.Abs(x);
        if (ax >= 6) return Math.Sign(x);
        if (ax < 2.5)
        {
            // erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n!(2n+1))
            double sum = 0, term = x, x2 = x * x;
            for (int n = 0; n < 200; n++)
            {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
                term *= -x2 / (n + 1);
            }
            return sum * 1.12837916709551257390;
        }
        // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
        double k = ax;
        for (int n = 80; n >= 1; n--) k = ax + n / 2.0 / k;
        double erfc = Math.Exp(-ax * ax) / (1.77245385090551602730 * k);
        return Math.Sign(x) * (1 - erfc);
    }
}
