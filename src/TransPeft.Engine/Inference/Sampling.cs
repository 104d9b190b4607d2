namespace TransPeft.Engine.Inference;

/// <summary>Token choice from one row of logits.</summary>
internal static class Sampling
{
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>log softmax(z)[y] in double precision.</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> z, int y)
    {
        double max = double.NegativeInfinity;
        foreach (var v in z) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in z) sum += Math.Exp(v - max);
        return z[y] - max - Math.Log(sum);
    }

    /// <summary>
    /// Temperature, then top-k, then top-p (nucleus), then one draw from the renormalised distribution. The work arrays
    /// (length V each) are the caller's, so a decode loop that keeps them allocates nothing per token.
    /// </summary>
    public static int Sample(ReadOnlySpan<float> logits, GenerationOptions o, Random rng, int[] idx, double[] p)
    {
        int v = logits.Length;
        double max = double.NegativeInfinity;
        for (int i = 0; i < v; i++) max = Math.Max(max, logits[i]);
        for (int i = 0; i < v; i++) { idx[i] = i; p[i] = Math.Exp((logits[i] - max) / o.Temperature); }
        var ps = p.AsSpan(0, v);
        var ids = idx.AsSpan(0, v);
        ps.Sort(ids); ps.Reverse(); ids.Reverse();
        int keep = o.TopK > 0 ? Math.Min(o.TopK, v) : v;
        double total = 0;
        for (int i = 0; i < keep; i++) total += p[i];
        if (o.TopP < 1)
        {
            double acc = 0;
            for (int i = 0; i < keep; i++)
            {
                acc += p[i] / total;
                if (acc >= o.TopP) { keep = i + 1; break; }
            }
            total = 0;
            for (int i = 0; i < keep; i++) total += p[i];
        }
        double u = rng.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            u -= p[i];
            if (u <= 0) return idx[i];
        }
        return idx[keep - 1];
    }
}
