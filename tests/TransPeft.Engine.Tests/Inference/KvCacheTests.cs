using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Inference;

public class KvCacheTests
{
    [Theory]
    [InlineData("llama", false)]
    [InlineData("qwen2", true)]
    public void CachedDecodingGivesTheLogitsOfAFullRecompute(string type, bool tied)
    {
        var model = TinyModels.Model(3, type, tied);
        var adapter = TinyModels.TrainedAdapter(model.Config);
        var m = new CpuTransformer(model, adapter);
        int b = 2, prompt = 5, steps = 6, v = model.Config.VocabSize;
        var ids = TinyModels.RandomIds(b * (prompt + steps), v, 4);
        var cache = new KvCache(model.Config, b, prompt + steps);
        int[] Rows(int from, int len) => Enumerable.Range(0, b).SelectMany(r => ids.Skip(r * (prompt + steps) + from).Take(len)).ToArray();

        var cached = m.ForwardCached(cache, Rows(0, prompt), b, prompt);
        for (int s = 0; ; s++)
        {
            int len = prompt + s;
            var full = m.ForwardLogits(Rows(0, len), b, len);
            for (int r = 0; r < b; r++)
                for (int j = 0; j < v; j++)
                    Assert.True(Math.Abs(full[(r * len + len - 1) * v + j] - cached[r * v + j]) < 2e-5,
                        $"step {s} row {r} token {j}: full {full[(r * len + len - 1) * v + j]} vs cached {cached[r * v + j]}");
            if (s == steps) break;
            cached = m.ForwardCached(cache, Rows(len, 1), b, 1);
        }
        Assert.Equal(prompt + steps, cache.Length);
        Assert.Throws<ArgumentException>(() => m.ForwardCached(cache, Rows(0, 1), b, 1));
    }

    [Theory, MemberData(nameof(GoldenFixture.Names), MemberType = typeof(GoldenFixture))]
    public void GreedyGeneratorReproducesFixtureTokens(string name)
    {
        using var f = new GoldenFixture(name);
        var prompt = f.Expected.ReadInt64("greedy_prompt").Select(x => (int)x).ToArray();
        var want = f.Expected.ReadInt64("greedy_lora").Select(x => (int)x).ToArray();
        var gen = new Generator(f.Model, f.LoadAdapter());
        var result = gen.Generate(prompt, new GenerationOptions { Greedy = true, MaxNewTokens = want.Length, EosTokenIds = [] });
        Assert.Equal(want, result.TokenIds);
        Assert.Equal("max_new_tokens", result.StopReason);
    }

    [Fact]
    public void SamplingIsSeededAndTopKOneIsGreedy()
    {
        var model = TinyModels.Model(5);
        var gen = new Generator(model);
        int[] prompt = [1, 2, 3];
        var greedy = gen.Generate(prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 8, EosTokenIds = [] });
        var topk1 = gen.Generate(prompt, new GenerationOptions { TopK = 1, Temperature = 0.7, MaxNewTokens = 8, Seed = 9, EosTokenIds = [] });
        Assert.Equal(greedy.TokenIds, topk1.TokenIds);
        var s1 = gen.Generate(prompt, new GenerationOptions { Temperature = 1.5, TopP = 0.9, MaxNewTokens = 12, Seed = 42, EosTokenIds = [] });
        var s2 = gen.Generate(prompt, new GenerationOptions { Temperature = 1.5, TopP = 0.9, MaxNewTokens = 12, Seed = 42, EosTokenIds = [] });
        var s3 = gen.Generate(prompt, new GenerationOptions { Temperature = 1.5, TopP = 0.9, MaxNewTokens = 12, Seed = 43, EosTokenIds = [] });
        Assert.Equal(s1.TokenIds, s2.TokenIds);
        Assert.NotEqual(s1.TokenIds, s3.TokenIds);
    }

    [Fact]
    public void StopsAtEos()
    {
        var model = TinyModels.Model(6);
        var gen = new Generator(model);
        var greedy = gen.Generate([4, 5], new GenerationOptions { Greedy = true, MaxNewTokens = 6, EosTokenIds = [] });
        int eos = greedy.TokenIds[2];
        var stopped = gen.Generate([4, 5], new GenerationOptions { Greedy = true, MaxNewTokens = 6, EosTokenIds = [eos] });
        int first = greedy.TokenIds.ToList().IndexOf(eos);
        Assert.Equal(greedy.TokenIds.Take(first + 1), stopped.TokenIds);
        Assert.Equal("eos", stopped.StopReason);
    }

    [Fact]
    public void RejectsBadOptions()
    {
        var gen = new Generator(TinyModels.Model(7));
        Assert.Contains("temperature", Assert.Throws<ArgumentException>(() => gen.Generate([1], new GenerationOptions { Temperature = 0 })).Message);
        Assert.Contains("top-p", Assert.Throws<ArgumentException>(() => gen.Generate([1], new GenerationOptions { TopP = 1.5 })).Message);
    }
}

public class SlidingWindowTests
{
    [Fact]
    public void SequencesPastAMistralSlidingWindowAreRefusedNotMiscomputed()
    {
        var config = TinyModels.Config("mistral") with { SlidingWindow = 6 };
        var m = new CpuTransformer(global::TransPeft.Engine.Model.TransformerModel.CreateRandom(config, 1));
        Assert.Equal(6 * config.VocabSize, m.ForwardLogits(TinyModels.RandomIds(6, config.VocabSize, 1), 1, 6).Length);
        var e = Assert.Throws<ArgumentException>(() => m.ForwardLogits(TinyModels.RandomIds(7, config.VocabSize, 1), 1, 7));
        Assert.Contains("sliding_window 6", e.Message);
    }
}
