namespace TransPeft.Experiments.Data.Corpora;

/// <summary>One document of a corpus.</summary>
/// <param name="Key">Unique, stable key (<c>moby-dick/chapter_1/0</c>): the seeded order hashes it.</param>
/// <param name="Part">Where it comes from.</param>
/// <param name="Text">The text.</param>
/// <param name="Required">Must be in the training split (a task depends on it); never held out.</param>
public sealed record CorpusDocument(string Key, CorpusPart Part, string Text, bool Required = false);
