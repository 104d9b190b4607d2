using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments;

/// <summary>
/// Stage markers of an experiment folder: <c>OUT/stages/ID.json</c> (an ID may contain '/', which makes
/// sub-folders), written atomically once the stage's outputs are complete. A stage with a marker is never run
/// again; one without is run (a training stage cut mid-way resumes from its own checkpoints). Deleting a
/// marker makes its stage run again.
/// </summary>
internal sealed class StageStore(string outDir)
{
    public string Root { get; } = Path.Combine(outDir, "stages");

    public string PathOf(string id)
    {
        if (id.Length == 0 || id.Split('/').Any(p => p.Length == 0 || p == "." || p == ".." || p.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0))
            throw new ArgumentException($"invalid stage id '{id}'");
        return Path.Combine(Root, id.Replace('/', Path.DirectorySeparatorChar) + ".json");
    }

    public StageRecord? Get(string id)
    {
        var path = PathOf(id);
        if (!File.Exists(path)) return null;
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not an object");
            return new StageRecord(id, o["seconds"]!.GetValue<double>(), o["cpu_seconds"]?.GetValue<double>() ?? double.NaN,
                DateTimeOffset.Parse(o["finished"]!.GetValue<string>(), CultureInfo.InvariantCulture),
                o["result"] as JsonObject ?? throw new JsonException("field 'result': expected an object"));
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: unreadable stage marker ({e.Message}); delete it to run the stage again");
        }
    }

    public bool IsDone(string id) => File.Exists(PathOf(id));

    public StageRecord Complete(string id, double seconds, double cpuSeconds, JsonObject result)
    {
        var finished = DateTimeOffset.UtcNow;
        var o = new JsonObject
        {
            ["stage"] = id,
            ["seconds"] = Math.Round(seconds, 3),
            ["cpu_seconds"] = Math.Round(cpuSeconds, 3),
            ["finished"] = finished.ToString("o", CultureInfo.InvariantCulture),
            ["result"] = result.DeepClone(),
        };
        var path = PathOf(id);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return new StageRecord(id, seconds, cpuSeconds, finished, result);
    }

    /// <summary>Every finished stage, by id.</summary>
    public IReadOnlyDictionary<string, StageRecord> All()
    {
        var result = new SortedDictionary<string, StageRecord>(StringComparer.Ordinal);
        if (!Directory.Exists(Root)) return result;
        foreach (var f in Directory.EnumerateFiles(Root, "*.json", SearchOption.AllDirectories))
        {
            var id = Path.GetRelativePath(Root, f)[..^".json".Length].Replace(Path.DirectorySeparatorChar, '/');
            if (Get(id) is { } r) result[id] = r;
        }
        return result;
    }
}
