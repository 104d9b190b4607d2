using System.Text.Json;
using System.Text.Json.Nodes;

namespace TransPeft.Engine.Evaluation;

/// <summary>
/// Reads evaluation tasks from JSONL: one JSON object per line,
/// <c>{"prompt": "...", "completion": "...", "labels": ["...", ...]}</c> ("labels" optional, other fields
/// ignored, blank lines skipped), or pre-tokenized <c>{"prompt_ids": [..], "completion_ids": [..], "label_ids": [[..], ...]}</c>
/// (no tokenizer needed; loss and classification). Every malformed line is an error naming the file, line and field.
/// </summary>
public static class EvalDataset
{
    public static IReadOnlyList<EvalRecord> LoadJsonl(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: evaluation file not found", path);
        var records = new List<EvalRecord>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            records.Add(ParseLine(line, $"{path}:{lineNo}", lineNo));
        }
        if (records.Count == 0) throw new EvalDataException(path, "(file)", "at least one JSON record");
        return records;
    }

    internal static EvalRecord ParseLine(string line, string where, int lineNo)
    {
        JsonObject o;
        try { o = JsonNode.Parse(line) as JsonObject ?? throw new EvalDataException(where, "(line)", "a JSON object"); }
        catch (JsonException e) { throw new EvalDataException(where, "(line)", $"a JSON object: {e.Message}"); }
        if (o.ContainsKey("prompt_ids")) return ParseTokenized(o, where, lineNo);
        string Text(string key) => o[key] is JsonValue v && v.TryGetValue(out string? s)
            ? s : throw new EvalDataException(where, key, o[key] is null ? "a string (the field is missing)" : $"a string, got {o[key]!.ToJsonString()}");
        List<string>? labels = null;
        if (o["labels"] is { } ln)
        {
            if (ln is not JsonArray arr || arr.Count == 0)
                throw new EvalDataException(where, "labels", $"a non-empty list of label strings, got {ln.ToJsonString()}");
            labels = arr.Select(n => n is JsonValue v && v.TryGetValue(out string? s) ? s
                : throw new EvalDataException(where, "labels", $"strings only, got {n?.ToJsonString() ?? "null"}")).ToList();
            if (labels.Distinct(StringComparer.Ordinal).Count() != labels.Count)
                throw new EvalDataException(where, "labels", "distinct label strings");
        }
        return new EvalRecord(Text("prompt"), Text("completion"), labels, lineNo);
    }

    private static EvalRecord ParseTokenized(JsonObject o, string where, int lineNo)
    {
        static string? Ids(JsonNode? n) =>
            n is JsonArray a && a.Count > 0 && a.All(x => x is JsonValue v && v.TryGetValue(out int i) && i >= 0)
                ? EvalRecord.SpellIds(a.Select(x => x!.GetValue<int>())) : null;
        string Field(string key) => Ids(o[key]) ?? throw new EvalDataException(where, key,
            $"a non-empty list of token ids (integers >= 0){(o[key] is null ? " (the field is missing)" : $", got {o[key]!.ToJsonString()}")}");
        List<string>? labels = null;
        if (o["label_ids"] is { } ln)
        {
            if (ln is not JsonArray arr || arr.Count == 0)
                throw new EvalDataException(where, "label_ids", $"a non-empty list of token id lists, got {ln.ToJsonString()}");
            labels = arr.Select(n => Ids(n) ?? throw new EvalDataException(where, "label_ids", $"non-empty lists of token ids, got {n?.ToJsonString() ?? "null"}")).ToList();
            if (labels.Distinct(StringComparer.Ordinal).Count() != labels.Count)
                throw new EvalDataException(where, "label_ids", "distinct label id lists");
        }
        return new EvalRecord(Field("prompt_ids"), Field("completion_ids"), labels, lineNo) { Tokenized = true };
    }
}
