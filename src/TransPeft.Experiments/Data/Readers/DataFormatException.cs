namespace TransPeft.Experiments.Data.Readers;

/// <summary>A data file does not have the format its reader expects. The message names the file, the place and what was expected.</summary>
public sealed class DataFormatException : Exception
{
    public DataFormatException(string file, string problem, int? line = null)
        : base(line is { } l ? $"{file}:{l}: {problem}" : $"{file}: {problem}")
    {
        File = file;
        Line = line;
    }

    public string File { get; }
    public int? Line { get; }
}
