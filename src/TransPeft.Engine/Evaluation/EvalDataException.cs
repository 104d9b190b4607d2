namespace TransPeft.Engine.Evaluation;

/// <summary>An evaluation file or record that breaks a rule: the message names the file and line, the field
/// and what was expected.</summary>
public sealed class EvalDataException(string where, string field, string expected)
    : FormatException(EngineErrors.OneLine($"{where}: field '{field}': expected {expected}"))
{
    public string Where { get; } = where;
    public string Field { get; } = field;
}
