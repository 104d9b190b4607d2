namespace TransPeft.Engine.Text;

/// <summary>A dataset record that cannot be used, located by file and line (or record index).</summary>
public sealed class DatasetFormatException(string path, string location, string problem)
    : FormatException(EngineErrors.OneLine($"{path}:{location}: {problem}"))
{
    public string DataPath { get; } = path;
    /// <summary>"line N" for JSONL files, "record N" for a JSON array, "(file)" for the whole file.</summary>
    public string Location { get; } = location;
}
