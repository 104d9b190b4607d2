namespace TransPeft.Engine.IO;

/// <summary>An output folder that may not be written: not empty, an input of the command, or locked by a running training.</summary>
public sealed class OutputFolderException(string dir, string message) : IOException(EngineErrors.OneLine(message))
{
    public string Folder { get; } = dir;
}
