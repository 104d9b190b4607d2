namespace TransPeft.Experiments.Data.Tasks;

/// <summary>A class of a classification task and the completion text that stands for it (<c>spam</c> -> " spam").</summary>
public sealed record TaskLabel(string Name, string Completion);
