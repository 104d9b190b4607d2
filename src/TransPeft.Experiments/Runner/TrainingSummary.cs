using System.Text.Json.Nodes;
using TransPeft.Engine.Training;

namespace TransPeft.Experiments;

/// <summary>A finished training run in numbers, read back from its metrics.jsonl (so a resumed run reports the whole run).</summary>
internal static class TrainingSummary
{
    public static JsonObject Read(string runDir)
    {
        var path = new TrainingRunFolder(runDir).Metrics;
        var steps = new List<(int Step, double Loss, long Tokens, double Elapsed)>();
        var vals = new List<(int Step, double Loss)>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var o = JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException($"{path}: a line is not a JSON object");
            int step = o["step"]!.GetValue<int>();
            if (o["loss"] is JsonValue l)
                steps.Add((step, l.GetValue<double>(), o["tokens"]?.GetValue<long>() ?? 0, o["elapsed"]?.GetValue<double>() ?? 0));
            if (o["val_loss"] is JsonValue v) vals.Add((step, v.GetValue<double>()));
        }
        if (steps.Count == 0) throw new InvalidDataException($"{path}: no training step recorded");
        // The loss at the end of training: the mean of the last tenth of the steps (one step's loss is noisy).
        int tail = Math.Max(1, steps.Count / 10);
        double seconds = steps[^1].Elapsed;
        long tokens = steps.Sum(s => s.Tokens);
        var o2 = new JsonObject
        {
            ["steps"] = steps[^1].Step,
            ["tokens"] = tokens,
            ["seconds"] = Math.Round(seconds, 2),
            ["tokens_per_second"] = seconds > 0 ? Math.Round(tokens / seconds, 1) : null,
            ["first_loss"] = steps[0].Loss,
            ["final_loss"] = steps.TakeLast(tail).Average(s => s.Loss),
        };
        if (vals.Count > 0)
        {
            o2["first_val_loss"] = vals[0].Loss;
            o2["final_val_loss"] = vals[^1].Loss;
            o2["val_curve"] = new JsonArray(vals.Select(v => (JsonNode?)new JsonArray(v.Step, v.Loss)).ToArray());
        }
        return o2;
    }
}
