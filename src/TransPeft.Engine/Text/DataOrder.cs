using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Text;

/// <summary>
/// The order in which training examples are visited: position p (counted from the start of training,
/// across epochs) reads example Permutation(epoch = p / N)[p % N]. Each epoch's permutation is a
/// Fisher-Yates shuffle whose every draw is Philox(seed; counter = (i, epoch, 0, tag)), so the order is
/// a pure function of (seed, epoch, position): resuming needs only the position, and no generator
/// state is ever saved.
/// </summary>
internal sealed class DataOrder
{
    /// <summary>Philox counter tags of the data code, above the model's tags (1..3) in <see cref="RandomStream"/>.</summary>
    public const uint TagShuffle = 0x10, TagSplit = 0x11;

    private readonly int _count;
    private readonly ulong _seed;
    private readonly bool _shuffle;
    private long _cachedEpoch = -1;
    private int[] _perm = [];

    public DataOrder(int count, ulong seed, bool shuffle = true)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), "a data order needs at least one example");
        _count = count; _seed = seed; _shuffle = shuffle;
    }

    public int Count => _count;

    /// <summary>The example index visited at <paramref name="position"/>.</summary>
    public int this[long position]
    {
        get
        {
            if (!_shuffle) return (int)(position % _count);
            long epoch = position / _count;
            if (epoch != _cachedEpoch) { _perm = Permutation(_count, _seed, (uint)epoch, TagShuffle); _cachedEpoch = epoch; }
            return _perm[position % _count];
        }
    }

    /// <summary>A uniformly random permutation of 0..n-1 drawn from the Philox stream (seed; lane, tag).</summary>
    public static int[] Permutation(int n, ulong seed, uint lane, uint tag)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            var (w, _, _, _) = Philox4x32.Generate((uint)i, lane, 0, tag << 24, (uint)seed, (uint)(seed >> 32));
            // Multiply-shift maps a 32-bit word onto [0, i] (bias below 2^-32 * n, far under anything measurable).
            int j = (int)(((ulong)w * (ulong)(i + 1)) >> 32);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
