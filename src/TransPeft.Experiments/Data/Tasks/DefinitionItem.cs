using TransPeft.Experiments.Data.Readers;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>A word to define and the population it belongs to (e.g. <c>rewritten</c>: corpus B gives it another meaning).</summary>
public sealed record DefinitionItem(WordNetDefinition Definition, string Group);
