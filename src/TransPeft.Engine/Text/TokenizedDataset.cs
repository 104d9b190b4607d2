namespace TransPeft.Engine.Text;

/// <summary>
/// Tokenized examples stored flat: example i is Ids[Offsets[i] .. Offsets[i+1]) with labels of the same
/// length (Hugging Face convention: unshifted, -100 = not counted). Every example has at least one
/// counted target (a position t >= 1 whose label is not -100) and at most the sequence length it was
/// built for. A subset (training/validation split) shares the storage through an index map.
/// </summary>
internal sealed class TokenizedDataset
{
    private readonly int[] _ids, _labels;
    private readonly long[] _offsets;
    private readonly int[]? _map;

    /// <summary>The file (and split) it came from, for messages.</summary>
    public string Name { get; }
    /// <summary>Changes whenever the tokens or labels could differ: the cache key plus the split.</summary>
    public string Fingerprint { get; }
    public int PadId { get; }
    public int Count => _map?.Length ?? _offsets.Length - 1;

    public TokenizedDataset(string name, string fingerprint, int padId, int[] ids, int[] labels, long[] offsets, int[]? map = null)
    {
        if (ids.Length != labels.Length) throw new ArgumentException("ids and labels differ in length");
        if (offsets.Length == 0 || offsets[0] != 0 || offsets[^1] != ids.Length) throw new ArgumentException("offsets do not cover the ids");
        Name = name; Fingerprint = fingerprint; PadId = padId;
        _ids = ids; _labels = labels; _offsets = offsets; _map = map;
    }

    private int Raw(int i) => _map is null ? i : _map[i];

    public int LengthOf(int i) { int r = Raw(i); return (int)(_offsets[r + 1] - _offsets[r]); }
    public ReadOnlySpan<int> IdsOf(int i) { int r = Raw(i); return _ids.AsSpan((int)_offsets[r], (int)(_offsets[r + 1] - _offsets[r])); }
    public ReadOnlySpan<int> LabelsOf(int i) { int r = Raw(i); return _labels.AsSpan((int)_offsets[r], (int)(_offsets[r + 1] - _offsets[r])); }

    public long TotalTokens { get { long n = 0; for (int i = 0; i < Count; i++) n += LengthOf(i); return n; } }

    /// <summary>The examples at <paramref name="indices"/> (positions in this dataset), in that order.</summary>
    public TokenizedDataset Subset(int[] indices, string splitName) =>
        new($"{Name} [{splitName}]", $"{Fingerprint}|{splitName}", PadId, _ids, _labels, _offsets, Array.ConvertAll(indices, Raw));

    internal (int[] Ids, int[] Labels, long[] Offsets) Storage => _map is null ? (_ids, _labels, _offsets)
        : throw new InvalidOperationException("a subset has no storage of its own");
}
