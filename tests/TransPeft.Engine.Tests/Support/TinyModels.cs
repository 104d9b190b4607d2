using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Tests.Support;

/// <summary>Small random models for tests that need no golden values.</summary>
internal static class TinyModels
{
    public static ModelConfig Config(string type = "llama", int layers = 2, int heads = 4, int kvHeads = 2, bool tied = false) => new()
    {
        ModelType = type, HiddenSize = 32, IntermediateSize = 48, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = 8, VocabSize = 61, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = tied, MaxPositionEmbeddings = 64,
        AttentionBias = type == "qwen2",
    };

    public static TransformerModel Model(int seed = 1, string type = "llama", bool tied = false) =>
        TransformerModel.CreateRandom(Config(type, tied: tied), seed, initStd: 0.2);

    /// <summary>An adapter with nonzero A and B (as if trained), on all seven projections.</summary>
    public static LoraAdapter TrainedAdapter(ModelConfig config, int seed = 2, double dropout = 0)
    {
        var a = LoraAdapter.Create(config, new LoraConfig { R = 4, Alpha = 8, Dropout = dropout, TargetModules = ["all-linear"] }, seed);
        var rng = new Random(seed + 100);
        foreach (var m in a.Modules())
            for (int i = 0; i < m.B.Length; i++) m.B.Data[i] = (float)(rng.NextDouble() - 0.5) * 0.2f;
        return a;
    }

    /// <summary>Two same-shape <see cref="TrainedAdapter"/>s (seeds 31, 32) saved as PEFT folders "first" and "second"
    /// under <paramref name="dir"/> (hot-swap tests).</summary>
    public static (string First, string Second) SaveTwoAdapters(ModelConfig config, string dir)
    {
        string first = Path.Combine(dir, "first"), second = Path.Combine(dir, "second");
        TrainedAdapter(config, 31).Save(first);
        TrainedAdapter(config, 32).Save(second);
        return (first, second);
    }

    public static int[] RandomIds(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }
}
