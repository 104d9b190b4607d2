namespace TransPeft.Engine.Text;

/// <summary>What loading a dataset file produced, for the user: counts, and whether the token cache answered.</summary>
public sealed record DatasetReport(
    string Path, DatasetFormat Format, bool Packed, int Examples, int Skipped, int Truncated,
    long Tokens, long Targets, bool FromCache, string CacheKey);
