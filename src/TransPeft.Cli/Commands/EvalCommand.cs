using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft eval`: task metrics through <see cref="TaskEvaluator"/>: likelihood-ranked classification accuracy,
/// exact match of greedy generations, or completion loss; accuracies come with 95% Wilson intervals.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var tokenizer = CommonOptions.Tokenizer();
        var task = new Option<string>("--task")
        {
            Description = "Evaluation records, JSONL {\"prompt\",\"completion\",\"labels\"?} (e.g. a task folder's test.jsonl). A task.json beside it supplies the kind and labels",
            Required = true, HelpName = "FILE",
        };
        var mode = new Option<string>("--mode")
        {
            Description = "classify: pick the candidate label with the highest log-likelihood after the prompt; generate: greedy generation, answer extraction, exact match; "
                + "loss: mean cross-entropy of the completions. auto: from task.json, else classify when records carry \"labels\"",
            DefaultValueFactory = _ => "auto",
        };
        var labels = new Option<string[]>("--labels") { Description = "classify: candidate labels for records without their own (default: task.json's, else the distinct gold completions)", AllowMultipleArgumentsPerToken = true };
        var pattern = new Option<string?>("--answer-pattern") { Description = "generate: regex whose group 'answer' (or first group, or whole match) is the answer; default: the first line", HelpName = "REGEX" };
        var goldIsAnswer = new Option<bool>("--gold-is-answer") { Description = "generate: the gold completion is the answer itself, not text to extract it from" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "generate: most tokens per answer", DefaultValueFactory = _ => 256 };
        var stop = new Option<string[]>("--stop") { Description = "generate: stop strings (default: newline without --answer-pattern, none with one); repeatable", HelpName = "STR" };
        var limit = new Option<int>("--limit") { Description = "Evaluate only the first N records (0 = all)", DefaultValueFactory = _ => 0 };
        var predictions = new Option<bool>("--predictions") { Description = "Include every example's prediction in the output" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("eval",
            "Evaluate a model (and adapter) on a task: accuracy with a 95% confidence interval, per-class counts and the confusion matrix for classification.\n"
            + "Example: tpeft eval --model base --adapter run/final --task data/tasks/spam/test.jsonl --mode classify --json")
            { model, adapter, tokenizer, task, mode, labels, pattern, goldIsAnswer, maxNew, stop, limit, predictions, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string modelDir = p.GetValue(model)!, taskPath = p.GetValue(task)!;
            if (BertEval.IsBert(modelDir)) return BertEval.Run(modelDir, p.GetValue(adapter), taskPath, p.GetValue(limit), p.GetValue(json));
            var dev = DeviceChoice.ForCommand(p, device);
            var records = EvalDataset.LoadJsonl(taskPath);
            if (p.GetValue(limit) is > 0 and var n && n < records.Count) records = records.Take(n).ToList();
            var info = ReadTaskInfo(taskPath);
            string m = ResolveMode(p.GetValue(mode)!, info, records, taskPath);

            var taskLabels = p.GetValue(labels) is { Length: > 0 } l ? l.ToList()
                : m == "classify" && info is { Labels.Count: > 0 } ? info.Labels.Select(x => x.Completion).ToList() : null;
            // Pre-tokenized records (prompt_ids, completion_ids, label_ids) need no tokenizer.
            using var session = ModelInputs.OpenSession(modelDir, p.GetValue(tokenizer), required: !records.All(r => r.Tokenized),
                "text records need to encode the prompts", DeviceChoice.ForCommand(p, device), p.GetValue(adapter));
            var tok = session.Tokenizer;
            var options = new EvalOptions
            {
                PrependBos = tok is { AddBosToken: true } && session.Config.BosTokenId is not null,
                Labels = taskLabels, AnswerPattern = p.GetValue(pattern), GoldIsAnswer = p.GetValue(goldIsAnswer),
                MaxNewTokens = p.GetValue(maxNew), StopStrings = p.GetValue(stop) is { Length: > 0 } s ? s : null,
                KeepPredictions = p.GetValue(predictions),
            };
            var evaluator = new TaskEvaluator(session, ModelInputs.AdapterOf(p.GetValue(adapter)), options, taskPath);
            var header = new JsonObject
            {
                ["mode"] = m, ["task"] = Path.GetFullPath(taskPath), ["model"] = Path.GetFullPath(modelDir),
                ["adapter"] = p.GetValue(adapter) is { } a ? Path.GetFullPath(a) : null, ["device"] = session.DeviceDescription,
            };
            bool asJson = p.GetValue(json);
            switch (m)
            {
                case "classify":
                {
                    var r = evaluator.Classify(records);
                    if (asJson) { header["result"] = JsonNode.Parse(r.ToJson()); JsonOutput.Write(header); break; }
                    Summary(m, taskPath, r.Count, "accuracy", r.Accuracy, r.Ci95);
                    var per = new Table().AddColumns("label", "gold", "predicted", "correct", "recall", "precision");
                    foreach (var label in r.Labels)
                    {
                        var c = r.PerClass[label];
                        per.AddRow(Markup.Escape(Show(label)), $"{c.Gold}", $"{c.Predicted}", $"{c.Correct}", Pct(c.Recall), Pct(c.Precision));
                    }
                    per.Caption($"labels from {r.LabelSource}");
                    AnsiConsole.Write(per);
                    var confusion = new Table().AddColumn("gold \\ predicted");
                    foreach (var label in r.Labels) confusion.AddColumn(Markup.Escape(Show(label)));
                    for (int g = 0; g < r.Labels.Count; g++)
                        confusion.AddRow([Markup.Escape(Show(r.Labels[g])), .. r.Confusion[g].Select(x => x.ToString(CultureInfo.InvariantCulture))]);
                    AnsiConsole.Write(confusion);
                    break;
                }
                case "generate":
                {
                    var r = evaluator.ExactMatch(records);
                    if (asJson) { header["result"] = JsonNode.Parse(r.ToJson()); JsonOutput.Write(header); break; }
                    Summary(m, taskPath, r.Count, "exact match", r.ExactMatch, r.Ci95);
                    AnsiConsole.MarkupLineInterpolated($"answers by {r.Extractor}; {r.NoAnswer} generation(s) held no answer");
                    if (r.Predictions is { } preds)
                    {
                        var t = new Table().AddColumns("line", "answer", "gold", "ok");
                        foreach (var x in preds) t.AddRow($"{x.Line}", Markup.Escape(x.Answer ?? "(none)"), Markup.Escape(x.GoldAnswer), x.Correct ? "[green]yes[/]" : "[red]no[/]");
                        AnsiConsole.Write(t);
                    }
                    break;
                }
                default:
                {
                    var r = evaluator.CompletionLoss(records);
                    if (asJson) { header["result"] = JsonNode.Parse(r.ToJson()); JsonOutput.Write(header); break; }
                    var t = new Table().AddColumns("task", "records", "completion tokens", "mean loss", "perplexity");
                    t.AddRow(Markup.Escape(taskPath), $"{r.Records:N0}", $"{r.Tokens:N0}", $"[bold]{r.MeanLoss.ToString("0.0000", CultureInfo.InvariantCulture)}[/]",
                        r.Perplexity.ToString("0.00", CultureInfo.InvariantCulture));
                    AnsiConsole.Write(t);
                    break;
                }
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>task.json in the records' folder, when there is one.</summary>
    private static TaskInfo? ReadTaskInfo(string taskPath)
    {
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(taskPath))!, TaskFiles.InfoFile);
        return File.Exists(path) ? TaskFiles.ReadInfo(path) : null;
    }

    private static string ResolveMode(string mode, TaskInfo? info, IReadOnlyList<EvalRecord> records, string taskPath)
    {
        string m = mode.Trim().ToLowerInvariant();
        if (m is "classify" or "generate" or "loss") return m;
        if (m != "auto") throw new ArgumentException($"--mode: expected auto, classify, generate or loss, got '{mode}'");
        if (info is not null) return info.Kind == TaskKind.Classification ? "classify" : "generate";
        if (records.Any(r => r.Labels is not null)) return "classify";
        throw new ArgumentException($"--mode: cannot tell how to evaluate {taskPath} (no {TaskFiles.InfoFile} beside it and no record has \"labels\"); give --mode classify, generate or loss");
    }

    private static void Summary(string mode, string task, int count, string metric, double value, ConfidenceInterval ci)
    {
        var t = new Table().AddColumns("task", "mode", "examples", metric, "95% CI");
        t.AddRow(Markup.Escape(task), mode, $"{count:N0}", $"[bold]{value.ToString("P1", CultureInfo.InvariantCulture)}[/]",
            $"{ci.Low.ToString("P1", CultureInfo.InvariantCulture)} .. {ci.High.ToString("P1", CultureInfo.InvariantCulture)}");
        AnsiConsole.Write(t);
    }

    private static string Show(string label) => label.Replace("\n", "⏎", StringComparison.Ordinal);
    private static string Pct(double x) => double.IsNaN(x) ? "-" : x.ToString("P1", CultureInfo.InvariantCulture);
}
