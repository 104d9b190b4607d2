using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.TransPeft;

public class PhiloxTests
{
    /// <summary>Known-answer vectors of Philox-4x32-10 from the Random123 distribution (kat_vectors).</summary>
    [Theory]
    [InlineData(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void MatchesRandom123KnownAnswers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint r0, uint r1, uint r2, uint r3)
    {
        Assert.Equal((r0, r1, r2, r3), Philox4x32.Generate(c0, c1, c2, c3, k0, k1));
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.2)]
    [InlineData(0.3)]
    [InlineData(0.5)]
    public void MaskRateIsWithinStatisticalBounds(double p)
    {
        var pert = new PhiloxFfnPerturbation(new RandomStream(123, 7, 0), p, 0);
        int rows = 64, inter = 500, n = rows * inter;
        var mask = new float[n];
        pert.FillMask(layer: 1, row0: 0, rows, inter, mask);
        double rate = mask.Count(x => x == 0f) / (double)n;
        double sigma = Math.Sqrt(p * (1 - p) / n);
        Assert.InRange(rate, p - 5 * sigma, p + 5 * sigma);
        Assert.All(mask, x => Assert.True(x == 0f || x == 1f));
    }

    [Fact]
    public void SameKeysGiveSameMasksAndOtherStepsLayersOrSeedsDiffer()
    {
        float[] Mask(ulong seed, uint step, uint mb, int layer)
        {
            var m = new float[16 * 40];
            new PhiloxFfnPerturbation(new RandomStream(seed, step, mb), 0.3, 0).FillMask(layer, 0, 16, 40, m);
            return m;
        }
        Assert.Equal(Mask(5, 3, 0, 1), Mask(5, 3, 0, 1));
        Assert.NotEqual(Mask(5, 3, 0, 1), Mask(5, 4, 0, 1));
        Assert.NotEqual(Mask(5, 3, 0, 1), Mask(5, 3, 1, 1));
        Assert.NotEqual(Mask(5, 3, 0, 1), Mask(5, 3, 0, 2));
        Assert.NotEqual(Mask(5, 3, 0, 1), Mask(6, 3, 0, 1));
    }

    [Fact]
    public void PartialRowsReproduceTheWholeMask()
    {
        var pert = new PhiloxFfnPerturbation(new RandomStream(9, 1, 0), 0.25, 0);
        var whole = new float[10 * 33];
        pert.FillMask(0, 0, 10, 33, whole);
        var part = new float[3 * 33];
        pert.FillMask(0, 4, 3, 33, part);
        Assert.Equal(whole.AsSpan(4 * 33, 3 * 33).ToArray(), part);
    }

    [Fact]
    public void LayerDropRateIsWithinBoundsAndIndependentAcrossLayers()
    {
        int trials = 4000, layers = 6; double p = 0.15;
        int drops = 0, both = 0;
        for (uint step = 0; step < trials; step++)
        {
            var pert = new PhiloxFfnPerturbation(new RandomStream(77, step, 0), 0, p);
            for (int l = 0; l < layers; l++) if (pert.IsDropped(l)) drops++;
            if (pert.IsDropped(0) && pert.IsDropped(1)) both++;
        }
        double rate = drops / (double)(trials * layers), sigma = Math.Sqrt(p * (1 - p) / (trials * layers));
        Assert.InRange(rate, p - 5 * sigma, p + 5 * sigma);
        double bothRate = both / (double)trials, s2 = Math.Sqrt(p * p * (1 - p * p) / trials);
        Assert.InRange(bothRate, p * p - 5 * s2, p * p + 5 * s2);
    }

    [Fact]
    public void RejectsProbabilitiesOutsideUnitInterval()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PhiloxFfnPerturbation(default, 1.0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PhiloxFfnPerturbation(default, 0, -0.1));
    }
}
