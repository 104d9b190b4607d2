namespace TransPeft.Engine.IO;

/// <summary>A model, adapter or checkpoint file that breaks a rule of its format.
/// The message names the file, the tensor or field where one applies, and the rule.</summary>
public sealed class SafetensorsFormatException(string path, string? tensor, string rule)
    : FormatException(EngineErrors.OneLine(tensor is null ? $"{path}: {rule}" : $"{path}: tensor '{tensor}': {rule}"))
{
    public string FilePath { get; } = path;
    public string? Tensor { get; } = tensor;
    public string Rule { get; } = rule;
}
