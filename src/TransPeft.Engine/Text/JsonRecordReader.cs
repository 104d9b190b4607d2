using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Text;

/// <summary>
/// Reads the records of a JSONL file (one object per line, blank lines skipped) or of a JSON file
/// holding one array of objects (as Alpaca's alpaca_data.json does). Every record comes with its
/// location ("line 7", "record 3") so errors can point at it.
/// </summary>
internal static class JsonRecordReader
{
    public static IEnumerable<(string Location, JsonObject Record)> Read(string path)
    {
        using (var probe = InputFile.OpenRead(path)) InputFile.RegularLength(probe, path);
        if (StartsWithArray(path))
        {
            foreach (var r in ReadArray(path)) yield return r;
            yield break;
        }
        using var reader = new StreamReader(path, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        int lineNo = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string loc = $"line {lineNo}";
            JsonNode? node;
            try { node = JsonInput.Parse(line, JsonInput.Strict); }
            catch (JsonException e) { throw new DatasetFormatException(path, loc, $"not valid JSON ({JsonInput.Describe(e)})"); }
            if (node is not JsonObject o)
                throw new DatasetFormatException(path, loc, $"expected a JSON object per line, got {Kind(node)}");
            yield return (loc, o);
        }
    }

    private static bool StartsWithArray(string path)
    {
        using var reader = new StreamReader(path, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        int c;
        while ((c = reader.Read()) >= 0)
            if (!char.IsWhiteSpace((char)c)) return c == '[';
        return false;
    }

    private static IEnumerable<(string, JsonObject)> ReadArray(string path)
    {
        JsonNode? root;
        try { root = JsonInput.Parse(JsonInput.ReadText(path), JsonInput.Strict); }
        catch (JsonException e) { throw new DatasetFormatException(path, $"line {e.LineNumber + 1}", $"not valid JSON ({JsonInput.Describe(e)})"); }
        var array = (JsonArray)root!;
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject o)
                throw new DatasetFormatException(path, $"record {i}", $"expected a JSON object, got {Kind(array[i])}");
            yield return ($"record {i}", o);
        }
    }

    public static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "a value",
        },
        _ => "a value",
    };

    public static string RequireString(JsonObject o, string field, string path, string loc, string formatHint)
    {
        if (!o.TryGetPropertyValue(field, out var n))
            throw new DatasetFormatException(path, loc, $"field '{field}' is missing ({formatHint})");
        return Text(n, field, path, loc);
    }

    public static string? OptionalString(JsonObject o, string field, string path, string loc)
    {
        if (!o.TryGetPropertyValue(field, out var n) || n is null) return null;
        return Text(n, field, path, loc);
    }

    private static string Text(JsonNode? n, string field, string path, string loc)
    {
        if (JsonInput.StringOf(n, out bool unpaired) is { } s) return s;
        if (unpaired) throw new DatasetFormatException(path, loc, $"field '{field}': holds an unpaired UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair), which is not text");
        throw new DatasetFormatException(path, loc, $"field '{field}': expected a string, got {Kind(n)}");
    }

    public static int[]? IntArray(JsonObject o, string field, string path, string loc, bool required)
    {
        if (!o.TryGetPropertyValue(field, out var n) || n is null)
            return required ? throw new DatasetFormatException(path, loc, $"field '{field}' is missing (pre-tokenized records need \"input_ids\")") : null;
        if (n is not JsonArray a)
            throw new DatasetFormatException(path, loc, $"field '{field}': expected an array of integers, got {Kind(n)}");
        var r = new int[a.Count];
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is JsonValue v && v.TryGetValue(out int x)) { r[i] = x; continue; }
            throw new DatasetFormatException(path, loc, $"field '{field}'[{i}]: expected an integer, got {Kind(a[i])}{(a[i] is JsonValue ? $" {a[i]!.ToJsonString()}" : "")}");
        }
        return r;
    }
}
