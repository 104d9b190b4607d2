using System.Globalization;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Training;

/// <summary>
/// Every knob of a training run. Loaded from a JSON config (snake_case names, see
/// <see cref="TrainingOptionsJson"/>) with command-line flags overriding; <see cref="Validate"/> names the
/// field and the accepted values of anything out of range. <see cref="BatchSize"/> is the micro-batch
/// (one forward/backward); the optimizer sees BatchSize * GradAccum examples per step.
/// </summary>
public sealed record TrainingOptions
{
    // Where things are (the trainer itself receives datasets and an output folder; these let a config file say it all).
    public string? Model { get; init; }
    public string? Tokenizer { get; init; }
    public string? Data { get; init; }
    public string? ValData { get; init; }
    /// <summary>Fraction of the training file held out for validation when no val_data is given (0 = none).</summary>
    public double ValFraction { get; init; }
    public DatasetFormat DataFormat { get; init; } = DatasetFormat.Auto;
    public string? CacheDir { get; init; }
    public string? Output { get; init; }

    // What is trained.
    public TrainingMethod Method { get; init; } = TrainingMethod.Lora;
    public int LoraR { get; init; } = 8;
    public double LoraAlpha { get; init; } = 16;
    public double LoraDropout { get; init; }
    public IReadOnlyList<string> LoraTargets { get; init; } = ["q_proj", "v_proj"];
    public string? LoraTargetRegex { get; init; }
    public bool UseRsLora { get; init; }
    public LoraInit LoraInit { get; init; } = LoraInit.KaimingUniform;
    /// <summary>A PEFT adapter folder to start from instead of a fresh adapter.</summary>
    public string? AdapterInit { get; init; }

    // Optimizer and schedule.
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;
    public double LearningRate { get; init; } = 2e-4;
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>SGD momentum (0 = plain SGD).</summary>
    public double Momentum { get; init; }
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;
    public int? WarmupSteps { get; init; }
    public double? WarmupRatio { get; init; }

    // How long, how big.
    public int? Steps { get; init; }
    /// <summary>Used when <see cref="Steps"/> is not set; 1 when neither is.</summary>
    public double? Epochs { get; init; }
    public int BatchSize { get; init; } = 4;
    public int GradAccum { get; init; } = 1;
    /// <summary>Global-norm gradient clipping threshold; 0 = no clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    public int SeqLen { get; init; } = 512;
    /// <summary>Pad every micro-batch to <see cref="SeqLen"/> instead of to its longest example.</summary>
    public bool PadToSeqLen { get; init; }
    /// <summary>Pack examples into full sequences; null = yes for text formats, no for instruction formats.</summary>
    public bool? Pack { get; init; }
    public bool Shuffle { get; init; } = true;
    /// <summary>Activation recomputation: keep only each layer's input for the backward and run the layer's forward
    /// again there, trading one more forward for one layer's activations instead of all of them. The gradients are
    /// identical to the stored path's, so it does not shape the trajectory and may change on resume.</summary>
    public bool Recompute { get; init; }
    /// <summary>CUDA backend: capture each step as a CUDA graph per shape and layer-drop pattern and replay it for later
    /// steps (per-step values come from device memory, so results are identical); ignored on the CPU. It does not shape
    /// the trajectory.</summary>
    public bool CudaGraphs { get; init; }
    public int Seed { get; init; } = 42;

    // Reporting and checkpoints (0 = only at the end; keep_checkpoints 0 = keep all).
    public int EvalEvery { get; init; }
    /// <summary>Validation micro-batches per evaluation (0 = the whole validation set).</summary>
    public int EvalBatches { get; init; }
    public int SaveEvery { get; init; }
    public int KeepCheckpoints { get; init; } = 3;

    // Trans-PEFT (training-time FFN perturbation; 0 = off).
    public double PMask { get; init; }
    public double PDrop { get; init; }

    public int GlobalBatch => BatchSize * GradAccum;

    public LoraConfig ToLoraConfig() => new()
    {
        R = LoraR, Alpha = LoraAlpha, Dropout = LoraDropout, UseRsLora = UseRsLora,
        TargetModules = LoraTargets, TargetRegex = LoraTargetRegex, Init = LoraInit,
    };

    /// <summary>Optimizer steps of the run: <see cref="Steps"/>, or ceil(epochs * examples / global batch).</summary>
    public int ResolveTotalSteps(int trainExamples)
    {
        if (Steps is { } s) return s;
        double epochs = Epochs ?? 1.0;
        double steps = Math.Ceiling(epochs * trainExamples / GlobalBatch - 1e-9);
        // A double past int.MaxValue would cast to garbage (int.MinValue), and Max(1, ...) would hide it as 1 step.
        if (!(steps <= int.MaxValue))
            throw new TrainingConfigException("training options", "epochs", $"at most {(double)int.MaxValue * GlobalBatch / trainExamples:G4} epochs of {trainExamples} examples (the step count must fit 32 bits)", epochs.ToString("R", CultureInfo.InvariantCulture));
        return Math.Max(1, (int)steps);
    }

    /// <summary>Warmup steps: <see cref="WarmupSteps"/>, or ceil(ratio * total) as Hugging Face does, never beyond total.</summary>
    public int ResolveWarmupSteps(int totalSteps) =>
        Math.Min(totalSteps, WarmupSteps ?? (int)Math.Ceiling((WarmupRatio ?? 0) * totalSteps - 1e-9));

    // Upper bounds on sizes from flags. They are far beyond what trains on one machine, and low enough that every
    // product of them (batch x seq_len x hidden, steps x global batch) is checked in 64-bit arithmetic and
    // refused with a name before it can overflow or ask for memory that is not there.
    public const int MaxLoraRank = 65_536;
    public const int MaxSeqLen = 1 << 20;
    public const int MaxBatch = 1 << 16;
    public const double MaxEpochs = 1e6;

    /// <summary>Checks every field; the exception names the first bad one and what it accepts.</summary>
    public void Validate(string source = "training options")
    {
        void Fail(string field, string expected, object? got) =>
            throw new TrainingConfigException(source, field, expected, got switch
            {
                null => "null",
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                string s => $"\"{s}\"",
                _ => Convert.ToString(got, CultureInfo.InvariantCulture),
            });
        static bool Finite(double x) => double.IsFinite(x);

        if (!(ValFraction >= 0 && ValFraction < 1)) Fail("val_fraction", "a number in [0, 1)", ValFraction);
        if (ValFraction > 0 && ValData is not null) Fail("val_fraction", "0 when val_data is given (use one or the other)", ValFraction);

        if (Method == TrainingMethod.Lora)
        {
            if (LoraR is <= 0 or > MaxLoraRank) Fail("lora_r", $"a positive integer up to {MaxLoraRank}", LoraR);
            if (!(LoraAlpha > 0 && Finite(LoraAlpha))) Fail("lora_alpha", "a positive number", LoraAlpha);
            if (!(LoraDropout >= 0 && LoraDropout < 1)) Fail("lora_dropout", "a number in [0, 1)", LoraDropout);
            if (LoraTargetRegex is null && LoraTargets.Count == 0) Fail("lora_targets", "at least one module name (e.g. q_proj), or all-linear", "[]");
            foreach (var t in LoraTargets)
                if (t != "all-linear" && !ProjectionNames.TryParseShort(t[(t.LastIndexOf('.') + 1)..], out _))
                    Fail("lora_targets", "module names ending in q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj, or all-linear", t);
            if (LoraTargetRegex is not null)
            {
                try { _ = new System.Text.RegularExpressions.Regex(LoraTargetRegex); }
                catch (ArgumentException e) { Fail("lora_target_regex", $"a valid regular expression ({e.Message})", LoraTargetRegex); }
            }
        }
        else if (AdapterInit is not null) Fail("adapter_init", "null for method = full (an adapter only starts LoRA training)", AdapterInit);

        if (!(LearningRate > 0 && Finite(LearningRate))) Fail("lr", "a positive number", LearningRate);
        if (!(WeightDecay >= 0 && Finite(WeightDecay))) Fail("weight_decay", "a number >= 0", WeightDecay);
        if (!(Beta1 >= 0 && Beta1 < 1)) Fail("beta1", "a number in [0, 1)", Beta1);
        if (!(Beta2 >= 0 && Beta2 < 1)) Fail("beta2", "a number in [0, 1)", Beta2);
        if (!(Epsilon > 0 && Finite(Epsilon))) Fail("eps", "a positive number", Epsilon);
        if (!(Momentum >= 0 && Momentum < 1)) Fail("momentum", "a number in [0, 1)", Momentum);
        if (Momentum > 0 && Optimizer != OptimizerKind.Sgd) Fail("momentum", "0 unless optimizer = sgd (AdamW uses beta1)", Momentum);

        if (WarmupSteps is not null && WarmupRatio is not null) Fail("warmup_steps", "null when warmup_ratio is set (use one or the other)", WarmupSteps);
        if (WarmupSteps is < 0) Fail("warmup_steps", "an integer >= 0", WarmupSteps);
        if (WarmupRatio is { } wr && !(wr >= 0 && wr < 1)) Fail("warmup_ratio", "a number in [0, 1)", wr);

        if (Steps is not null && Epochs is not null) Fail("steps", "null when epochs is set (use one or the other)", Steps);
        if (Steps is <= 0) Fail("steps", "a positive integer", Steps);
        if (Epochs is { } ep && !(ep > 0 && ep <= MaxEpochs)) Fail("epochs", $"a positive number up to {MaxEpochs:G}", ep);
        if (WarmupSteps is { } w && Steps is { } st && w > st) Fail("warmup_steps", $"at most steps = {st}", w);

        if (BatchSize is <= 0 or > MaxBatch) Fail("batch_size", $"a positive integer (examples per micro-batch), at most {MaxBatch}", BatchSize);
        if (GradAccum is <= 0 or > MaxBatch) Fail("grad_accum", $"a positive integer (micro-batches per optimizer step), at most {MaxBatch}", GradAccum);
        if (!(MaxGradNorm >= 0 && Finite(MaxGradNorm))) Fail("max_grad_norm", "a number >= 0 (0 = no clipping)", MaxGradNorm);
        if (SeqLen is < 2 or > MaxSeqLen) Fail("seq_len", $"an integer >= 2 and at most {MaxSeqLen}", SeqLen);
        if (Seed < 0) Fail("seed", "an integer >= 0", Seed);

        if (EvalEvery < 0) Fail("eval_every", "an integer >= 0 (0 = only at the end)", EvalEvery);
        if (EvalBatches < 0) Fail("eval_batches", "an integer >= 0 (0 = all)", EvalBatches);
        if (SaveEvery < 0) Fail("save_every", "an integer >= 0 (0 = only at the end)", SaveEvery);
        if (KeepCheckpoints < 0) Fail("keep_checkpoints", "an integer >= 0 (0 = keep all)", KeepCheckpoints);

        if (!(PMask >= 0 && PMask < 1)) Fail("p_mask", "a probability in [0, 1)", PMask);
        if (!(PDrop >= 0 && PDrop < 1)) Fail("p_drop", "a probability in [0, 1)", PDrop);
    }
}
