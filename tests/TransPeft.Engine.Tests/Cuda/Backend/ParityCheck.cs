namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// Tolerance checks for GPU (bf16) results against CPU references. NaN never passes (a NaN-poisoned element that a
/// kernel failed to write fails here). Each check returns its worst error as a fraction of the allowed error
/// (≤ 1 passes), so tests can report how close they came.
/// </summary>
internal static class ParityCheck
{
    /// <summary>Elementwise |got − want| ≤ atol + rtol·|want|.</summary>
    public static double Elementwise(string what, ReadOnlySpan<float> want, ReadOnlySpan<float> got, double atol, double rtol)
    {
        Assert.True(want.Length == got.Length, $"{what}: {got.Length} values, expected {want.Length}");
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.False(float.IsNaN(got[i]) || float.IsInfinity(got[i]), $"{what}[{i}] is {got[i]} (want {want[i]})");
            double ratio = Math.Abs(got[i] - want[i]) / (atol + rtol * Math.Abs(want[i]));
            if (ratio > worst) { worst = ratio; worstAt = i; }
        }
        Assert.True(worst <= 1, $"{what}[{worstAt}]: got {(worstAt >= 0 ? got[worstAt] : 0)}, want {(worstAt >= 0 ? want[worstAt] : 0)} (error {worst:F2}x the allowed {atol:E1} + {rtol:E1}·|want|)");
        return worst;
    }

    /// <summary>Per tensor: max|got − want| ≤ rtol·max|want| + atol (gradients, whose small elements carry no signal).</summary>
    public static double PerTensor(string what, ReadOnlySpan<float> want, ReadOnlySpan<float> got, double rtol, double atol = 1e-12)
    {
        Assert.True(want.Length == got.Length, $"{what}: {got.Length} values, expected {want.Length}");
        double maxWant = 0, maxErr = 0;
        int at = -1;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.False(float.IsNaN(got[i]) || float.IsInfinity(got[i]), $"{what}[{i}] is {got[i]}");
            maxWant = Math.Max(maxWant, Math.Abs(want[i]));
            double e = Math.Abs(got[i] - want[i]);
            if (e > maxErr) { maxErr = e; at = i; }
        }
        double allowed = rtol * maxWant + atol;
        Assert.True(maxErr <= allowed, $"{what}: max error {maxErr:E3} at [{at}] > {rtol:E1}·{maxWant:E3} + {atol:E0}");
        return allowed > 0 ? maxErr / allowed : 0;
    }

    public static double Relative(string what, double want, double got, double rtol)
    {
        Assert.False(double.IsNaN(got), $"{what} is NaN");
        double ratio = Math.Abs(got - want) / (rtol * Math.Abs(want));
        Assert.True(ratio <= 1, $"{what}: got {got:R}, want {want:R} (rel err {Math.Abs(got - want) / Math.Abs(want):E3} > {rtol:E1})");
        return ratio;
    }

    /// <summary>A gradient tensor: max error within <c>tol.GradMax</c> of the largest |want| and L2 error within
    /// <c>tol.GradL2</c> of ‖want‖. Returns the worse of the two ratios.</summary>
    public static double Gradient(string what, ReadOnlySpan<float> want, ReadOnlySpan<float> got, ParityTolerance tol)
    {
        double max = PerTensor(what, want, got, tol.GradMax);
        double num = 0, den = 0;
        for (int i = 0; i < want.Length; i++)
        {
            double e = got[i] - want[i];
            num += e * e;
            den += (double)want[i] * want[i];
        }
        double l2 = den > 0 ? Math.Sqrt(num / den) : Math.Sqrt(num);
        Assert.True(l2 <= tol.GradL2 || den == 0 && num == 0, $"{what}: L2 error {l2:E3} of the tensor's norm > {tol.GradL2:E1}");
        return Math.Max(max, den > 0 ? l2 / tol.GradL2 : 0);
    }

    /// <summary>Logits: |got − want| ≤ fraction·max|want| + rel·|want|.</summary>
    public static double Logits(string what, ReadOnlySpan<float> want, ReadOnlySpan<float> got, ParityTolerance tol)
    {
        double max = 0;
        foreach (var w in want) max = Math.Max(max, Math.Abs(w));
        return Elementwise(what, want, got, tol.LogitAbsFraction * max, tol.LogitRel);
    }

    /// <summary>
    /// One greedy step against the truth: <paramref name="token"/> is the reference's choice; the backend's logits
    /// <paramref name="got"/> must pick it exactly where the true top-1/top-2 gap exceeds 2τ (τ = the logit tolerance
    /// at this step's scale), and elsewhere must score it within 2τ of their own top. Sound: if every logit is within
    /// τ of the truth, a gap over 2τ cannot flip. Returns true when the gap demanded the exact token.
    /// </summary>
    public static bool GreedyStep(string what, ReadOnlySpan<float> truth, ReadOnlySpan<float> got, int token, ParityTolerance tol)
    {
        int top = 0;
        double maxAbs = 0, second = double.NegativeInfinity;
        for (int j = 0; j < truth.Length; j++)
        {
            if (got[j] > got[top]) top = j;
            maxAbs = Math.Max(maxAbs, Math.Abs(truth[j]));
            if (j != token) second = Math.Max(second, truth[j]);
        }
        double gap = truth[token] - second;
        double tau = (tol.LogitAbsFraction + tol.LogitRel) * maxAbs;
        if (gap > 2 * tau)
        {
            Assert.True(top == token, $"{what}: argmax {top}, reference {token}, although the true gap {gap:F3} exceeds 2τ = {2 * tau:F3}");
            return true;
        }
        Assert.True(got[top] - got[token] <= 2 * tau, $"{what}: reference token {token} scores {got[top] - got[token]:F4} below the top ({top}), more than 2τ = {2 * tau:F4}");
        return false;
    }
}
