namespace TransPeft.Experiments.Data.Readers;

/// <summary>The Jargon File: the full text and its parsed lexicon.</summary>
public sealed record JargonFile(string FullText, IReadOnlyList<JargonEntry> Entries);
