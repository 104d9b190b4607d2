using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>
/// Reads and writes task folders: <c>train.jsonl</c> and <c>test.jsonl</c> (one <see cref="TaskRecord"/> per
/// line, UTF-8, no BOM) and <c>task.json</c> (<see cref="TaskInfo"/>). Writes are atomic.
/// </summary>
public static class TaskFiles
{
    public const string TrainFile = "train.jsonl", TestFile = "test.jsonl", InfoFile = "task.json";

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes the task into <paramref name="directory"/> (created when missing).</summary>
    public static void Write(BuiltTask task, string directory)
    {
        WriteJsonl(Path.Combine(directory, TrainFile), task.Train);
        WriteJsonl(Path.Combine(directory, TestFile), task.Test);
        WriteInfo(Path.Combine(directory, InfoFile), task.Info);
    }

    public static void WriteJsonl(string path, IEnumerable<TaskRecord> records) =>
        AtomicFile.Write(path, stream =>
        {
            var newline = "\n"u8.ToArray();
            foreach (var r in records)
            {
                using (var w = new Utf8JsonWriter(stream, WriterOptions))
                {
                    w.WriteStartObject();
                    w.WriteString("id", r.Id);
                    w.WriteString("prompt", r.Prompt);
                    w.WriteString("completion", r.Completion);
                    if (r.Label is not null) w.WriteString("label", r.Label);
                    if (r.Group is not null) w.WriteString("group", r.Group);
                    w.WriteEndObject();
                }
                stream.Write(newline);
            }
        });

    /// <summary>Reads a JSONL task file; every line must be an object with string id, prompt and completion.</summary>
    public static IReadOnlyList<TaskRecord> ReadJsonl(string path)
    {
        var result = new List<TaskRecord>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path, Encoding.UTF8))
        {
            lineNo++;
            if (line.Length == 0) continue;
            JsonElement root;
            try { using var doc = JsonDocument.Parse(line); root = doc.RootElement.Clone(); }
            catch (JsonException e) { throw new TaskFormatException(path, lineNo, "(line)", $"one JSON object per line ({e.Message})"); }
            if (root.ValueKind != JsonValueKind.Object) throw new TaskFormatException(path, lineNo, "(line)", "a JSON object");
            string? Str(string field, bool required)
            {
                if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
                    return required ? throw new TaskFormatException(path, lineNo, field, "a string, but it is missing") : null;
                return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new TaskFormatException(path, lineNo, field, $"a string, found {v.ValueKind}");
            }
            result.Add(new TaskRecord(Str("id", true)!, Str("prompt", true)!, Str("completion", true)!, Str("label", false), Str("group", false)));
        }
        return result;
    }

    public static void WriteInfo(string path, TaskInfo info)
    {
        var labels = new JsonArray();
        foreach (var l in info.Labels) labels.Add((JsonNode)new JsonObject { ["name"] = l.Name, ["completion"] = l.Completion });
        var groups = new JsonArray();
        foreach (var g in info.Groups) groups.Add((JsonNode)JsonValue.Create(g));
        var root = new JsonObject
        {
            ["name"] = info.Name,
            ["kind"] = info.Kind == TaskKind.Classification ? "classification" : "generation",
            ["description"] = info.Description,
            ["prompt_format"] = info.PromptFormat,
            ["labels"] = labels,
            ["groups"] = groups,
            ["seed"] = info.Seed,
            ["train_file"] = TrainFile,
            ["test_file"] = TestFile,
            ["details"] = info.Details.DeepClone(),
        };
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }

    public static TaskInfo ReadInfo(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new TaskFormatException(path, 0, "(document)", $"valid JSON ({e.Message})"); }
        if (root is not JsonObject o) throw new TaskFormatException(path, 0, "(document)", "a JSON object");
        string Str(string f) => o[f] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new TaskFormatException(path, 0, f, "a string");
        var kind = Str("kind") switch
        {
            "classification" => TaskKind.Classification,
            "generation" => TaskKind.Generation,
            var k => throw new TaskFormatException(path, 0, "kind", $"\"classification\" or \"generation\", found \"{k}\""),
        };
        var labels = new List<TaskLabel>();
        if (o["labels"] is JsonArray la)
            foreach (var l in la)
            {
                if (l is not JsonObject lo || lo["name"] is not JsonValue n || lo["completion"] is not JsonValue c
                    || !n.TryGetValue<string>(out var name) || !c.TryGetValue<string>(out var completion))
                    throw new TaskFormatException(path, 0, "labels", "objects {\"name\": string, \"completion\": string}");
                labels.Add(new TaskLabel(name, completion));
            }
        var groups = (o["groups"] as JsonArray)?.Select(g => g!.GetValue<string>()).ToList() ?? [];
        ulong seed = o["seed"] is JsonValue sv && sv.TryGetValue<ulong>(out var s) ? s : throw new TaskFormatException(path, 0, "seed", "an unsigned integer");
        var details = o["details"] as JsonObject ?? new JsonObject();
        return new TaskInfo(Str("name"), kind, Str("description"), Str("prompt_format"), labels, groups, seed, (JsonObject)details.DeepClone());
    }
}
