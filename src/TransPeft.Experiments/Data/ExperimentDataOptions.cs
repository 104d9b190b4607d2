using TransPeft.Experiments.Data.Corpora;

namespace TransPeft.Experiments.Data;

/// <summary>
/// Everything that decides the experiment's data: corpus composition and sizes, tokenizer budget, task
/// sizes and prompt budgets, and the seed. Two presets: <see cref="Cpu"/> (small, the default) and
/// <see cref="Full"/> (all text).
/// </summary>
public sealed record ExperimentDataOptions
{
    /// <summary>Folder that receives manifest.json, tokenizer.json, corpus/ and tasks/.</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Download cache; null = <see cref="Fetch.DataFetcher.DefaultCacheDirectory"/>.</summary>
    public string? CacheDirectory { get; init; }
    public string Preset { get; init; } = "custom";
    public ulong Seed { get; init; } = 1234;

    /// <summary>Pre-training corpus of the old base (v1).</summary>
    public required CorpusSpec CorpusA { get; init; }
    /// <summary>The update's corpus: v2 = v1 continued on it (mixing in corpus A is the trainer's choice).</summary>
    public required CorpusSpec CorpusB { get; init; }

    /// <summary>Tokenizer ids, EOS and the 256 byte ids included.</summary>
    public int TokenizerVocabSize { get; init; } = 8192;
    /// <summary>How GPT-2 tokens outside the kept set are spelled (kept pieces, bytes as the last resort; or bytes only).</summary>
    public TransPeft.Engine.Text.TokenizerFallback TokenizerFallback { get; init; } = TransPeft.Engine.Text.TokenizerFallback.KeptPieces;

    public int TrainPerTask { get; init; } = 1000;
    public int TestPerTask { get; init; } = 300;
    /// <summary>Spam prompt: the first N body tokens.</summary>
    public int SpamBodyTokens { get; init; } = 64;
    /// <summary>SOTU prompt: passages of at most N tokens.</summary>
    public int SotuChunkTokens { get; init; } = 96;
    /// <summary>WordNet completion: the definition cut to N tokens.</summary>
    public int DefinitionTokens { get; init; } = 48;
    /// <summary>A WordNet word enters the dictionary only if it occurs this often in Moby Dick + fortunes (rewritten words always enter).</summary>
    public int MinWordFrequency { get; init; } = 3;

    /// <summary>Small data for a 2-core CPU: corpus A ~2.0 M chars (~0.5 M tokens), corpus B ~1.0 M chars, 1,000/300 examples per task.</summary>
    public static ExperimentDataOptions Cpu(string outputDirectory) => new()
    {
        OutputDirectory = outputDirectory,
        Preset = "cpu",
        CorpusA = new CorpusSpec("corpus-a",
            [new(CorpusPart.MobyDick, 0.4), new(CorpusPart.Fortunes, 0.4), new(CorpusPart.WordNetDictionary, 0.2)], 2_000_000, 100_000),
        CorpusB = new CorpusSpec("corpus-b", [new(CorpusPart.Sotu, 0.7), new(CorpusPart.Jargon, 0.3)], 1_000_000, 100_000),
    };

    /// <summary>All the text: corpus A ~4.9 M chars, corpus B ~12 M chars; 4,000/1,000 examples per task.</summary>
    public static ExperimentDataOptions Full(string outputDirectory) => new()
    {
        OutputDirectory = outputDirectory,
        Preset = "full",
        CorpusA = new CorpusSpec("corpus-a",
            [new(CorpusPart.MobyDick, 0.4), new(CorpusPart.Fortunes, 0.4), new(CorpusPart.WordNetDictionary, 0.2)], null, 200_000),
        CorpusB = new CorpusSpec("corpus-b", [new(CorpusPart.Sotu, 0.7), new(CorpusPart.Jargon, 0.3)], null, 300_000),
        TrainPerTask = 4000,
        TestPerTask = 1000,
    };

    /// <summary>A preset by name: cpu or full.</summary>
    public static ExperimentDataOptions ForPreset(string preset, string outputDirectory) => preset switch
    {
        "cpu" => Cpu(outputDirectory),
        "full" => Full(outputDirectory),
        _ => throw new ArgumentException($"unknown data preset '{preset}'; expected cpu or full", nameof(preset)),
    };
}
