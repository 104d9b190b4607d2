using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Training.Bert;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft eval` on a BERT encoder folder: a sequence-classification adapter (LoRA + head, as
/// <see cref="BertSequenceClassifier"/> saves it) applied to the model (its own base, or another one: transfer),
/// accuracy on JSONL records {"text", "label"} with a 95% Wilson interval.
/// </summary>
internal static class BertEval
{
    public static bool IsBert(string modelDir)
    {
        var cfg = Path.Combine(modelDir, "config.json");
        if (!File.Exists(cfg)) return false;
        try { return JsonNode.Parse(File.ReadAllText(cfg))?["model_type"]?.GetValue<string>() == "bert"; }
        catch (JsonException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Reads {"text": ..., "label": NAME} lines; errors name the file and line.</summary>
    public static List<LabelledText> ReadRecords(string path, IReadOnlyList<string> labels)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file (expected JSONL records {{\"text\", \"label\"}})");
        var result = new List<LabelledText>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (line.Trim().Length == 0) continue;
            JsonObject? o;
            try { o = JsonNode.Parse(line) as JsonObject; }
            catch (JsonException e) { throw new FormatException($"{path}:{lineNo}: expected one JSON object per line ({e.Message})"); }
            if (o?["text"] is not JsonValue tv || !tv.TryGetValue<string>(out var text))
                throw new FormatException($"{path}:{lineNo}: field 'text': expected a string");
            if (o["label"] is not JsonValue lv || !lv.TryGetValue<string>(out var label))
                throw new FormatException($"{path}:{lineNo}: field 'label': expected a string, one of {string.Join(", ", labels)}");
            int index = labels.ToList().IndexOf(label);
            if (index < 0) throw new FormatException($"{path}:{lineNo}: field 'label': expected one of {string.Join(", ", labels)} (the adapter's labels), found '{label}'");
            result.Add(new LabelledText(text, index));
        }
        return result;
    }

    public static int Run(string modelDir, string? adapterDir, string taskPath, int limit, bool json)
    {
        if (adapterDir is null) throw new ArgumentException("--adapter: a BERT model is evaluated through a sequence-classification adapter (LoRA + classifier head)");
        var model = BertModel.Load(modelDir);
        var clf = BertSequenceClassifier.Load(adapterDir);
        var records = ReadRecords(taskPath, clf.Labels);
        if (limit > 0 && limit < records.Count) records = records.Take(limit).ToList();
        var (correct, total, ci) = clf.Evaluate(model, records);
        double acc = total == 0 ? 0 : (double)correct / total;
        if (json)
            JsonOutput.Write(new JsonObject
            {
                ["model"] = Path.GetFullPath(modelDir), ["adapter"] = Path.GetFullPath(adapterDir), ["task"] = Path.GetFullPath(taskPath),
                ["mode"] = "classify", ["accuracy"] = acc, ["correct"] = correct, ["total"] = total,
                ["ci95"] = new JsonArray(ci.Low, ci.High), ["labels"] = new JsonArray(clf.Labels.Select(l => (JsonNode)l).ToArray()),
            });
        else
            AnsiConsole.MarkupLineInterpolated($"accuracy [bold]{acc * 100:F1}%[/] ({correct}/{total}), 95% CI [[{ci.Low * 100:F1}, {ci.High * 100:F1}]] — BERT {model.Config.NumLayers} layers + adapter {adapterDir}");
        return 0;
    }
}
