using TransPeft.Engine.Evaluation;

namespace TransPeft.Engine.Tests.Evaluation;

public class StatisticsTests
{
    // Published Wilson score intervals (95%), e.g. 8/10 -> [0.490, 0.943]; 0/20 has the closed-form upper bound z²/(n+z²).
    [Theory]
    [InlineData(8, 10, 0.4902, 0.9433)]
    [InlineData(50, 100, 0.4038, 0.5962)]
    [InlineData(0, 20, 0.0, 0.1611)]
    [InlineData(5, 5, 0.5655, 1.0)]
    public void WilsonIntervalMatchesPublishedValues(int k, int n, double low, double high)
    {
        var ci = Statistics.Wilson(k, n);
        Assert.Equal(low, ci.Low, 4);
        Assert.Equal(high, ci.High, 4);
        Assert.Equal(0.95, ci.Level);
    }

    [Fact]
    public void WilsonIntervalOfNoDataIsEverything()
    {
        Assert.Equal(new ConfidenceInterval(0, 1, 0.95), Statistics.Wilson(0, 0));
        Assert.Throws<ArgumentException>(() => Statistics.Wilson(3, 2));
    }

    [Fact]
    public void StudentQuantilesMatchClosedFormsAndTables()
    {
        // df = 1 is Cauchy: tan(π(p − ½)); df = 2: t = (2p−1)·sqrt(2 / (1 − (2p−1)²)).
        Assert.Equal(Math.Tan(Math.PI * 0.475), Statistics.StudentTQuantile(0.975, 1), 9);
        Assert.Equal(0.95 * Math.Sqrt(2 / (1 - 0.95 * 0.95)), Statistics.StudentTQuantile(0.975, 2), 9);
        Assert.Equal(3.182446, Statistics.StudentTQuantile(0.975, 3), 6);
        Assert.Equal(2.262157, Statistics.StudentTQuantile(0.975, 9), 6);
        Assert.Equal(2.042272, Statistics.StudentTQuantile(0.975, 30), 6);
        Assert.Equal(-2.262157, Statistics.StudentTQuantile(0.025, 9), 6);
        Assert.Equal(0.0, Statistics.StudentTQuantile(0.5, 4));
    }

    [Fact]
    public void MeanAndSampleStandardDeviation()
    {
        double[] xs = [2, 4, 4, 4, 5, 5, 7, 9];
        Assert.Equal(5.0, Statistics.Mean(xs));
        Assert.Equal(Math.Sqrt(32.0 / 7), Statistics.StdDev(xs), 12);
        Assert.Equal(0.0, Statistics.StdDev([3.0]));
    }

    [Fact]
    public void PairedDifferencesWithTInterval()
    {
        double[] a = [1, 2, 3, 4], b = [1.5, 2.4, 3.7, 4.2];
        var c = PairedComparison.Compare(a, b, "accuracy", "direct", "trans-peft");
        Assert.Equal(4, c.N);
        Assert.Equal(0.45, c.MeanDifference, 12);
        Assert.Equal(0.20816659994661327, c.StdDevDifference, 12);
        Assert.Equal(3.182446, c.TCritical, 6);
        Assert.Equal(0.118760, c.Ci.Low, 5);
        Assert.Equal(0.781240, c.Ci.High, 5);
        Assert.True(c.Significant);
        Assert.Equal([0.5, 0.4, 0.7, 0.2], c.Differences.Select(d => Math.Round(d, 12)));
        Assert.Contains("\"mean_difference\"", c.ToJson());
        Assert.Throws<ArgumentException>(() => PairedComparison.Compare([1.0], [2.0]));
        Assert.Throws<ArgumentException>(() => PairedComparison.Compare([1.0, 2], [2.0]));
    }

    [Fact]
    public void GapRecoveredIsTheShareOfDirectToRetune()
    {
        // Loss: direct 5.75, retune 5.35, transfer 5.65 -> recovers a quarter of the gap.
        Assert.Equal(0.25, Statistics.GapRecovered([5.75, 5.75], [5.65, 5.65], [5.35, 5.35]), 12);
        Assert.True(double.IsNaN(Statistics.GapRecovered([1.0], [2.0], [1.0])));
    }
}
