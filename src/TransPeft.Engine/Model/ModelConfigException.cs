namespace TransPeft.Engine.Model;

/// <summary>A config.json (or adapter config) that is missing a field or holds an inconsistent value.</summary>
public sealed class ModelConfigException(string source, string field, string expected)
    : FormatException(EngineErrors.OneLine($"{source}: field '{field}': expected {expected}"))
{
    public string ConfigPath { get; } = source;
    public string Field { get; } = field;
}
