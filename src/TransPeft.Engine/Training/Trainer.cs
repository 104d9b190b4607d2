using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Training;

/// <summary>
/// Runs training on any <see cref="ITrainableModel"/>. One optimizer step:
/// <list type="number">
/// <item>take the next BatchSize * GradAccum examples of the data order (a pure function of seed and
///   position) and build GradAccum micro-batches;</item>
/// <item>count the targets of all micro-batches first, then run each forward/backward with
///   lossScale = 1 / total, so the accumulated gradient is that of the mean loss over every counted
///   token of the step, however it is split into micro-batches;</item>
/// <item>clip to the global gradient norm, take the scheduled learning rate, update.</item>
/// </list>
/// Micro-batch j of step s gets the random stream (seed, s, j), and a Philox Trans-PEFT perturbation on it
/// when p_mask or p_drop is positive. Checkpoints are atomic, hold everything needed to continue, and
/// a resumed run's losses are bit-identical on the CPU to an uninterrupted one. Cancelling the token
/// stops after the current step and writes a checkpoint.
/// A model that runs its own optimizer (<see cref="IOptimizerHost"/>: the CUDA backend's on-device AdamW) is
/// updated by it: the gradients then stay on the device, and the weights come to the host only to be saved.
/// </summary>
internal sealed class Trainer
{
    public const string FinalWeightsDir = "final";
    public const string OptionsFileName = "training_options.json";
    public const string DefaultWeightsFile = "trainable.safetensors";

    private readonly ITrainableModel _model;
    private readonly TrainingData _data;
    private readonly TrainingOptions _options;
    private readonly string _outDir;
    private readonly Action<string> _saveWeights;
    private readonly IProgress<TrainingProgress>? _progress;
    private readonly CheckpointStore _store;
    private readonly bool _overwrite;
    private bool _ran;

    /// <param name="saveWeights">Writes the trainable weights into a folder (a PEFT adapter via LoraAdapter.Save,
    /// or a full model via TransformerModel.Save, in F32); resuming reads them back by tensor name. Null writes
    /// every trainable parameter by name into trainable.safetensors.</param>
    public Trainer(ITrainableModel model, TrainingData data, TrainingOptions options, string outDir,
        Action<string>? saveWeights = null, IProgress<TrainingProgress>? progress = null, bool overwrite = false)
    {
        options.Validate();
        _model = model; _data = data; _options = options; _outDir = outDir; _progress = progress; _overwrite = overwrite;
        _saveWeights = saveWeights ?? SaveTrainable;
        _store = new CheckpointStore(outDir);
        foreach (var p in model.TrainableParameters)
            if (!p.RequiresGrad) throw new ArgumentException($"trainable parameter '{p.Name}' has no gradient buffer", nameof(model));
        if (model.TrainableParameters.Count == 0) throw new ArgumentException("the model has no trainable parameter", nameof(model));
        // Buffers are sized by the data: a micro-batch larger than the training set would only repeat examples
        // within one step while its activations grow with the flag.
        if (options.BatchSize > data.Train.Count)
            throw new TrainingConfigException("training options", "batch_size", $"at most the {data.Train.Count} training examples", options.BatchSize.ToString());
        TotalSteps = options.ResolveTotalSteps(data.Train.Count);
        Schedule = new LearningRateSchedule(options.Schedule, options.LearningRate, options.ResolveWarmupSteps(TotalSteps), TotalSteps);
        Optimizer = (model as IOptimizerHost)?.CreateOptimizer(options) ?? Optimizer.Create(options, model.TrainableParameters);
        Order = new DataOrder(data.Train.Count, (ulong)options.Seed, options.Shuffle);
    }

    public int TotalSteps { get; }
    public LearningRateSchedule Schedule { get; }
    internal Optimizer Optimizer { get; }
    internal DataOrder Order { get; }

    /// <summary>What a fresh run may replace in a non-empty output folder when <c>overwrite</c> is given: its own files only.</summary>
    private static readonly string[] RunOutputs = [FinalWeightsDir, "checkpoints", MetricsLog.FileName, OptionsFileName];

    /// <param name="resumeFrom">A checkpoint folder, or an output folder (its latest checkpoint); null starts fresh.</param>
    public TrainingResult Run(string? resumeFrom = null, CancellationToken cancel = default)
    {
        // The optimizer and model carry state: a second Run on the same instance would not start where it claims to.
        if (_ran) throw new InvalidOperationException("a Trainer runs once; create a new one (with resumeFrom) to continue");
        _ran = true;
        // The lock comes first and every check of the folder after it: two runs cannot both find it free.
        using var runLock = RunLock.Acquire(_outDir);
        if (runLock.TookOverFromPid is { } dead)
            _progress?.Report(new TrainingProgress(TrainingEvent.StaleLockTakenOver, 0, TotalSteps, TimeSpan.Zero, Path: _outDir,
                Message: $"{_outDir}: took over the lock left by pid {dead}, which no longer runs"));
        if (resumeFrom is null && !OutputFolder.IsEmpty(_outDir, RunLock.FileName, RunLock.OwnerFileName))
        {
            if (!_overwrite)
                throw new OutputFolderException(_outDir, $"{_outDir}: the output folder is not empty ({OutputFolder.Describe(_outDir, RunLock.FileName, RunLock.OwnerFileName)}); "
                    + (_store.Latest() is { } existing ? $"resume the run it holds (latest checkpoint {existing}), " : "")
                    + "train into a new folder, or pass --overwrite to replace its run");
            // Only what a run writes is replaced: checkpoints of the old run must not be taken for this one's.
            foreach (var name in RunOutputs)
            {
                var path = Path.Combine(_outDir, name);
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else if (File.Exists(path)) File.Delete(path);
            }
        }
        _store.CleanPartials();
        AtomicDirectory.CleanPartials(_outDir);

        int step = 0;
        long examplesSeen = 0, tokensSeen = 0;
        double elapsedBefore = 0;
        double? lastLoss = null, lastValLoss = null;
        string? lastCheckpoint = null;
        int evaluatedStep = -1;
        if (resumeFrom is not null)
        {
            var dir = CheckpointStore.Resolve(resumeFrom);
            var state = Restore(dir);
            (step, examplesSeen, tokensSeen, elapsedBefore, lastLoss, lastValLoss, lastCheckpoint) =
                (state.Step, state.ExamplesSeen, state.TokensSeen, state.ElapsedSeconds, state.LastLoss, state.LastValLoss, dir);
            evaluatedStep = state.LastEvalStep ?? -1;
            if (step > TotalSteps)
                throw new TrainingConfigException(Path.Combine(dir, TrainerState.FileName), "steps",
                    $"at least {step}, the step of the checkpoint being resumed (the run cannot go back)", TotalSteps.ToString());
        }

        AtomicFile.WriteAllText(Path.Combine(_outDir, OptionsFileName),
            TrainingOptionsJson.ToJson(_options).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        using var metrics = MetricsLog.Open(_outDir, resumeFrom is null ? null : step);

        var clock = Stopwatch.StartNew();
        double Elapsed() => elapsedBefore + clock.Elapsed.TotalSeconds;
        int startStep = step, savedStep = resumeFrom is null ? -1 : step;
        var losses = new List<double>();
        _progress?.Report(new TrainingProgress(TrainingEvent.Started, step, TotalSteps, TimeSpan.FromSeconds(Elapsed())));

        TrainerState State() => new(step, TotalSteps, examplesSeen, tokensSeen, Elapsed(),
            _data.Train.Fingerprint, _data.Validation?.Fingerprint, lastLoss, lastValLoss, evaluatedStep < 0 ? null : evaluatedStep, _options);

        void Save()
        {
            var st = State();
            lastCheckpoint = _store.Save(step, dir =>
            {
                var weights = Path.Combine(dir, CheckpointStore.WeightsDir);
                Directory.CreateDirectory(weights);
                Optimizer.WeightsToHost();
                _saveWeights(weights);
                Optimizer.SaveState(Path.Combine(dir, CheckpointStore.OptimizerFile));
                st.Save(dir); // last: its presence marks a complete checkpoint
            });
            savedStep = step;
            _store.Prune(_options.KeepCheckpoints);
            _progress?.Report(new TrainingProgress(TrainingEvent.Checkpoint, step, TotalSteps, TimeSpan.FromSeconds(Elapsed()), Path: lastCheckpoint));
        }

        void Evaluate()
        {
            var (loss, counted) = ValidationLoss();
            lastValLoss = loss;
            evaluatedStep = step;
            metrics.Write(new JsonObject { ["step"] = step, ["val_loss"] = loss, ["val_targets"] = counted, ["elapsed"] = Elapsed() });
            _progress?.Report(new TrainingProgress(TrainingEvent.Evaluation, step, TotalSteps, TimeSpan.FromSeconds(Elapsed()), ValLoss: loss));
        }

        bool interrupted = false;
        while (step < TotalSteps)
        {
            if (cancel.IsCancellationRequested) { interrupted = true; break; }
            int s = step + 1;
            double t0 = clock.Elapsed.TotalSeconds;
            var batches = MicroBatches(s, out long tokens);
            var (loss, counted) = AccumulateGradients(batches, s);
            if (!double.IsFinite(loss)) throw new TrainingDivergedException(s, "the loss", lastCheckpoint);
            double lr = Schedule.At(s);
            double gradNorm = Optimizer.ClipAndUpdate(lr, _options.MaxGradNorm); // updates nothing when the norm is not finite
            if (!double.IsFinite(gradNorm)) throw new TrainingDivergedException(s, "the gradient norm", lastCheckpoint);

            step = s;
            examplesSeen += _options.GlobalBatch;
            tokensSeen += tokens;
            lastLoss = loss;
            losses.Add(loss);
            double dt = clock.Elapsed.TotalSeconds - t0;
            double tokPerS = dt > 0 ? tokens / dt : 0;
            metrics.Write(new JsonObject
            {
                ["step"] = step, ["loss"] = loss, ["lr"] = lr, ["grad_norm"] = gradNorm, ["tokens"] = tokens,
                ["targets"] = counted, ["tokens_per_s"] = tokPerS, ["elapsed"] = Elapsed(),
                ["epoch"] = (double)examplesSeen / _data.Train.Count,
            });
            double perStep = clock.Elapsed.TotalSeconds / (step - startStep);
            _progress?.Report(new TrainingProgress(TrainingEvent.Step, step, TotalSteps, TimeSpan.FromSeconds(Elapsed()),
                loss, lr, gradNorm, tokPerS, TimeSpan.FromSeconds(perStep * (TotalSteps - step))));

            if (_data.Validation is not null && _options.EvalEvery > 0 && step % _options.EvalEvery == 0) Evaluate();
            if (_options.SaveEvery > 0 && step % _options.SaveEvery == 0) Save();
        }

        string? finalWeights = null;
        if (interrupted)
        {
            if (savedStep != step) Save();
            _progress?.Report(new TrainingProgress(TrainingEvent.Interrupted, step, TotalSteps, TimeSpan.FromSeconds(Elapsed()), lastLoss, Path: lastCheckpoint));
        }
        else
        {
            if (_data.Validation is not null && evaluatedStep != step) Evaluate();
            if (savedStep != step) Save();
            finalWeights = Path.Combine(_outDir, FinalWeightsDir);
            Optimizer.WeightsToHost();
            AtomicDirectory.Write(finalWeights, _saveWeights);
            _progress?.Report(new TrainingProgress(TrainingEvent.Finished, step, TotalSteps, TimeSpan.FromSeconds(Elapsed()), lastLoss, ValLoss: lastValLoss, Path: finalWeights));
        }
        return new TrainingResult(step, TotalSteps, !interrupted, interrupted, lastLoss, lastValLoss, lastCheckpoint, finalWeights, losses);
    }

    /// <summary>The micro-batches of optimizer step <paramref name="step"/> (1-based).</summary>
    internal TokenBatch[] MicroBatches(int step) => MicroBatches(step, out _);

    /// <summary>The micro-batches of a step, and their number of real (non-pad) tokens.</summary>
    internal TokenBatch[] MicroBatches(int step, out long tokens)
    {
        tokens = 0;
        int b = _options.BatchSize;
        long start = (long)(step - 1) * _options.GlobalBatch;
        var result = new TokenBatch[_options.GradAccum];
        var idx = new int[b];
        for (int j = 0; j < result.Length; j++)
        {
            for (int r = 0; r < b; r++) { idx[r] = Order[start + (long)j * b + r]; tokens += _data.Train.LengthOf(idx[r]); }
            result[j] = BatchBuilder.Build(_data.Train, idx, _options.SeqLen, _options.PadToSeqLen);
        }
        return result;
    }

    /// <summary>The context of micro-batch <paramref name="microBatch"/> of step <paramref name="step"/>.</summary>
    internal StepContext Context(int step, int microBatch)
    {
        var stream = new RandomStream((ulong)_options.Seed, (uint)step, (uint)microBatch);
        FfnPerturbation? perturbation = _options.PMask > 0 || _options.PDrop > 0
            ? new PhiloxFfnPerturbation(stream, _options.PMask, _options.PDrop) : null;
        return new StepContext(stream, perturbation, true);
    }

    /// <summary>
    /// Zeroes the gradients and accumulates those of the mean loss over all counted targets of
    /// <paramref name="batches"/>. Returns that mean loss and the number of targets.
    /// </summary>
    internal (double Loss, int Counted) AccumulateGradients(IReadOnlyList<TokenBatch> batches, int step)
    {
        _model.ZeroGrad();
        int total = 0;
        var counts = new int[batches.Count];
        for (int j = 0; j < batches.Count; j++) total += counts[j] = batches[j].CountedTargets();
        if (total == 0) throw new InvalidOperationException($"step {step}: the batch holds no counted target");
        float scale = 1f / total;
        double lossSum = 0;
        for (int j = 0; j < batches.Count; j++)
        {
            var (ls, c) = _model.ForwardBackward(batches[j], scale, Context(step, j));
            if (c != counts[j]) throw new InvalidOperationException($"step {step}, micro-batch {j}: the model counted {c} targets, the batch holds {counts[j]}");
            lossSum += ls;
        }
        return (lossSum / total, total);
    }

    /// <summary>Mean loss over the validation set (or its first eval_batches micro-batches), no perturbation.</summary>
    internal (double Loss, int Counted) ValidationLoss()
    {
        var val = _data.Validation ?? throw new InvalidOperationException("no validation set");
        int b = _options.BatchSize;
        int batches = (val.Count + b - 1) / b;
        if (_options.EvalBatches > 0) batches = Math.Min(batches, _options.EvalBatches);
        double sum = 0;
        int counted = 0;
        for (int k = 0; k < batches; k++)
        {
            int n = Math.Min(b, val.Count - k * b);
            var idx = Enumerable.Range(k * b, n).ToArray();
            var (ls, c) = _model.Loss(BatchBuilder.Build(val, idx, _options.SeqLen, _options.PadToSeqLen));
            sum += ls; counted += c;
        }
        return (counted > 0 ? sum / counted : double.NaN, counted);
    }

    private TrainerState Restore(string dir)
    {
        var state = TrainerState.Load(dir);
        var statePath = Path.Combine(dir, TrainerState.FileName);
        foreach (var (field, then, now) in TrainingOptionsJson.TrajectoryDifferences(state.Options, _options))
            throw new TrainingConfigException(statePath, field, $"{then} as in the checkpoint (this option shapes the trajectory and cannot change on resume)", now);
        if (state.TrainFingerprint != _data.Train.Fingerprint)
            throw new InvalidOperationException($"{statePath}: the training data differs from the checkpoint's (file contents, tokenizer, seq_len, format or split changed)");
        if (state.ValidationFingerprint != _data.Validation?.Fingerprint)
            throw new InvalidOperationException($"{statePath}: the validation data differs from the checkpoint's");
        if (state.ExamplesSeen != (long)state.Step * _options.GlobalBatch)
            throw new TrainingConfigException(statePath, "examples_seen", $"{(long)state.Step * _options.GlobalBatch} (step x global batch)", state.ExamplesSeen.ToString());

        RestoreWeights(Path.Combine(dir, CheckpointStore.WeightsDir));
        Optimizer.WeightsFromHost();
        Optimizer.LoadState(Path.Combine(dir, CheckpointStore.OptimizerFile));
        if (Optimizer.Step != state.Step)
            throw new SafetensorsFormatException(Path.Combine(dir, CheckpointStore.OptimizerFile), null, $"optimizer step {Optimizer.Step} differs from the checkpoint's step {state.Step}");
        return state;
    }

    /// <summary>Reads every trainable parameter back, by name, from the safetensors files of a weights folder.</summary>
    private void RestoreWeights(string weightsDir)
    {
        if (!Directory.Exists(weightsDir)) throw new DirectoryNotFoundException($"{weightsDir}: checkpoint weights folder missing");
        var readers = Directory.GetFiles(weightsDir, "*.safetensors").Order(StringComparer.Ordinal).Select(SafetensorsReader.Open).ToList();
        try
        {
            foreach (var p in _model.TrainableParameters)
            {
                var r = readers.FirstOrDefault(x => x.Contains(p.Name))
                    ?? throw new SafetensorsFormatException(weightsDir, p.Name, "trainable parameter missing from the checkpoint's weights");
                var info = r.GetInfo(p.Name);
                if (!info.Shape.SequenceEqual(p.LongShape))
                    throw new SafetensorsFormatException(r.Path, p.Name, $"shape [{string.Join(", ", info.Shape)}] differs from the model's [{string.Join(", ", p.Shape)}]");
                if (info.DType != SafetensorsDType.F32)
                    throw new SafetensorsFormatException(r.Path, p.Name, $"stored as {info.DType}; resuming needs the exact F32 weights");
                r.ReadFloat32(p.Name).CopyTo(p.Data, 0);
            }
        }
        finally { foreach (var r in readers) r.Dispose(); }
    }

    private void SaveTrainable(string dir)
    {
        Directory.CreateDirectory(dir);
        var w = new SafetensorsWriter().AddMetadata("format", "pt");
        foreach (var p in _model.TrainableParameters) w.AddFloat(p.Name, p.Data, p.LongShape);
        w.Save(Path.Combine(dir, DefaultWeightsFile));
    }
}
