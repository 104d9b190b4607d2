using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Training;

/// <summary>
/// OUT/metrics.jsonl: one JSON object per line, flushed as written. Step lines carry
/// step, loss, lr, grad_norm, tokens, targets, tokens_per_s, elapsed, epoch; evaluation lines carry
/// step, val_loss, val_targets, elapsed. Doubles are written round-trip exact.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    public const string FileName = "metrics.jsonl";
    private readonly StreamWriter _writer;

    public string Path { get; }

    private MetricsLog(string path, StreamWriter writer) { Path = path; _writer = writer; }

    /// <summary>A fresh log (an old file is replaced), or on resume the old one cut after <paramref name="keepUpToStep"/>.</summary>
    public static MetricsLog Open(string outDir, int? keepUpToStep)
    {
        var path = System.IO.Path.Combine(outDir, FileName);
        if (keepUpToStep is { } keep && File.Exists(path))
        {
            // Lines past the checkpoint belong to a trajectory that the resumed run replaces.
            var kept = File.ReadLines(path).Where(l => StepOf(l) is { } s && s <= keep);
            AtomicFile.WriteAllText(path, string.Concat(kept.Select(l => l + "\n")));
        }
        else AtomicFile.WriteAllText(path, "");
        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
        return new MetricsLog(path, new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true });
    }

    private static int? StepOf(string line)
    {
        try { return JsonNode.Parse(line)?["step"]?.GetValue<int>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { return null; }
    }

    public void Write(JsonObject line) => _writer.WriteLine(line.ToJsonString());

    public void Dispose() => _writer.Dispose();
}
