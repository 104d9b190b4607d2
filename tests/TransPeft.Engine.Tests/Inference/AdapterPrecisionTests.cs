using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.Cuda.Backend;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Inference;

/// <summary>
/// <see cref="SessionOptions.AdapterPrecision"/>: a session serving adapters at bf16 computes with the same rounded
/// weights on every path (batched serving through the CPU image, contexts through the float32 layers), leaves an
/// adapter the host added untouched, and rounds the weights a hot swap brings in.
/// </summary>
public class AdapterPrecisionTests
{
    private static LoraAdapter Rounded(LoraAdapter a) => Bf16Models.Round(a.Clone());

    private static float[] Weights(LoraAdapter a) => [.. a.Tensors().SelectMany(t => t.Values.ToArray())];

    [Fact]
    public async Task Bf16SessionsServeTheRoundedAdapterOnEveryPathAndLeaveTheHostsAdapterAlone()
    {
        var model = TinyModels.Model(9);
        var adapters = new[] { TinyModels.TrainedAdapter(model.Config, 31), TinyModels.TrainedAdapter(model.Config, 32) };
        var original = adapters.Select(Weights).ToArray();
        using var session = InferenceSession.FromModel(model, new SessionOptions { AdapterPrecision = AdapterPrecision.BFloat16 });
        var gen = new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = 6, MaxBatchTokens = 40 });
        for (int i = 0; i < adapters.Length; i++) gen.Adapters.Add($"a{i}", adapters[i]);

        for (int i = 0; i < adapters.Length; i++)
        {
            Assert.Equal(original[i], Weights(adapters[i])); // the host's object keeps its float32 weights
            var served = Weights(gen.Adapters[$"a{i}"]);
            Assert.Equal(Weights(Rounded(adapters[i])), served);
            Assert.NotEqual(original[i], served);
        }

        var greedy = new GenerationOptions { MaxNewTokens = 6, Greedy = true, EosTokenIds = [] };
        var jobs = Enumerable.Range(0, 6).Select(i => (Slot: i % 3 - 1, Prompt: TinyModels.RandomIds(2 + i, model.Config.VocabSize, 60 + i))).ToList();
        var outputs = jobs.Select(j => BatchedGeneratorTests.Collect(gen.Submit(j.Prompt, j.Slot < 0 ? null : $"a{j.Slot}", greedy))).ToList();
        while (gen.Batcher.Step()) { }
        for (int i = 0; i < jobs.Count; i++)
        {
            var (slot, prompt) = jobs[i];
            var alone = new Generator(model, slot < 0 ? null : Rounded(adapters[slot])).Generate(prompt, greedy).TokenIds;
            Assert.Equal(alone, await outputs[i]);
            using var ctx = session.CreateContext(slot < 0 ? null : $"a{slot}");
            Assert.Equal(alone, ctx.Generate(prompt, greedy).TokenIds);
        }
    }

    /// <summary>An unloaded adapter, its CPU image and its backend are garbage once the requests that used it are done:
    /// the session keeps only backends that hold unmanaged resources, and the batched step keeps nothing between steps.</summary>
    [Fact]
    public void AnUnloadedAdapterIsFreedOnceNoRequestUsesIt()
    {
        var model = TinyModels.Model(11);
        using var session = InferenceSession.FromModel(model, new SessionOptions { AdapterPrecision = AdapterPrecision.BFloat16 });
        var gen = new BatchedGenerator(session);
        var weak = ServeOnceThenUnload(gen, model.Config);
        for (int i = 0; i < 3 && weak.IsAlive; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        Assert.False(weak.IsAlive, "the unloaded adapter is still reachable");
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference ServeOnceThenUnload(BatchedGenerator gen, Engine.Model.ModelConfig c)
    {
        gen.Adapters.Add("t", TinyModels.TrainedAdapter(c, 41));
        var weak = new WeakReference(gen.Adapters["t"]);
        var greedy = new GenerationOptions { MaxNewTokens = 3, Greedy = true, EosTokenIds = [] };
        var request = gen.Submit(TinyModels.RandomIds(3, c.VocabSize, 1), "t", greedy);
        while (gen.Batcher.Step()) { }
        Assert.Equal(3, request.Generated);
        Assert.True(gen.Adapters.Unload("t"));
        return weak;
    }

    [Fact]
    public async Task ABf16HotSwapRoundsTheNewWeightsAndTheBatchedStepReadsThem()
    {
        var model = TinyModels.Model(10);
        using var dir = new TempDir();
        var (firstDir, secondDir) = TinyModels.SaveTwoAdapters(model.Config, dir.Path);
        using var session = InferenceSession.FromModel(model, new SessionOptions { AdapterPrecision = AdapterPrecision.BFloat16 });
        var gen = new BatchedGenerator(session);
        var greedy = new GenerationOptions { MaxNewTokens = 5, Greedy = true, EosTokenIds = [] };
        var prompt = TinyModels.RandomIds(4, model.Config.VocabSize, 5);
        var served = gen.Adapters.Load("tenant", firstDir);
        var first = BatchedGeneratorTests.Collect(gen.Submit(prompt, "tenant", greedy));
        while (gen.Batcher.Step()) { }

        Assert.True(gen.Adapters.Load("tenant", secondDir, replace: true).InPlace);
        var second = Rounded(LoraAdapter.Load(secondDir, model.Config));
        Assert.Same(served, gen.Adapters["tenant"]);
        Assert.Equal(Weights(second), Weights(served));
        var after = BatchedGeneratorTests.Collect(gen.Submit(prompt, "tenant", greedy));
        while (gen.Batcher.Step()) { }

        Assert.Equal(new Generator(model, Rounded(LoraAdapter.Load(firstDir, model.Config))).Generate(prompt, greedy).TokenIds, await first);
        Assert.Equal(new Generator(model, second).Generate(prompt, greedy).TokenIds, await after);
    }
}
