using System.Numerics;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Rotary position embedding in the rotate-half layout: dims j and j + d/2 of every head are rotated
/// together by the angle pos · inv_freq[j]. The rotation is orthogonal, so the backward is the same
/// rotation by −angle. Tables are computed in float64 (as the reference does) and stored per dtype.
/// </summary>
internal sealed class Rope<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public int HeadDim { get; }
    public int MaxPositions { get; }
    /// <summary>cos/sin of pos · inv_freq[j], [positions computed so far, HeadDim/2], published together as one
    /// reference so a reader on another thread never pairs a grown cos with the old, shorter sin.</summary>
    private sealed record Table(T[] Cos, T[] Sin);
    private Table _table = new([], []);
    private readonly double[] _invFreq;
    private readonly Lock _grow = new();

    /// <summary>
    /// The table is filled lazily, up to the positions actually used (doubling), never up front to
    /// <paramref name="maxPositions"/>: a config.json with max_position_embeddings = 5e7 must not cost gigabytes
    /// to score a 61-token record.
    /// </summary>
    public Rope(ModelConfig config, int maxPositions)
    {
        HeadDim = config.HeadDim;
        MaxPositions = maxPositions;
        _invFreq = InverseFrequencies(config);
    }

    private void EnsurePositions(int positions)
    {
        int half = HeadDim / 2;
        if ((long)positions * half <= _table.Cos.Length) return;
        lock (_grow)
        {
            var old = _table;
            int have = old.Cos.Length / Math.Max(1, half);
            if (positions <= have) return;
            int want = (int)Math.Min(MaxPositions, Math.Max((long)positions, Math.Max(256L, 2L * have)));
            var cos = new T[checked(want * half)];
            var sin = new T[want * half];
            old.Cos.CopyTo(cos, 0);
            old.Sin.CopyTo(sin, 0);
            for (int p = have; p < want; p++)
                for (int j = 0; j < half; j++)
                {
                    double angle = p * _invFreq[j];
                    cos[p * half + j] = T.CreateChecked(Math.Cos(angle));
                    sin[p * half + j] = T.CreateChecked(Math.Sin(angle));
                }
            _table = new Table(cos, sin); // readers see the old or the new table whole, both valid for what they use
        }
    }

    /// <summary>inv_freq[j] = theta^(−2j/d), adjusted by llama3 rope_scaling when configured.</summary>
    public static double[] InverseFrequencies(ModelConfig config)
    {
        int d = config.HeadDim, half = d / 2;
        var inv = new double[half];
        for (int j = 0; j < half; j++)
        {
            double f = 1.0 / Math.Pow(config.RopeTheta, 2.0 * j / d);
            if (config.RopeScaling is { } s)
            {
                double orig = s.OriginalMaxPositionEmbeddings;
                double lowWavelen = orig / s.LowFreqFactor, highWavelen = orig / s.HighFreqFactor;
                double wavelen = 2 * Math.PI / f;
                if (wavelen < highWavelen) { }
                else if (wavelen > lowWavelen) f /= s.Factor;
                else
                {
                    double smooth = (orig / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    f = (1 - smooth) * f / s.Factor + smooth * f;
                }
            }
            inv[j] = f;
        }
        return inv;
    }

    /// <summary>Rotates x[B, T, heads, d] in place; token t of every row sits at position pos0 + t.</summary>
    public void Forward(T[] x, int b, int t, int heads, int pos0) => Rotate(x, b, t, heads, pos0, inverse: false);

    /// <summary>dx = rotation by −angle of dy, in place on [B, T, heads, d].</summary>
    public void Backward(T[] dx, int b, int t, int heads, int pos0) => Rotate(dx, b, t, heads, pos0, inverse: true);

    private void Rotate(T[] x, int b, int t, int heads, int pos0, bool inverse)
    {
        if (pos0 + t > MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(t), $"position {pos0 + t - 1} is beyond the RoPE table ({MaxPositions} positions)");
        EnsurePositions(pos0 + t);
        if (!CpuParallel.Splits(b * t, (long)b * t * HeadDim * heads > 65_536))
        {
            for (int row = 0; row < b * t; row++) RotateRow(x, row, t, heads, pos0, inverse);
            return;
        }
        RotateParallel(x, b, t, heads, pos0, inverse);
    }

    // The lambda lives in its own method: its closure would otherwise be allocated on every call, split or not.
    private void RotateParallel(T[] x, int b, int t, int heads, int pos0, bool inverse) =>
        CpuParallel.For(b * t, row => RotateRow(x, row, t, heads, pos0, inverse));

    private void RotateRow(T[] x, int row, int t, int heads, int pos0, bool inverse)
    {
        int d = HeadDim, half = d / 2;
        int pos = pos0 + row % t;
        var table = _table;
        var cos = table.Cos.AsSpan(pos * half, half);
        var sin = table.Sin.AsSpan(pos * half, half);
        for (int h = 0; h < heads; h++)
        {
            var v = x.AsSpan((row * heads + h) * d, d);
            for (int j = 0; j < half; j++)
            {
                T x1 = v[j], x2 = v[j + half], c = cos[j], s = inverse ? -sin[j] : sin[j];
                v[j] = x1 * c - x2 * s;
                v[j + half] = x2 * c + x1 * s;
            }
        }
    }
}
