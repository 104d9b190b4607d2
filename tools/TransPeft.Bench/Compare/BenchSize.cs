using TransPeft.Engine.Model;

namespace TransPeft.Bench.Compare;

/// <summary>A named model shape and the micro-batch it is timed with.</summary>
internal sealed record BenchSize(string Name, ModelConfig Config, int Batch, int SeqLen)
{
    public int Tokens => Batch * SeqLen;

    private static ModelConfig Llama(int hidden, int layers, int heads, int kvHeads, int inter, int vocab) => new()
    {
        ModelType = "llama", HiddenSize = hidden, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = hidden / heads, IntermediateSize = inter, VocabSize = vocab, RmsNormEps = 1e-5, RopeTheta = 10000,
        TieWordEmbeddings = false, MaxPositionEmbeddings = 1024,
    };

    /// <summary>
    /// tiny: the 8.9M-parameter model of EXPERIMENT-NOTES (batch 16 x 256), MHA.
    /// mini: a smaller GQA model (4 query heads on 2 kv heads), where per-op overheads weigh more.
    /// small: a larger GQA model (~31M), where the GEMMs dominate.
    /// </summary>
    public static readonly BenchSize[] All =
    [
        new("tiny", Llama(256, 6, 8, 8, 688, 8192), 16, 256),
        new("mini", Llama(128, 4, 4, 2, 352, 4096), 8, 256),
        new("small", Llama(512, 8, 8, 4, 1376, 8192), 8, 256),
    ];

    public static BenchSize Parse(string name) =>
        All.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"unknown size '{name}'; known: {string.Join(", ", All.Select(s => s.Name))}");
}
