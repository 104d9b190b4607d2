using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using static TransPeft.Engine.Tests.Support.FiniteDifference;

namespace TransPeft.Engine.Tests.Compute;

/// <summary>
/// Every op's hand-written backward against central finite differences in float64, on small random
/// shapes (odd sizes included). The scalar probed is L = Σ out ∘ R for a fixed random R, so dL/dout = R.
/// </summary>
public class OpGradientTests
{
    [Theory]
    [InlineData(3, 7)]
    [InlineData(5, 16)]
    public void RmsNormBackwardMatchesFiniteDifferences(int n, int c)
    {
        var rng = new Random(1);
        var x = Random(rng, n * c); var w = Random(rng, c); var r = Random(rng, n * c);
        double Loss()
        {
            var o = new double[n * c]; var rs = new double[n];
            RmsNorm.Forward(o, rs, x, w, n, c, 1e-5);
            return Dot(o, r);
        }
        var outp = new double[n * c]; var rstd = new double[n];
        RmsNorm.Forward(outp, rstd, x, w, n, c, 1e-5);
        var dx = new double[n * c]; var dw = new double[c];
        RmsNorm.Backward(dx, dw, r, x, w, rstd, n, c);
        AssertClose("dx", Gradient(Loss, x), dx);
        AssertClose("dw", Gradient(Loss, w), dw);
    }

    [Theory]
    [InlineData(2, 5, 3, 8, false)]
    [InlineData(1, 4, 2, 16, true)]
    public void RopeBackwardMatchesFiniteDifferences(int b, int t, int heads, int d, bool llama3)
    {
        var cfg = new ModelConfig
        {
            HiddenSize = heads * d, IntermediateSize = 8, NumLayers = 1, NumHeads = heads, NumKvHeads = heads, HeadDim = d,
            VocabSize = 8, RopeTheta = 500,
            RopeScaling = llama3 ? new RopeScaling(8, 1, 4, 8) : null,
        };
        var rope = new Rope<double>(cfg, 16);
        var rng = new Random(2);
        var x = Random(rng, b * t * heads * d); var r = Random(rng, x.Length);
        double Loss() { var y = (double[])x.Clone(); rope.Forward(y, b, t, heads, 0); return Dot(y, r); }
        var dx = (double[])r.Clone();
        rope.Backward(dx, b, t, heads, 0);
        AssertClose("dx", Gradient(Loss, x), dx);
    }

    [Fact]
    public void RopeMatchesPairwiseRotationFormula()
    {
        var cfg = new ModelConfig { HiddenSize = 8, IntermediateSize = 8, NumLayers = 1, NumHeads = 1, NumKvHeads = 1, HeadDim = 8, VocabSize = 8, RopeTheta = 10000 };
        var rope = new Rope<double>(cfg, 8);
        var x = Random(new Random(3), 8 * 5);
        var y = (double[])x.Clone();
        rope.Forward(y, 1, 5, 1, 0);
        for (int t = 0; t < 5; t++)
            for (int j = 0; j < 4; j++)
            {
                double ang = t / Math.Pow(10000, 2.0 * j / 8);
                double x1 = x[t * 8 + j], x2 = x[t * 8 + j + 4];
                Assert.Equal(x1 * Math.Cos(ang) - x2 * Math.Sin(ang), y[t * 8 + j], 12);
                Assert.Equal(x2 * Math.Cos(ang) + x1 * Math.Sin(ang), y[t * 8 + j + 4], 12);
            }
    }

    [Theory]
    [InlineData(2, 5, 4, 2, 4)]   // GQA, groups of 2
    [InlineData(1, 7, 3, 3, 6)]   // MHA, odd T
    [InlineData(1, 4, 4, 1, 2)]   // MQA
    public void AttentionBackwardMatchesFiniteDifferences(int b, int t, int nh, int nkv, int d)
    {
        var rng = new Random(4);
        var q = Random(rng, b * t * nh * d); var k = Random(rng, b * t * nkv * d); var v = Random(rng, b * t * nkv * d);
        var r = Random(rng, q.Length);
        double Loss()
        {
            var o = new double[q.Length]; var l = new double[b * nh * t];
            Attention.Forward(o, l, q, k, v, b, t, t, 0, nh, nkv, d);
            return Dot(o, r);
        }
        var outp = new double[q.Length]; var lse = new double[b * nh * t];
        Attention.Forward(outp, lse, q, k, v, b, t, t, 0, nh, nkv, d);
        var dq = new double[q.Length]; var dk = new double[k.Length]; var dv = new double[v.Length];
        Attention.Backward(dq, dk, dv, r, q, k, v, outp, lse, b, t, nh, nkv, d);
        AssertClose("dq", Gradient(Loss, q), dq);
        AssertClose("dk", Gradient(Loss, k), dk);
        AssertClose("dv", Gradient(Loss, v), dv);
    }

    [Fact]
    public void AttentionIsCausal()
    {
        var rng = new Random(5);
        int t = 6, d = 4;
        var q = Random(rng, t * d); var k = Random(rng, t * d); var v = Random(rng, t * d);
        var o1 = new double[t * d]; var l1 = new double[t];
        Attention.Forward(o1, l1, q, k, v, 1, t, t, 0, 1, 1, d);
        k[5 * d] += 3; v[5 * d + 1] -= 2; // change only the last key/value
        var o2 = new double[t * d]; var l2 = new double[t];
        Attention.Forward(o2, l2, q, k, v, 1, t, t, 0, 1, 1, d);
        Assert.Equal(o1.AsSpan(0, 5 * d).ToArray(), o2.AsSpan(0, 5 * d).ToArray());
        Assert.NotEqual(o1[5 * d + 1], o2[5 * d + 1]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SwiGluBackwardMatchesFiniteDifferences(bool masked)
    {
        var rng = new Random(6);
        int count = 37;
        var g = Random(rng, count, 3); var u = Random(rng, count, 3); var r = Random(rng, count);
        double[]? mask = masked ? Enumerable.Range(0, count).Select(i => i % 3 == 0 ? 0.0 : 1.0).ToArray() : null;
        double Loss() { var a = new double[count]; SwiGlu.Forward(a, g, u, mask, count); return Dot(a, r); }
        var dg = new double[count]; var du = new double[count];
        SwiGlu.Backward(dg, du, r, g, u, mask, count);
        AssertClose("dgate", Gradient(Loss, g), dg);
        AssertClose("dup", Gradient(Loss, u), du);
        if (masked) for (int i = 0; i < count; i += 3) { Assert.Equal(0, dg[i]); Assert.Equal(0, du[i]); }
    }

    [Fact]
    public void CrossEntropyGradientMatchesFiniteDifferencesAndIgnoresMinus100()
    {
        var rng = new Random(7);
        int rows = 4, v = 9;
        var z = Random(rng, rows * v, 4);
        int[] targets = [3, -100, 8, 0];
        double Loss() => CrossEntropy.ForwardBackward((double[])z.Clone(), 0, targets, 0, rows, v, (double?)null);
        var dz = (double[])z.Clone();
        double loss = CrossEntropy.ForwardBackward(dz, 0, targets, 0, rows, v, (double?)1.0);
        Assert.Equal(Loss(), loss, 12);
        AssertClose("dlogits", Gradient(Loss, z), dz);
        Assert.All(dz.AsSpan(v, v).ToArray(), x => Assert.Equal(0, x));
    }

    [Fact]
    public void EmbeddingBackwardScattersIntoUsedRowsOnly()
    {
        var rng = new Random(8);
        int vocab = 6, c = 3;
        var wte = Random(rng, vocab * c); int[] ids = [2, 4, 2];
        var r = Random(rng, ids.Length * c);
        double Loss() { var o = new double[ids.Length * c]; Embedding.Forward(o, ids, wte, ids.Length, c, vocab); return Dot(o, r); }
        var d = new double[vocab * c];
        Embedding.Backward(d, r, ids, ids.Length, c);
        AssertClose("dwte", Gradient(Loss, wte), d);
        Assert.All(d.AsSpan(0, c).ToArray(), x => Assert.Equal(0, x));
    }

    [Fact]
    public void EmbeddingRejectsOutOfVocabularyIds()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Forward(new float[3], [5], new float[3 * 3], 1, 3, 3));
        Assert.Contains("token id 5", e.Message);
    }
}
