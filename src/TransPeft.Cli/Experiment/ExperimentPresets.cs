using TransPeft.Engine.Model;

namespace TransPeft.Cli.Experiment;

/// <summary>
/// The named runs of `tpeft experiment --preset NAME`. <c>cpu</c> (the default, `./build.sh demo`) is sized to
/// finish in under 25 minutes on 2 CPU cores; the others are larger (a sweep of the Trans-PEFT probabilities,
/// more seeds, all the data, a bigger model) for a machine with more time or cores. docs/EXPERIMENT.md explains
/// each choice.
/// </summary>
internal static class ExperimentPresets
{
    public const string Default = "cpu";

    /// <summary>2.9M parameters: 4 layers of width 128, SwiGLU 384, and an untied 8,192-id embedding and head.</summary>
    private static readonly ModelConfig CpuModel = new()
    {
        ModelType = "llama", HiddenSize = 128, IntermediateSize = 384, NumLayers = 4, NumHeads = 4, NumKvHeads = 2, HeadDim = 32,
        VocabSize = 8192, MaxPositionEmbeddings = 256, RopeTheta = 10000, EosTokenIds = [0], BosTokenId = null,
    };

    private static readonly BaseTrainingPlan CpuV1 = new()
    {
        Steps = 600, BatchSize = 16, SeqLen = 128, LearningRate = 2e-3, WarmupRatio = 0.05, Evaluations = 6, EvalSequences = 48, Checkpoints = 6,
    };

    // The update: a tenth of v1's steps at a fifth of its peak learning rate, half of every batch replayed from corpus A.
    private static readonly BaseTrainingPlan CpuV2 = new()
    {
        Steps = 120, BatchSize = 16, SeqLen = 128, LearningRate = 4e-4, WarmupRatio = 0.1, ReplayFraction = 0.5, Evaluations = 3, EvalSequences = 48, Checkpoints = 3,
    };

    private static readonly AdapterTrainingPlan CpuAdapter = new() { Steps = 120, BatchSize = 8, LearningRate = 2e-3 };

    /// <summary>The released recipe (p_drop 0.1, p_mask 0) first, then the sweep around it.</summary>
    private static readonly AdapterVariant[] Sweep =
    [
        new(0, 0.1), new(0, 0.05), new(0, 0.2), new(0.1, 0), new(0.2, 0), new(0.3, 0),
    ];

    public static readonly IReadOnlyDictionary<string, ExperimentPreset> All = new Dictionary<string, ExperimentPreset>(StringComparer.OrdinalIgnoreCase)
    {
        ["cpu"] = new()
        {
            Name = "cpu",
            Description = "default: 2.9M-parameter base, CPU data, 3 tasks x 3 seeds, Trans-PEFT p_drop 0.1 (released recipe) and p_mask 0.2; < 25 min on 2 cores",
            DataPreset = "cpu", Model = CpuModel, V1 = CpuV1, V2 = CpuV2, Adapter = CpuAdapter,
            Variants = [new(0, 0.1), new(0.2, 0)],
            Seeds = [1, 2, 3],
        },
        ["cpu-sweep"] = new()
        {
            Name = "cpu-sweep",
            Description = "the cpu bases with 5 seeds and the sweep p_drop 0.05/0.1/0.2, p_mask 0.1/0.2/0.3 on every task (about 1.5 h on 2 cores)",
            DataPreset = "cpu", Model = CpuModel, V1 = CpuV1, V2 = CpuV2, Adapter = CpuAdapter with { Steps = 200 },
            Variants = Sweep,
            Seeds = [1, 2, 3, 4, 5],
        },
        ["large"] = new()
        {
            Name = "large",
            Description = "all the data, the 8.5M-parameter 'tiny' model, 10 seeds, 600 adapter steps and the full sweep (hours on a CPU; for a big machine)",
            DataPreset = "full",
            Model = ModelPresets.Get("tiny") with { MaxPositionEmbeddings = 256 },
            V1 = new() { Steps = 4000, BatchSize = 32, SeqLen = 128, LearningRate = 1e-3, WarmupRatio = 0.03, Evaluations = 10, EvalSequences = 128, Checkpoints = 20 },
            V2 = new() { Steps = 400, BatchSize = 32, SeqLen = 128, LearningRate = 2e-4, WarmupRatio = 0.1, ReplayFraction = 0.5, Evaluations = 4, EvalSequences = 128, Checkpoints = 4 },
            Adapter = new() { Steps = 600, BatchSize = 16, LearningRate = 1e-3 },
            Variants = Sweep,
            Seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            HeldOutSequences = 128,
        },
        ["smoke"] = new()
        {
            Name = "smoke",
            Description = "a check of the whole pipeline on the real data in a few minutes (micro model, few steps; the numbers mean nothing)",
            DataPreset = "cpu",
            Model = CpuModel with { HiddenSize = 64, IntermediateSize = 176, NumLayers = 2, HeadDim = 16 },
            V1 = CpuV1 with { Steps = 40, Evaluations = 2, EvalSequences = 8, Checkpoints = 2 },
            V2 = CpuV2 with { Steps = 10, Evaluations = 1, EvalSequences = 8, Checkpoints = 1 },
            Adapter = CpuAdapter with { Steps = 10 },
            Variants = [new(0, 0.1)],
            Seeds = [1, 2],
            TestLimit = 40,
            HeldOutSequences = 8,
        },
    };

    public static ExperimentPreset Get(string name) =>
        All.TryGetValue(name, out var p) ? p
            : throw new ArgumentException($"--preset: unknown experiment preset '{name}' (known: {string.Join(", ", All.Keys)})");
}
