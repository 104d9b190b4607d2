namespace TransPeft.Experiments.Data.Corpora;

/// <summary>A part of a corpus and its share of the corpus's character budgets.</summary>
public sealed record CorpusPartShare(CorpusPart Part, double Share);
