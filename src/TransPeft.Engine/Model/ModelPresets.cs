namespace TransPeft.Engine.Model;

/// <summary>Named model sizes for `tpeft init`, the experiment and the benchmarks.</summary>
public static class ModelPresets
{
    public static readonly IReadOnlyDictionary<string, ModelConfig> All = new Dictionary<string, ModelConfig>(StringComparer.OrdinalIgnoreCase)
    {
        // Test-sized: runs a training step in milliseconds.
        ["micro"] = new() { ModelType = "llama", HiddenSize = 64, IntermediateSize = 176, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16, VocabSize = 512, MaxPositionEmbeddings = 512, RopeTheta = 10000, EosTokenIds = [0], BosTokenId = null },
        // The CPU experiment's base model (as in the first libtorch trial: 8.9M parameters with an 8,192 vocabulary).
        ["tiny"] = new() { ModelType = "llama", HiddenSize = 256, IntermediateSize = 688, NumLayers = 6, NumHeads = 8, NumKvHeads = 4, HeadDim = 32, VocabSize = 8192, MaxPositionEmbeddings = 1024, RopeTheta = 10000, EosTokenIds = [0] },
        ["small"] = new() { ModelType = "llama", HiddenSize = 512, IntermediateSize = 1376, NumLayers = 8, NumHeads = 8, NumKvHeads = 4, HeadDim = 64, VocabSize = 8192, MaxPositionEmbeddings = 1024, RopeTheta = 10000, EosTokenIds = [0] },
        // GPU benchmark size (~0.44B parameters, Llama layout, untied head).
        ["0.5b"] = new() { ModelType = "llama", HiddenSize = 1024, IntermediateSize = 4096, NumLayers = 24, NumHeads = 16, NumKvHeads = 8, HeadDim = 64, VocabSize = 32000, MaxPositionEmbeddings = 2048, RopeTheta = 500000, EosTokenIds = [0] },
    };

    public static ModelConfig Get(string name) =>
        All.TryGetValue(name, out var c) ? c : throw new ArgumentException($"unknown model preset '{name}' (known: {string.Join(", ", All.Keys)})");
}
