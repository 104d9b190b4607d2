using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Training.Bert;

/// <summary>
/// How a LoRA adapter plus a linear classification head is trained on a BERT encoder. Defaults are the recipe that
/// worked on the real MiniLM → arctic-embed-xs pair: LoRA r 8, alpha 16 on PEFT's six BERT modules, AdamW lr 5e-4,
/// batch 16, 150 steps, inputs cut to 64 tokens, mean pooling.
/// </summary>
public sealed record BertClassifierOptions
{
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public double LearningRate { get; init; } = 5e-4;
    public double WeightDecay { get; init; }
    public int BatchSize { get; init; } = 16;
    public int Steps { get; init; } = 150;
    public int MaxTokens { get; init; } = 64;
    public BertPooling Pooling { get; init; } = BertPooling.Mean;
    /// <summary>Trans-PEFT: probability that one GELU intermediate element is zeroed.</summary>
    public double PMask { get; init; }
    /// <summary>Trans-PEFT: probability that one layer's FFN sub-layer is skipped (per layer, per micro-batch).</summary>
    public double PDrop { get; init; }
    public ulong Seed { get; init; } = 1;

    public void Validate()
    {
        void Require(bool ok, string field, string expected) { if (!ok) throw new ArgumentException($"{field}: expected {expected}"); }
        Require(Rank > 0, "rank", "a positive integer");
        Require(Alpha > 0, "alpha", "a positive number");
        Require(LearningRate > 0, "learning rate", "a positive number");
        Require(BatchSize > 0, "batch size", "a positive integer");
        Require(Steps > 0, "steps", "a positive integer");
        Require(MaxTokens >= 2, "max tokens", "at least 2 ([CLS] and [SEP])");
        Require(PMask is >= 0 and < 1, "p_mask", "a probability in [0, 1)");
        Require(PDrop is >= 0 and < 1, "p_drop", "a probability in [0, 1)");
    }
}
