using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Experiments.Plots;
using TransPeft.Engine.Analysis;
using TransPeft.Engine.Compute;
using TransPeft.Experiments.Data;
using TransPeft.Engine.Text;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Experiments;

/// <summary>
/// Runs the Trans-PEFT transfer protocol (TRANS-PEFT.md) end to end with real training:
/// <list type="number">
/// <item>data: corpora A and B, tokenizer, tasks (<see cref="IExperimentDataSource"/>);</item>
/// <item>base v1: a model pre-trained from scratch on corpus A;</item>
/// <item>base v2: v1 continued on corpus B with a replay of A (a small update, same architecture);</item>
/// <item>the update analysed (held-out losses, weight change per module, sub-layer activations);</item>
/// <item>per task and seed: plain LoRA on v1 (evaluated on v1 and, transferred, on v2), each Trans-PEFT variant
///   on v1 (likewise), plain LoRA re-tuned on v2;</item>
/// <item>results.json, report.md and plots from every stage's recorded numbers.</item>
/// </list>
/// Every stage writes a marker when its outputs are complete (<see cref="StageStore"/>); a rerun skips finished
/// stages and resumes a training run cut mid-way from its checkpoint, so an interrupted experiment continues
/// where it stopped. Cancelling stops after the current training step (with a checkpoint) or evaluation.
/// </summary>
public sealed class ExperimentRunner
{
    public const string SettingsFormat = "tpeft.experiment";

    private readonly ExperimentPreset _preset;
    private readonly ExperimentLayout _layout;
    private readonly IExperimentDataSource _source;
    private readonly ExperimentProgress _progress;
    private readonly StageStore _stages;
    private CancellationToken _cancel;
    private ExperimentData? _data;
    private CompactGpt2Tokenizer? _tokenizer;
    private readonly List<TaskSpec> _tasks = [];
    private readonly Dictionary<string, double> _exampleTokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _testTokens = new(StringComparer.Ordinal);
    private TransformerModel? _v1, _v2;
    private readonly HashSet<string> _adapterDataWritten = new(StringComparer.Ordinal);

    public ExperimentRunner(ExperimentPreset preset, string outDir, IExperimentDataSource source, Action<string> write)
    {
        _preset = preset;
        _layout = new ExperimentLayout(outDir);
        _source = source;
        _progress = new ExperimentProgress(write);
        _stages = new StageStore(_layout.Root);
    }

    public ExperimentLayout Layout => _layout;

    private ExperimentData Data => _data ?? throw new InvalidOperationException("the data stage has not run");
    private CompactGpt2Tokenizer Tokenizer => _tokenizer ?? throw new InvalidOperationException("the data stage has not run");
    private TransformerModel V1Model => _v1 ??= TransformerModel.Load(_layout.V1);
    private TransformerModel V2Model => _v2 ??= TransformerModel.Load(_layout.V2);

    /// <summary>Runs (or continues) the experiment. Throws <see cref="OperationCanceledException"/> when cancelled;
    /// everything finished so far is kept and the next run continues from there.</summary>
    /// <param name="threads">CPU threads for every stage (0 = every core); the run stays on the calling thread.</param>
    public ExperimentResults Run(bool restart = false, CancellationToken cancel = default, int threads = 0)
    {
        using var _ = CpuThreads.Use(threads);
        return RunStages(restart, cancel);
    }

    private ExperimentResults RunStages(bool restart, CancellationToken cancel)
    {
        _preset.Validate();
        _cancel = cancel;
        PrepareFolder(restart);
        _progress.Line($"experiment '{_preset.Name}': {_preset.Description}");
        _progress.Line($"output {_layout.Root}; {CpuThreads.Current} CPU thread(s)");
        PrepareData();
        PlanCosts();
        TrainV1();
        TrainV2();
        AnalyseUpdate();
        foreach (int seed in _preset.Seeds)
            foreach (var task in _tasks)
                RunAdapters(task, seed);
        return Finish();
    }

    // ------------------------------------------------------------------ folder and settings

    /// <summary>What must not change for a folder's stages to belong to one run (the preset's description may).</summary>
    private JsonObject Settings()
    {
        var preset = _preset.ToJson();
        preset.Remove("description");
        return new JsonObject { ["format"] = SettingsFormat, ["preset"] = preset, ["data_source"] = _source.Describe };
    }

    private void PrepareFolder(bool restart)
    {
        Directory.CreateDirectory(_layout.Root);
        if (restart)
        {
            foreach (var p in _layout.RunOutputs)
            {
                if (Directory.Exists(p)) Directory.Delete(p, recursive: true);
                else if (File.Exists(p)) File.Delete(p);
            }
        }
        var settings = Settings();
        if (File.Exists(_layout.Settings))
        {
            JsonNode? old;
            try { old = JsonNode.Parse(File.ReadAllText(_layout.Settings)); }
            catch (JsonException e) { throw new InvalidDataException($"{_layout.Settings}: unreadable ({e.Message}); rerun with --restart to discard the folder's run"); }
            if (FirstDifference(old, settings, "") is { } diff)
                throw new InvalidOperationException(
                    $"{_layout.Settings}: this folder holds a run with other settings ({diff}); rerun with --restart to discard it, or choose another --out");
            _progress.Line($"continuing the run in {_layout.Root} ({_stages.All().Count} stages finished earlier)");
        }
        else AtomicFile.WriteAllText(_layout.Settings, settings.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The first field where two JSON documents differ ("preset.v1.steps: 600 then, 800 now"), or null.</summary>
    internal static string? FirstDifference(JsonNode? then, JsonNode? now, string path)
    {
        string Here() => path.Length == 0 ? "(document)" : path;
        switch (then, now)
        {
            case (JsonObject a, JsonObject b):
                foreach (var key in a.Select(kv => kv.Key).Union(b.Select(kv => kv.Key)))
                    if (FirstDifference(a[key], b[key], path.Length == 0 ? key : $"{path}.{key}") is { } d) return d;
                return null;
            case (JsonArray a, JsonArray b):
                if (a.Count != b.Count) return $"{Here()}: {a.Count} entries then, {b.Count} now";
                for (int i = 0; i < a.Count; i++)
                    if (FirstDifference(a[i], b[i], $"{path}[{i}]") is { } d) return d;
                return null;
            case (JsonValue a, JsonValue b) when a.GetValueKind() == JsonValueKind.Number && b.GetValueKind() == JsonValueKind.Number:
                // Numbers by value: 1e-05 written by another tool is 1E-05.
                return double.Parse(a.ToJsonString(), CultureInfo.InvariantCulture) == double.Parse(b.ToJsonString(), CultureInfo.InvariantCulture) ? null : $"{Here()}: {a.ToJsonString()} then, {b.ToJsonString()} now";
            default:
                string x = then?.ToJsonString() ?? "null", y = now?.ToJsonString() ?? "null";
                return x == y ? null : $"{Here()}: {x} then, {y} now";
        }
    }

    // ------------------------------------------------------------------ stages

    private bool Done(string id, string what)
    {
        if (_stages.Get(id) is not { } rec) return false;
        _progress.Line($"{what}: finished earlier ({ExperimentProgress.Format(TimeSpan.FromSeconds(rec.Seconds))}), skipped");
        return true;
    }

    private void PrepareData()
    {
        const string id = "data";
        if (_stages.IsDone(id))
        {
            _data = ExperimentData.Open(_layout.Data);
            _progress.Line($"data: {_layout.Data} built earlier, reused");
        }
        else
        {
            _progress.Begin(id, $"data: {_source.Describe}");
            var clock = new StageClock();
            _data = _source.Prepare(_layout.Data, new LineProgress<string>(l => _progress.Line("  " + l)), _cancel);
            var m = _data.Manifest;
            var summary = new JsonObject
            {
                ["source"] = _source.Describe,
                ["fingerprint"] = m["fingerprint"]?.DeepClone(),
                ["sources"] = m["sources"]?.DeepClone(),
                ["corpora"] = m["corpora"]?.DeepClone(),
                ["tasks"] = m["tasks"]?.DeepClone(),
            };
            _stages.Complete(id, clock.Seconds, clock.CpuSeconds, summary);
            _progress.End(id, $"data in {_layout.Data}");
        }
        _tokenizer = _data.LoadTokenizer();

        var available = Data.Tasks;
        var names = _preset.Tasks.Count > 0 ? _preset.Tasks : available.Keys.ToList();
        foreach (var name in names)
        {
            if (!available.TryGetValue(name, out var paths))
                throw new ArgumentException($"preset '{_preset.Name}': task '{name}' is not in {_layout.Data} (available: {string.Join(", ", available.Keys)})");
            var task = TaskSpec.Load(paths, _preset.TestLimit, Tokenizer);
            _tasks.Add(task);
            var train = TransPeft.Experiments.Data.Tasks.TaskFiles.ReadJsonl(paths.TrainPath).Take(64).ToList();
            _exampleTokens[name] = train.Count == 0 ? 32 : train.Average(r => Count(r.Prompt) + Count(r.Completion) + 1.0);
            _testTokens[name] = task.Test.Take(64).Average(r => Count(r.Prompt) + Count(r.Completion) + 0.0);
        }
        _progress.Line($"tasks: {string.Join(", ", _tasks.Select(t => $"{t.Name} ({t.Info.Kind.ToString().ToLowerInvariant()}, {t.Test.Count} test records" +
            (t.IsClassification ? $"; labels scored on {(t.FirstTokenDecision ? "their first token" : "the whole label")}: {string.Join(" / ", t.DecisionLabels.Select(l => $"\"{l}\""))}" : "") + ")"))}");
    }

    private int Count(string text) => text.Length == 0 ? 0 : Tokenizer.CountTokens(text);

    /// <summary>Cost of every stage still to run, in token-equivalents of full training (see <see cref="ExperimentProgress"/>).</summary>
    private void PlanCosts()
    {
        const double forward = 0.35, lora = 1.0; // measured: a LoRA step costs about as much per token as full training here
        double BaseCost(BaseTrainingPlan p) => p.Steps * (double)p.TokensPerStep + (p.Evaluations + 1) * (double)p.EvalSequences * p.SeqLen * forward;
        void Plan(string id, double cost) { if (!_stages.IsDone(id)) _progress.Plan(id, cost); }
        Plan("base/v1", BaseCost(_preset.V1));
        Plan("base/v2", BaseCost(_preset.V2));
        Plan("base/analysis", 2.0 * _preset.HeldOutSequences * _preset.V1.SeqLen * 4 * forward);
        foreach (var task in _tasks)
            foreach (int seed in _preset.Seeds)
                foreach (var (key, evals) in Adapters(task.Name, seed))
                {
                    Plan(key.TrainStage, _preset.Adapter.Steps * _preset.Adapter.BatchSize * _exampleTokens[task.Name] * lora);
                    const double passes = 1;
                    foreach (var b in evals) Plan(key.EvalStage(b), task.Test.Count * _testTokens[task.Name] * forward * passes);
                }
    }

    /// <summary>The adapters of one task and seed, each with the bases it is evaluated on, in training order.</summary>
    private IEnumerable<(AdapterKey Key, string[] EvalOn)> Adapters(string task, int seed)
    {
        yield return (new AdapterKey(task, AdapterVariant.Plain, AdapterKey.OldBase, seed), [AdapterKey.OldBase, AdapterKey.NewBase]);
        foreach (var v in _preset.Variants)
            yield return (new AdapterKey(task, v, AdapterKey.OldBase, seed), [AdapterKey.OldBase, AdapterKey.NewBase]);
        yield return (new AdapterKey(task, AdapterVariant.Plain, AdapterKey.NewBase, seed), [AdapterKey.NewBase]);
    }

    private TrainingOptions BaseOptions(BaseTrainingPlan plan, string model, string data, string val, string output, int seed) => new()
    {
        Model = model, Data = data, ValData = val, DataFormat = DatasetFormat.Text, Pack = true, CacheDir = _layout.TokenCache,
        Output = output, Method = TrainingMethod.Full,
        LearningRate = plan.LearningRate, WeightDecay = plan.WeightDecay, Schedule = ScheduleKind.Cosine, WarmupRatio = plan.WarmupRatio,
        Steps = plan.Steps, BatchSize = plan.BatchSize, GradAccum = 1, SeqLen = plan.SeqLen, Seed = seed, MaxGradNorm = 1.0,
        EvalEvery = plan.Evaluations > 0 ? Math.Max(1, plan.Steps / plan.Evaluations) : 0,
        EvalBatches = plan.EvalSequences > 0 ? (plan.EvalSequences + plan.BatchSize - 1) / plan.BatchSize : 0,
        SaveEvery = plan.Checkpoints > 0 ? Math.Max(1, plan.Steps / plan.Checkpoints) : 0,
        KeepCheckpoints = 1,
    };

    /// <summary>
    /// Trains into options.Output: a finished run (final/ present) is taken as it is, a run with checkpoints is
    /// resumed from the latest, a run that died before its first checkpoint starts over.
    /// </summary>
    private void Train(TrainingOptions options, string label)
    {
        string outDir = options.Output!;
        var run = new TrainingRunFolder(outDir);
        if (run.IsFinished) return;
        string? resume = null;
        if (run.LatestCheckpoint is { } latest)
        {
            resume = outDir;
            _progress.Line($"  {label}: resuming from {Path.GetRelativePath(_layout.Root, latest)}");
        }
        else if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        var result = TrainingRun.Execute(options, _progress.Training(label), resume, _cancel);
        if (result.Interrupted)
            throw new OperationCanceledException($"interrupted in {label} at step {result.Step}/{result.TotalSteps} (checkpoint saved); run the same command again to continue.");
        _cancel.ThrowIfCancellationRequested();
    }

    private void TrainV1()
    {
        const string id = "base/v1";
        if (Done(id, "base v1")) return;
        var config = _preset.Model with { VocabSize = Tokenizer.VocabSize };
        var p = _preset.V1;
        var init = TransformerModel.CreateRandom(config, _preset.ModelSeed);
        _progress.Begin(id, $"base v1: {init.ParameterCount:N0} parameters pre-trained from scratch on corpus A, {p.Steps} steps x {p.BatchSize} x {p.SeqLen} tokens, lr {p.LearningRate:G3}");
        var clock = new StageClock();
        if (!File.Exists(Path.Combine(_layout.V1Init, "config.json")))
        {
            AtomicDirectory.Write(_layout.V1Init, dir =>
            {
                init.Save(dir);
                File.Copy(Data.TokenizerPath, Path.Combine(dir, TokenizerLoader.CompactFileName));
            });
        }
        Train(BaseOptions(p, _layout.V1Init, Data.CorpusATrainPath, Data.CorpusAHeldOutPath, _layout.V1Run, _preset.ModelSeed), "v1");
        var summary = TrainingSummary.Read(_layout.V1Run);
        summary["parameters"] = init.ParameterCount;
        summary["config"] = config.ToJson();
        _stages.Complete(id, clock.Seconds, clock.CpuSeconds, summary);
        _progress.End(id, $"train loss {F(summary["first_loss"])} -> {F(summary["final_loss"])}, held-out A {F(summary["first_val_loss"])} -> {F(summary["final_val_loss"])}");
    }

    private void TrainV2()
    {
        const string id = "base/v2";
        if (Done(id, "base v2")) return;
        var p = _preset.V2;
        _progress.Begin(id, $"base v2: v1 updated on corpus B + {100 * p.ReplayFraction:0}% replay of A, {p.Steps} steps x {p.BatchSize} x {p.SeqLen} tokens, lr {p.LearningRate:G3}");
        var clock = new StageClock();
        var (bChars, aChars) = UpdateCorpus.Write(Data.CorpusBTrainPath, Data.CorpusATrainPath, p.ReplayFraction, (ulong)_preset.ModelSeed, _layout.UpdateText);
        Train(BaseOptions(p, _layout.V1, _layout.UpdateText, Data.CorpusBHeldOutPath, _layout.V2Run, _preset.ModelSeed + 1), "v2");
        var summary = TrainingSummary.Read(_layout.V2Run);
        summary["corpus_b_chars"] = bChars;
        summary["replayed_a_chars"] = aChars;
        _stages.Complete(id, clock.Seconds, clock.CpuSeconds, summary);
        _progress.End(id, $"train loss {F(summary["first_loss"])} -> {F(summary["final_loss"])}, held-out B {F(summary["first_val_loss"])} -> {F(summary["final_val_loss"])}");
    }

    private void AnalyseUpdate()
    {
        const string id = "base/analysis";
        if (Done(id, "update analysis")) return;
        _progress.Begin(id, "update analysis: held-out losses of v1 and v2, weight change per module, sub-layer activations");
        var clock = new StageClock();
        int seqLen = _preset.V1.SeqLen, n = _preset.HeldOutSequences;
        var heldA = HeldOutText.Load("corpus A", Data.CorpusAHeldOutPath, Tokenizer, seqLen, n);
        var heldB = HeldOutText.Load("corpus B", Data.CorpusBHeldOutPath, Tokenizer, seqLen, n);
        var losses = new JsonObject
        {
            ["corpus_a"] = new JsonObject { ["v1"] = heldA.Loss(V1Model), ["v2"] = heldA.Loss(V2Model), ["tokens"] = heldA.Tokens },
            ["corpus_b"] = new JsonObject { ["v1"] = heldB.Loss(V1Model), ["v2"] = heldB.Loss(V2Model), ["tokens"] = heldB.Tokens },
        };
        _cancel.ThrowIfCancellationRequested();
        var analysis = UpdateAnalyzer.Analyze(V1Model, V2Model, heldA.Batches.Concat(heldB.Batches), new AnalysisOptions { OldName = "v1", NewName = "v2" });
        Directory.CreateDirectory(_layout.Analysis);
        AtomicFile.WriteAllText(Path.Combine(_layout.Analysis, "update-analysis.json"), analysis.ToJson());
        AtomicFile.WriteAllText(Path.Combine(_layout.Analysis, "update-analysis.txt"), UpdateAnalysisTable.Render(analysis));
        Directory.CreateDirectory(_layout.Plots);
        UpdateHeatmap.SavePng(analysis, Path.Combine(_layout.Plots, "update-heatmap.png"));

        var layers = new JsonArray();
        for (int l = 0; l < analysis.NumLayers; l++)
        {
            var act = analysis.Activations?.Layers[l];
            layers.Add((JsonNode)new JsonObject
            {
                ["layer"] = l,
                ["attention_change"] = analysis.Layers[l].Attention,
                ["ffn_change"] = analysis.Layers[l].Ffn,
                ["norms_change"] = analysis.Layers[l].Norms,
                ["modules"] = new JsonObject(analysis.Modules.Select((m, i) => KeyValuePair.Create(m, (JsonNode?)JsonValue.Create(analysis.RelativeChange[l][i])))),
                ["attention_output_cosine"] = act?.AttentionCosine,
                ["ffn_output_cosine"] = act?.FfnCosine,
                ["top_neuron_overlap"] = act?.TopKOverlap,
                ["ffn_contribution_v1"] = act?.FfnContributionOld,
                ["ffn_contribution_v2"] = act?.FfnContributionNew,
            });
        }
        var result = new JsonObject
        {
            ["heldout_loss"] = losses,
            ["attention_change"] = analysis.AttentionChange,
            ["ffn_change"] = analysis.FfnChange,
            ["ffn_over_attention"] = analysis.AttentionChange > 0 ? analysis.FfnChange / analysis.AttentionChange : null,
            ["embedding_change"] = analysis.EmbeddingChange,
            ["lm_head_change"] = analysis.LmHeadChange,
            ["final_norm_change"] = analysis.FinalNormChange,
            ["activation_tokens"] = analysis.Activations?.Tokens,
            ["top_k"] = analysis.Activations?.TopK,
            ["layers"] = layers,
        };
        _stages.Complete(id, clock.Seconds, clock.CpuSeconds, result);
        _progress.End(id, $"held-out A {F(losses["corpus_a"]!["v1"])} -> {F(losses["corpus_a"]!["v2"])}, B {F(losses["corpus_b"]!["v1"])} -> {F(losses["corpus_b"]!["v2"])}; " +
            $"relative weight change attention {analysis.AttentionChange:0.0000}, FFN {analysis.FfnChange:0.0000}, embeddings {analysis.EmbeddingChange:0.0000}");
    }

    // ------------------------------------------------------------------ adapters

    private void RunAdapters(TaskSpec task, int seed)
    {
        foreach (var (key, evalOn) in Adapters(task.Name, seed))
        {
            TrainAdapter(task, key);
            foreach (var b in evalOn) Evaluate(task, key, b);
        }
    }

    private void TrainAdapter(TaskSpec task, AdapterKey key)
    {
        string id = key.TrainStage;
        if (_stages.IsDone(id)) return;
        var a = _preset.Adapter;
        string baseDir = key.Base == AdapterKey.OldBase ? _layout.V1 : _layout.V2;
        string kind = key.Variant.IsPlain ? "plain LoRA" : $"Trans-PEFT LoRA ({key.Variant.Label})";
        _progress.Begin(id, $"adapter {task.Name}/{key.Id}: {kind} r={a.Rank} on {key.Base}, {a.Steps} steps x {a.BatchSize}");
        var clock = new StageClock();
        var dataPath = _layout.AdapterData(task.Name);
        if (_adapterDataWritten.Add(task.Name)) AdapterData.Write(task.Paths.TrainPath, Tokenizer, CompactGpt2Tokenizer.EosId, a.TargetEos, dataPath);
        var options = new TrainingOptions
        {
            Model = baseDir, Data = dataPath, DataFormat = DatasetFormat.Tokenized, Pack = false, SeqLen = a.SeqLen,
            CacheDir = _layout.TokenCache, Output = _layout.AdapterRun(key), Method = TrainingMethod.Lora,
            LoraR = a.Rank, LoraAlpha = a.Alpha, LoraDropout = a.Dropout, LoraTargets = a.Targets,
            LearningRate = a.LearningRate, Schedule = ScheduleKind.Cosine, WarmupRatio = a.WarmupRatio,
            Steps = a.Steps, BatchSize = a.BatchSize, GradAccum = 1, Seed = key.Seed, MaxGradNorm = 1.0,
            PMask = key.Variant.PMask, PDrop = key.Variant.PDrop,
            SaveEvery = Math.Max(1, a.Steps / 2), KeepCheckpoints = 1,
        };
        Train(options, $"{task.Name}/{key.Id}");
        var summary = TrainingSummary.Read(_layout.AdapterRun(key));
        summary["p_mask"] = key.Variant.PMask;
        summary["p_drop"] = key.Variant.PDrop;
        _stages.Complete(id, clock.Seconds, clock.CpuSeconds, summary);
        _progress.End(id, $"train loss {F(summary["first_loss"])} -> {F(summary["final_loss"])}, {F(summary["tokens_per_second"], "N0")} tok/s");
    }

    private void Evaluate(TaskSpec task, AdapterKey key, string onBase)
    {
        string id = key.EvalStage(onBase);
        if (_stages.IsDone(id)) return;
        _cancel.ThrowIfCancellationRequested();
        bool transfer = key.Base == AdapterKey.OldBase && onBase == AdapterKey.NewBase;
        _progress.Begin(id, $"eval {task.Name}/{key.Id} on {onBase}{(transfer ? " (transferred: the v1 adapter loaded onto v2)" : "")}");
        var clock = new StageClock();
        string adapterDir = _layout.Adapter(key);
        var result = new JsonObject();
        if (transfer)
        {
            var report = AdapterTransfer.Check(adapterDir, _layout.V2, _layout.V1);
            if (!report.IsCompatible) throw new InvalidOperationException(report.Describe());
            var dest = _layout.Transferred(key);
            if (Directory.Exists(dest)) Directory.Delete(dest, recursive: true);
            AdapterTransfer.Transfer(adapterDir, _layout.V2, dest, options: new TransferOptions { OldBaseDir = _layout.V1 });
            adapterDir = dest;
            result["transfer"] = new JsonObject
            {
                ["compatible"] = true, ["modules"] = report.AdapterModules, ["rank"] = report.Rank,
                ["warnings"] = report.Warnings.Count(), ["trans_peft"] = report.TransPeft is null ? null : $"p_mask {report.TransPeft.PMask}, p_drop {report.TransPeft.PDrop}",
            };
        }
        var model = onBase == AdapterKey.OldBase ? V1Model : V2Model;
        var metrics = EvaluateAdapter(task, model, adapterDir);
        result["metrics"] = metrics;
        _stages.Complete(id, clock.Seconds, clock.CpuSeconds, result);
        _progress.End(id, string.Join(", ", task.Metrics.Select(m => $"{m.Key} {F(metrics[m.Key], "0.0000")}")));
    }

    /// <summary>
    /// Every metric of the task for one adapter on one base (never perturbed: Trans-PEFT acts only in training).
    /// Classification: accuracy of the likelihood-ranked labels (<see cref="TaskSpec.DecisionLabels"/>) and the
    /// decision's cross-entropy −log(p(gold) / Σ p(candidate)), from the same pass. Generation: completion loss
    /// per group, and over all records combined from the groups' token-weighted sums (one forward per record).
    /// </summary>
    private JsonObject EvaluateAdapter(TaskSpec task, TransformerModel model, string adapterDir)
    {
        var adapter = LoraAdapter.Load(adapterDir, model.Config);
        var options = new EvalOptions { Labels = task.IsClassification ? task.DecisionLabels : null, LossBatchSize = 16, KeepPredictions = task.IsClassification };
        var evaluator = new TaskEvaluator(model, adapter, Tokenizer, options, task.Paths.TestPath);
        var o = new JsonObject();
        if (task.IsClassification)
        {
            var c = evaluator.Classify(task.Test);
            o[MetricSpec.Accuracy] = c.Accuracy;
            o["correct"] = c.Correct;
            o["count"] = c.Count;
            double loss = 0;
            foreach (var pr in c.Predictions!)
            {
                double max = pr.LogLikelihoods.Max();
                double lse = max + Math.Log(pr.LogLikelihoods.Sum(ll => Math.Exp(ll - max)));
                loss += lse - pr.LogLikelihoods[pr.Candidates.ToList().IndexOf(pr.Gold)];
            }
            o[MetricSpec.DecisionLoss] = loss / c.Count;
            o["scored_on"] = task.FirstTokenDecision ? "first label token" : "whole label";
        }
        else
        {
            double sum = 0;
            long tokens = 0;
            var byGroup = task.Test.Select((r, i) => (r, g: task.TestGroups[i])).GroupBy(x => x.g).ToList();
            foreach (var g in byGroup)
            {
                var loss = evaluator.CompletionLoss(g.Select(x => x.r).ToList());
                sum += loss.MeanLoss * loss.Tokens;
                tokens += loss.Tokens;
                if (g.Key is not null) o[MetricSpec.GroupLoss(g.Key).Key] = loss.MeanLoss;
            }
            o[MetricSpec.Loss] = sum / tokens;
            o["count"] = task.Test.Count;
            o["tokens"] = tokens;
        }
        return o;
    }

    // ------------------------------------------------------------------ results

    private ExperimentResults Finish()
    {
        _progress.Line("results: aggregating every stage's numbers");
        var results = ExperimentResults.Build(_preset, _tasks, _stages.All(), _progress.Elapsed);
        AtomicFile.WriteAllText(_layout.Results, results.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Directory.CreateDirectory(_layout.Plots);
        var plots = new List<string>();
        foreach (var t in results.Tasks)
        {
            var path = Path.Combine(_layout.Plots, $"bars-{t.Name}.png");
            MetricBarsPlot.Save(t, path);
            plots.Add(path);
        }
        void Curve(string run, string name, string title)
        {
            var metrics = new TrainingRunFolder(run).Metrics;
            if (!File.Exists(metrics)) return;
            var path = Path.Combine(_layout.Plots, name);
            LossCurvePlot.Save(metrics, path, title: title);
            plots.Add(path);
        }
        Curve(_layout.V1Run, "loss-v1.png", "base v1: pre-training on corpus A (validation: held-out A)");
        Curve(_layout.V2Run, "loss-v2.png", "base v2: update on corpus B + replay of A (validation: held-out B)");
        if (_tasks.Count > 0)
        {
            var k = new AdapterKey(_tasks[^1].Name, _preset.Variants[0], AdapterKey.OldBase, _preset.Seeds[0]);
            Curve(_layout.AdapterRun(k), "loss-adapter.png", $"adapter {k.Task}/{k.Id} (Trans-PEFT {k.Variant.Label}) on v1");
        }
        if (File.Exists(Path.Combine(_layout.Plots, "update-heatmap.png"))) plots.Add(Path.Combine(_layout.Plots, "update-heatmap.png"));
        AtomicFile.WriteAllText(_layout.Report, ReportWriter.Write(results, _layout, plots));
        _progress.Line($"results: {_layout.Results}, {_layout.Report}, {plots.Count} plots in {_layout.Plots}");
        return results;
    }

    private static string F(JsonNode? n, string format = "0.000") =>
        n is JsonValue v && v.TryGetValue(out double d) ? d.ToString(format, CultureInfo.InvariantCulture) : "n/a";
}
