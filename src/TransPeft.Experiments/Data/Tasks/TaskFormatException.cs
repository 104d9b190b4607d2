namespace TransPeft.Experiments.Data.Tasks;

/// <summary>A task file is malformed; the message names the file, the line and the field.</summary>
public sealed class TaskFormatException(string file, int line, string field, string expected)
    : Exception($"{file}:{line}: field '{field}': expected {expected}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
    public string Field { get; } = field;
}
