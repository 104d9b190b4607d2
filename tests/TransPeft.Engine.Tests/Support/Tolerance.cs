namespace TransPeft.Engine.Tests.Support;

/// <summary>The fixtures' recommended fp32 tolerances (fixtures/README.md).</summary>
internal static class Tolerance
{
    /// <summary>Elementwise |got − want| ≤ atol + rtol·|want|; reports the worst element.</summary>
    public static void Elementwise(string what, ReadOnlySpan<double> want, ReadOnlySpan<float> got, double atol, double rtol)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
        {
            Assert.False(float.IsNaN(got[i]), $"{what}[{i}] is NaN");
            double err = Math.Abs(got[i] - want[i]);
            if (err > atol + rtol * Math.Abs(want[i]))
                Assert.Fail($"{what}[{i}]: got {got[i]}, want {want[i]} (|err| {err:E3} > {atol + rtol * Math.Abs(want[i]):E3})");
        }
    }

    /// <summary>Per tensor: max|got − want| ≤ rtol·max|want| + atol.</summary>
    public static void PerTensor(string what, ReadOnlySpan<double> want, ReadOnlySpan<float> got, double rtol = 1e-4, double atol = 1e-10)
    {
        Assert.Equal(want.Length, got.Length);
        double maxWant = 0, maxErr = 0;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.False(float.IsNaN(got[i]), $"{what}[{i}] is NaN");
            maxWant = Math.Max(maxWant, Math.Abs(want[i]));
            maxErr = Math.Max(maxErr, Math.Abs(got[i] - want[i]));
        }
        Assert.True(maxErr <= rtol * maxWant + atol, $"{what}: max error {maxErr:E3} > {rtol:E0}·{maxWant:E3} + {atol:E0}");
    }

    public static void Relative(string what, double want, double got, double rtol) =>
        Assert.True(Math.Abs(got - want) <= rtol * Math.Abs(want), $"{what}: got {got:R}, want {want:R} (rel err {Math.Abs(got - want) / Math.Abs(want):E3})");
}
