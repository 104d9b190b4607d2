namespace TransPeft.Engine.IO.Onnx;

/// <summary>An ONNX file (or the package that should hold one) is not what the importer expects: one line naming the file, the field and what was expected.</summary>
public sealed class OnnxFormatException(string file, string field, string expected)
    : Exception($"{file}: {field}: {expected}")
{
    public string File { get; } = file;
    public string Field { get; } = field;
}
