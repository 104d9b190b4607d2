using TransPeft.Engine.Compute.Cpu.Bert;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>Each BERT op's hand-written backward against float64 central differences, and erf against reference values.</summary>
public sealed class BertOpGradientTests
{
    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(-1.5, -0.9661051464753108)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(3.0, 0.9999779095030014)]
    [InlineData(-4.5, -0.9999999998033839)]
    public void ErfMatchesReferenceValues(double x, double want)
    {
        Assert.Equal(want, Gelu.ErfDouble(x), 13);
        Assert.Equal(want, Gelu.ErfFloat((float)x), 6);
    }

    [Fact]
    public void FloatErfStaysWithinAFewUlpOfTheDoubleOne()
    {
        double worst = 0;
        for (double x = -6; x <= 6; x += 1e-3) worst = Math.Max(worst, Math.Abs(Gelu.ErfFloat((float)x) - Gelu.ErfDouble((float)x)));
        Assert.True(worst < 5e-7, $"worst |erf_f32 − erf| = {worst:E2}");
    }

    [Fact]
    public void Float32GeluForwardIsTheScalarFormulaBitForBit()
    {
        // The forward runs eight lanes at a time and finishes the tail with the scalar loop: both must agree exactly.
        var rng = new Random(7);
        var u = new float[8 * 40 + 5];
        for (int i = 0; i < u.Length; i++) u[i] = (float)((rng.NextDouble() * 2 - 1) * (i % 3 == 0 ? 9 : 3));
        u[0] = 4f; u[1] = -4f; u[2] = 0f; u[3] = -0f; u[4] = 1e-30f;
        var got = new float[u.Length];
        Gelu.Forward<float>(got, u);
        for (int i = 0; i < u.Length; i++)
        {
            float want = 0.5f * u[i] * (1f + Gelu.ErfFloat(u[i] * 0.70710678118654752440f));
            Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got[i]), $"u[{i}] = {u[i]}: {got[i]} vs {want}");
        }
    }

    [Fact]
    public void GeluBackwardMatchesFiniteDifferences()
    {
        var u = FiniteDifference.Random(new Random(1), 64, 4);
        var dy = FiniteDifference.Random(new Random(2), 64);
        var dx = new double[64];
        Gelu.Backward<double>(dx, dy, u);
        var want = FiniteDifference.Gradient(() => { var y = new double[64]; Gelu.Forward<double>(y, u); return FiniteDifference.Dot(y, dy); }, u);
        FiniteDifference.AssertClose("dgelu", want, dx, 1e-7);
    }

    [Fact]
    public void LayerNormBackwardMatchesFiniteDifferences()
    {
        int n = 3, c = 8;
        var rng = new Random(3);
        var x = FiniteDifference.Random(rng, n * c, 2); var w = FiniteDifference.Random(rng, c); var b = FiniteDifference.Random(rng, c);
        var dy = FiniteDifference.Random(rng, n * c);
        double Loss() { var y = new double[n * c]; LayerNorm.Forward(y, new double[n], new double[n], x, w, b, n, c, 1e-5); return FiniteDifference.Dot(y, dy); }
        var yy = new double[n * c]; var mean = new double[n]; var rstd = new double[n];
        LayerNorm.Forward(yy, mean, rstd, x, w, b, n, c, 1e-5);
        var dx = new double[n * c]; var dw = new double[c]; var db = new double[c];
        LayerNorm.Backward(dx, dw, db, dy, x, w, mean, rstd, n, c);
        FiniteDifference.AssertClose("dx", FiniteDifference.Gradient(Loss, x), dx, 1e-7);
        FiniteDifference.AssertClose("dw", FiniteDifference.Gradient(Loss, w), dw, 1e-7);
        FiniteDifference.AssertClose("db", FiniteDifference.Gradient(Loss, b), db, 1e-7);
    }

    [Fact]
    public void MaskedAttentionBackwardMatchesFiniteDifferencesAndIgnoresPaddedKeys()
    {
        int b = 2, t = 5, heads = 2, d = 3, hd = heads * d;
        int[] valid = [5, 3];
        var rng = new Random(4);
        var q = FiniteDifference.Random(rng, b * t * hd); var k = FiniteDifference.Random(rng, b * t * hd); var v = FiniteDifference.Random(rng, b * t * hd);
        var dy = FiniteDifference.Random(rng, b * t * hd);
        double Loss() { var o = new double[b * t * hd]; MaskedAttention.Forward(o, new double[b * heads * t * t], q, k, v, valid, b, t, heads, d); return FiniteDifference.Dot(o, dy); }
        var outp = new double[b * t * hd]; var probs = new double[b * heads * t * t];
        MaskedAttention.Forward(outp, probs, q, k, v, valid, b, t, heads, d);
        var dq = new double[q.Length]; var dk = new double[k.Length]; var dv = new double[v.Length];
        MaskedAttention.Backward(dq, dk, dv, dy, q, k, v, probs, valid, b, t, heads, d);
        FiniteDifference.AssertClose("dq", FiniteDifference.Gradient(Loss, q), dq, 1e-7);
        FiniteDifference.AssertClose("dk", FiniteDifference.Gradient(Loss, k), dk, 1e-7);
        FiniteDifference.AssertClose("dv", FiniteDifference.Gradient(Loss, v), dv, 1e-7);
        // Padded keys of sequence 1 (positions 3, 4) change nothing: their k and v get zero gradient.
        for (int pos = 3; pos < 5; pos++)
            for (int j = 0; j < hd; j++) { Assert.Equal(0, dk[(t + pos) * hd + j]); Assert.Equal(0, dv[(t + pos) * hd + j]); }
        // And the probabilities of each row over its valid keys sum to one (a hand-computed softmax row check).
        for (int row = 0; row < t; row++) Assert.Equal(1.0, probs[(1 * heads) * t * t + row * t] + probs[(1 * heads) * t * t + row * t + 1] + probs[(1 * heads) * t * t + row * t + 2], 12);
    }

    [Fact]
    public void LinearWithLoraBackwardMatchesFiniteDifferences()
    {
        int n = 4, inDim = 5, outDim = 3, r = 2;
        var rng = new Random(6);
        var lin = new BertLinear<double>("m", new BertTensor<double>("w", [outDim, inDim], FiniteDifference.Random(rng, outDim * inDim)),
            new BertTensor<double>("b", [outDim], FiniteDifference.Random(rng, outDim)))
        {
            Lora = new BertLoraModule<double>(new BertTensor<double>("A", [r, inDim], FiniteDifference.Random(rng, r * inDim)),
                new BertTensor<double>("B", [outDim, r], FiniteDifference.Random(rng, outDim * r)), 2.0),
        };
        foreach (var t in new[] { lin.Weight, lin.Bias, lin.Lora.A, lin.Lora.B }) t.EnableGrad();
        var x = FiniteDifference.Random(rng, n * inDim); var dy = FiniteDifference.Random(rng, n * outDim);
        double Loss() { var y = new double[n * outDim]; BertLinearOps.Forward(y, x, n, lin, new double[n * r]); return FiniteDifference.Dot(y, dy); }
        var yy = new double[n * outDim]; var tt = new double[n * r];
        BertLinearOps.Forward(yy, x, n, lin, tt);
        var dx = new double[n * inDim];
        BertLinearOps.Backward(dx, dy, x, n, lin, tt);
        FiniteDifference.AssertClose("dx", FiniteDifference.Gradient(Loss, x), dx, 1e-7);
        FiniteDifference.AssertClose("dW", FiniteDifference.Gradient(Loss, lin.Weight.Data), lin.Weight.Grad!, 1e-7);
        FiniteDifference.AssertClose("db", FiniteDifference.Gradient(Loss, lin.Bias.Data), lin.Bias.Grad!, 1e-7);
        FiniteDifference.AssertClose("dA", FiniteDifference.Gradient(Loss, lin.Lora.A.Data), lin.Lora.A.Grad!, 1e-7);
        FiniteDifference.AssertClose("dB", FiniteDifference.Gradient(Loss, lin.Lora.B.Data), lin.Lora.B.Grad!, 1e-7);
    }
}
