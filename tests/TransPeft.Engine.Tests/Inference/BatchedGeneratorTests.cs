using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Inference;

/// <summary>
/// Continuous batching with mixed adapters on the real model: every request gets the tokens the single-request
/// <see cref="Generator"/> gives it alone, while adapters are loaded, hot-swapped and unloaded around it.
/// </summary>
public class BatchedGeneratorTests
{
    /// <summary>Every token a request streams, in order (the CUDA session tests use it too).</summary>
    internal static async Task<List<int>> Collect(BatchRequest<BatchSequence> r)
    {
        var list = new List<int>();
        await foreach (var t in r.ReadAllAsync()) list.Add(t);
        return list;
    }

    [Fact]
    public async Task ConcurrentMixedAdapterRequestsGetTheirTokensAlone()
    {
        var model = TinyModels.Model(7);
        var adapters = new[] { TinyModels.TrainedAdapter(model.Config, 21), TinyModels.TrainedAdapter(model.Config, 22), TinyModels.TrainedAdapter(model.Config, 23) };
        using var session = InferenceSession.FromModel(model);
        var gen = new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = 5, MaxBatchTokens = 12 });
        for (int i = 0; i < adapters.Length; i++) gen.Adapters.Add($"a{i}", adapters[i]);
        var loop = Task.Run(() => gen.RunAsync());
        var jobs = Enumerable.Range(0, 10).Select(i =>
        {
            int slot = i % 4 - 1;
            var prompt = TinyModels.RandomIds(1 + i * 3 % 11, model.Config.VocabSize, 40 + i);
            var options = i % 3 == 2
                ? new GenerationOptions { MaxNewTokens = 3 + i % 5, Temperature = 0.8, TopP = 0.9, Seed = i, EosTokenIds = [] }
                : new GenerationOptions { MaxNewTokens = 3 + i % 5, Greedy = true, EosTokenIds = [] };
            return (slot, prompt, options);
        }).ToList();
        var requests = new List<Task<List<int>>>();
        foreach (var (slot, prompt, options) in jobs)
        {
            requests.Add(Collect(gen.Submit(prompt, slot < 0 ? null : $"a{slot}", options)));
            await Task.Yield();
        }
        var results = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromMinutes(2));
        gen.Batcher.Close();
        await loop.WaitAsync(TimeSpan.FromMinutes(1));
        for (int i = 0; i < jobs.Count; i++)
        {
            var (slot, prompt, options) = jobs[i];
            var alone = new Generator(model, slot < 0 ? null : adapters[slot]).Generate(prompt, options);
            Assert.Equal(alone.TokenIds, results[i]);
        }
    }

    [Fact]
    public async Task AdaptersAreLoadedHotSwappedAndUnloadedDuringTraffic()
    {
        var model = TinyModels.Model(8);
        using var dir = new TempDir();
        var (firstDir, secondDir) = TinyModels.SaveTwoAdapters(model.Config, dir.Path);
        using var session = InferenceSession.FromModel(model);
        var gen = new BatchedGenerator(session);
        var greedy = new GenerationOptions { MaxNewTokens = 6, Greedy = true, EosTokenIds = [] };
        var prompt = TinyModels.RandomIds(5, model.Config.VocabSize, 3);

        var load = gen.Adapters.Load("tenant", firstDir, replace: false);
        Assert.False(load.InPlace);
        Assert.True(load.Elapsed > TimeSpan.Zero);
        var before = gen.Submit(prompt, "tenant", greedy);
        var running = gen.Submit(prompt, null, greedy with { MaxNewTokens = 20 });
        gen.Batcher.Step();
        // Replace with the same shape while requests run: a hot swap in place.
        var swap = gen.Adapters.Load("tenant", secondDir, replace: true);
        Assert.True(swap.InPlace);
        Assert.Throws<ArgumentException>(() => gen.Adapters.Load("tenant", firstDir));
        var after = gen.Submit(prompt, "tenant", greedy);
        gen.Adapters.Load("other", firstDir, replace: false);
        var other = gen.Submit(prompt, "other", greedy);
        Assert.True(gen.Adapters.Unload("other")); // other keeps running with the adapter it started with
        Assert.Throws<KeyNotFoundException>(() => gen.Submit(prompt, "other", greedy));
        Assert.False(gen.Adapters.Unload("other"));
        var outputs = new[] { Collect(before), Collect(running), Collect(after), Collect(other) };
        while (gen.Batcher.Step()) { }

        var withFirst = new Generator(model, LoraAdapter.Load(firstDir, model.Config)).Generate(prompt, greedy).TokenIds;
        var withSecond = new Generator(model, LoraAdapter.Load(secondDir, model.Config)).Generate(prompt, greedy).TokenIds;
        Assert.NotEqual(withFirst, withSecond);
        Assert.Equal(withSecond, await outputs[2]);
        Assert.Equal(withFirst, await outputs[3]);
        Assert.Equal(new Generator(model).Generate(prompt, greedy with { MaxNewTokens = 20 }).TokenIds, await outputs[1]);
        // The request that started before the swap ran its first token with the old weights and the rest with the new.
        var mixed = await outputs[0];
        Assert.Equal(withFirst[0], mixed[0]);
        Assert.Equal(["tenant"], gen.Adapters.List().Select(a => a.Name));
    }

    [Fact]
    public void BadRequestsAreRefusedWithTheirReason()
    {
        var model = TinyModels.Model(9);
        using var session = InferenceSession.FromModel(model, new SessionOptions { MaxSequenceLength = 16 });
        var gen = new BatchedGenerator(session);
        var greedy = new GenerationOptions { Greedy = true };
        Assert.Contains("leaves no room", Assert.Throws<ArgumentException>(() => gen.Submit(new int[16], null, greedy)).Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<ArgumentOutOfRangeException>(() => gen.Submit([1, 999], null, greedy)).Message);
        Assert.Contains("adapter 'x' is not loaded", Assert.Throws<KeyNotFoundException>(() => gen.Submit([1], "x", greedy)).Message);
    }
}
