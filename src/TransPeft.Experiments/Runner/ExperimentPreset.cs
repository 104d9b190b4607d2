using System.Text.Json.Nodes;
using TransPeft.Engine.Model;

namespace TransPeft.Experiments;

/// <summary>
/// Everything that decides one run of the evolving-base experiment: the data, the base model's shape, how v1
/// is pre-trained and updated into v2, how adapters are trained, which Trans-PEFT variants are compared, on
/// which tasks and seeds. <see cref="ToJson"/> is written into the output folder; a rerun with different
/// settings refuses to mix its results with the old ones.
/// </summary>
public sealed record ExperimentPreset
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    /// <summary>ExperimentDataOptions preset (cpu or full); ignored by injected data sources.</summary>
    public required string DataPreset { get; init; }
    /// <summary>Overrides of the data preset (null = its value): prompt lengths decide most of the adapters' cost.</summary>
    public int? SpamBodyTokens { get; init; }
    public int? SotuChunkTokens { get; init; }
    public int? TokenizerVocabSize { get; init; }
    /// <summary>The base architecture; vocab_size is replaced by the tokenizer's.</summary>
    public required ModelConfig Model { get; init; }
    public int ModelSeed { get; init; } = 1;
    public required BaseTrainingPlan V1 { get; init; }
    public required BaseTrainingPlan V2 { get; init; }
    public required AdapterTrainingPlan Adapter { get; init; }
    /// <summary>Trans-PEFT variants trained on the old base; the first is the headline (the released recipe).</summary>
    public required IReadOnlyList<AdapterVariant> Variants { get; init; }
    /// <summary>Task names (folders of the data's tasks/); all of them when empty.</summary>
    public IReadOnlyList<string> Tasks { get; init; } = [];
    /// <summary>One adapter of every kind per task and seed; rows are paired by seed.</summary>
    public required IReadOnlyList<int> Seeds { get; init; }
    /// <summary>Test records evaluated per task (0 = all).</summary>
    public int TestLimit { get; init; }
    /// <summary>Held-out sequences (of V1.SeqLen tokens) per corpus for the base losses and the activation analysis.</summary>
    public int HeldOutSequences { get; init; } = 48;

    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["description"] = Description,
        ["data_preset"] = DataPreset,
        ["spam_body_tokens"] = SpamBodyTokens,
        ["sotu_chunk_tokens"] = SotuChunkTokens,
        ["tokenizer_vocab_size"] = TokenizerVocabSize,
        ["model"] = Model.ToJson(),
        ["model_seed"] = ModelSeed,
        ["v1"] = PlanJson(V1),
        ["v2"] = PlanJson(V2),
        ["adapter"] = new JsonObject
        {
            ["steps"] = Adapter.Steps, ["batch_size"] = Adapter.BatchSize, ["lr"] = Adapter.LearningRate,
            ["r"] = Adapter.Rank, ["alpha"] = Adapter.Alpha, ["dropout"] = Adapter.Dropout,
            ["targets"] = new JsonArray(Adapter.Targets.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
            ["warmup_ratio"] = Adapter.WarmupRatio, ["seq_len"] = Adapter.SeqLen, ["target_eos"] = Adapter.TargetEos,
        },
        ["variants"] = new JsonArray(Variants.Select(v => (JsonNode?)new JsonObject { ["id"] = v.Id, ["p_mask"] = v.PMask, ["p_drop"] = v.PDrop }).ToArray()),
        ["tasks"] = new JsonArray(Tasks.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
        ["seeds"] = new JsonArray(Seeds.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
        ["test_limit"] = TestLimit,
        ["held_out_sequences"] = HeldOutSequences,
    };

    private static JsonObject PlanJson(BaseTrainingPlan p) => new()
    {
        ["steps"] = p.Steps, ["batch_size"] = p.BatchSize, ["seq_len"] = p.SeqLen, ["lr"] = p.LearningRate,
        ["warmup_ratio"] = p.WarmupRatio, ["weight_decay"] = p.WeightDecay, ["replay_fraction"] = p.ReplayFraction,
        ["evaluations"] = p.Evaluations, ["eval_sequences"] = p.EvalSequences, ["checkpoints"] = p.Checkpoints,
    };

    /// <summary>Checks the settings; the message names the field and what it accepts.</summary>
    public void Validate()
    {
        void Fail(string field, string expected) => throw new ArgumentException($"preset '{Name}': {field}: expected {expected}");
        if (Seeds.Count < 2) Fail("seeds", "at least 2 seeds (rows are compared by paired differences over seeds)");
        if (Seeds.Distinct().Count() != Seeds.Count) Fail("seeds", "distinct seeds");
        if (Variants.Count == 0) Fail("variants", "at least one Trans-PEFT variant");
        if (Variants.Any(v => v.IsPlain)) Fail("variants", "Trans-PEFT variants only (p_mask or p_drop > 0); plain LoRA is always trained");
        if (Variants.Select(v => v.Id).Distinct().Count() != Variants.Count) Fail("variants", "distinct variants");
        foreach (var (name, p) in new[] { ("v1", V1), ("v2", V2) })
        {
            if (p.Steps <= 0 || p.BatchSize <= 0 || p.SeqLen < 2) Fail(name, "positive steps and batch size, seq_len >= 2");
            if (!(p.ReplayFraction >= 0 && p.ReplayFraction < 1)) Fail($"{name}.replay_fraction", "a number in [0, 1)");
        }
        if (V1.ReplayFraction != 0) Fail("v1.replay_fraction", "0 (v1 is trained on corpus A alone)");
        if (V2.SeqLen != V1.SeqLen) Fail("v2.seq_len", $"the same as v1 ({V1.SeqLen})");
        if (Adapter.Steps <= 0 || Adapter.BatchSize <= 0) Fail("adapter", "positive steps and batch size");
        if (TestLimit < 0) Fail("test_limit", "an integer >= 0 (0 = all)");
        if (HeldOutSequences <= 0) Fail("held_out_sequences", "a positive integer");
        Model.Validate($"preset '{Name}'");
    }
}
