using System.Globalization;

namespace TransPeft.Engine.Text;

/// <summary>What loading a dataset file produced, for the user: counts, and whether the token cache answered.</summary>
public sealed record DatasetReport(
    string Path, DatasetFormat Format, bool Packed, int Examples, int Skipped, int Truncated,
    long Tokens, long Targets, bool FromCache, string CacheKey)
{
    /// <summary>One line for logs: "train.jsonl: 120 sequences (text-records, packed), 2,340 tokens, 2,220 targets, from the cache".</summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        string s = $"{Path}: {Examples.ToString("N0", inv)} sequences ({Format.Name()}{(Packed ? ", packed" : "")}), "
            + $"{Tokens.ToString("N0", inv)} tokens, {Targets.ToString("N0", inv)} targets";
        if (Truncated > 0) s += $", {Truncated.ToString("N0", inv)} truncated";
        if (Skipped > 0) s += $", {Skipped.ToString("N0", inv)} skipped (no target left)";
        return s + (FromCache ? ", from the tokenization cache" : "");
    }
}
