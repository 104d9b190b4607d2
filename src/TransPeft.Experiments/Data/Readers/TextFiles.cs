using System.Text;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>Reading helpers shared by the readers: strict UTF-8 with a Latin-1 fallback, and one newline convention.</summary>
internal static class TextFiles
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Decodes UTF-8; bytes that are not valid UTF-8 mean an 8-bit file, which is read as Latin-1 instead (no byte is lost).</summary>
    public static string Decode(byte[] bytes)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return Encoding.Latin1.GetString(bytes); }
    }

    /// <summary>Reads a text file (UTF-8 or Latin-1), without a BOM, with \r\n and \r turned into \n.</summary>
    public static string ReadAllText(string path)
    {
        var text = Decode(File.ReadAllBytes(path));
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        return NormalizeNewlines(text);
    }

    public static string NormalizeNewlines(string text) =>
        text.Contains('\r') ? text.Replace("\r\n", "\n").Replace('\r', '\n') : text;
}
