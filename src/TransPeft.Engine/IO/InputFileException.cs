namespace TransPeft.Engine.IO;

/// <summary>A file the user named cannot be read as a file: a folder, a device or pipe, or one too large. The message names it.</summary>
public sealed class InputFileException(string path, string problem) : IOException(EngineErrors.OneLine($"{path}: {problem}"))
{
    public string FilePath { get; } = path;
}
