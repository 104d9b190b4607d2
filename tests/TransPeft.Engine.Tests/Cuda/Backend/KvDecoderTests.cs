using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cuda.Emulation;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The KV-cached CUDA decoder (<see cref="CudaKvDecoder"/>) against the CUDA backend's own recomputation and
/// against itself: decoding with the cache on the device gives, step by step, the logits of recomputing the whole
/// prefix (<see cref="CudaTransformer.ForwardLogits"/>); a mixed-adapter decode step gives every row what it gets
/// alone; the adapter pool's evictions and re-uploads change no token; running out of KV slots is refused with a
/// clear message. Tiny shapes: the emulated devices are slow.
/// </summary>
public abstract class KvDecoderTests
{
    internal abstract IComputeDevice NewDevice();

    private static readonly ParityTolerance Tol = ParityTolerance.Bf16;

    private static ModelConfig Config() => BackendParityTests.Config("qwen2");

    private CudaKvDecoder Decoder(TransformerModel model, int slots = 4, int adapterSlots = 4) =>
        new(NewDevice(), model, new CudaKvOptions(slots, 24, adapterSlots), ownsDevice: true);

    [SkippableFact]
    public void KvCachedDecodingGivesTheLogitsOfRecomputingThePrefix()
    {
        var c = Config();
        var model = BackendParityTests.Model(c, 5);
        var adapter = BackendParityTests.Adapter(c, 6);
        using var decoder = Decoder(model);
        int v = c.VocabSize;
        foreach (var a in new[] { null, adapter })
        {
            using var recompute = CudaTransformer.ForInference(NewDevice(), model, a, ownsDevice: true);
            var gpu = new CudaKvInference(decoder, a);
            var seq = TinyModels.RandomIds(5, v, 9).ToList();
            using var cache = gpu.CreateCache(1, 12);
            var logits = new float[v];
            gpu.Prefill(cache, seq.ToArray(), 1, seq.Count, logits);
            for (int step = 0; step < 6; step++)
            {
                var full = recompute.ForwardLogits(seq.ToArray(), 1, seq.Count).AsSpan((seq.Count - 1) * v, v);
                string what = $"{(a is null ? "base" : "adapter")} step {step}";
                ParityCheck.Logits(what, full, logits, Tol);
                int token = Sampling.ArgMax(full);
                ParityCheck.GreedyStep(what, full, logits, token, Tol);
                gpu.Decode(cache, [token], logits);
                seq.Add(token);
            }
            Assert.Equal(seq.Count, cache.Length); // the prompt and every decoded token
        }
    }

    /// <summary>Each request alone (prefill, then decode steps of one row), then all of them in one mixed step per
    /// token: rows with different adapters, the base, and two rows of one adapter. With a pool of 2 slots and three
    /// adapters used one after another, the alone runs evict and re-upload; the batch holds two adapters and the base.</summary>
    [SkippableFact]
    public void MixedAdapterStepsGiveEveryRowItsLogitsAloneAndEvictionChangesNothing()
    {
        var c = Config();
        var model = BackendParityTests.Model(c, 11);
        var adapters = new[] { BackendParityTests.Adapter(c, 12, rank: 2), BackendParityTests.Adapter(c, 13, rank: 6), BackendParityTests.Adapter(c, 14, rank: 4) };
        int v = c.VocabSize;
        const int steps = 3;
        LoraAdapter?[] rowAdapter = [adapters[0], null, adapters[1], adapters[0]];
        var prompts = Enumerable.Range(0, rowAdapter.Length).Select(i => TinyModels.RandomIds(2 + i, v, 20 + i)).ToArray();

        // Alone, on a pool of 2 slots cycling through three adapters: evictions and re-uploads.
        using var alone = Decoder(model, adapterSlots: 2);
        var aloneLogits = new float[rowAdapter.Length][];
        var aloneTokens = new List<int>[rowAdapter.Length];
        foreach (var warm in adapters) new CudaKvInference(alone, warm).Forward([1, 2], 1, 2, new float[2 * v], default, ref Unused);
        for (int i = 0; i < rowAdapter.Length; i++)
        {
            var gpu = new CudaKvInference(alone, rowAdapter[i]);
            using var cache = gpu.CreateCache(1, 12);
            var logits = new float[v];
            gpu.Prefill(cache, prompts[i], 1, prompts[i].Length, logits);
            aloneTokens[i] = [];
            for (int s = 0; s < steps; s++)
            {
                int t = Sampling.ArgMax(logits);
                aloneTokens[i].Add(t);
                gpu.Decode(cache, [t], logits);
            }
            aloneLogits[i] = logits;
        }
        Assert.True(alone.Pool.Evictions > 0, "three adapters through two slots must evict");
        Assert.True(alone.Pool.Uploads > adapters.Length, "an evicted adapter used again must be uploaded again");

        using var mixed = Decoder(model, adapterSlots: 2);
        int n = rowAdapter.Length;
        var caches = new KvCache[n];
        var next = new int[n];
        var first = new float[v];
        for (int i = 0; i < n; i++)
        {
            var gpu = new CudaKvInference(mixed, rowAdapter[i]);
            caches[i] = gpu.CreateCache(1, 12);
            gpu.Prefill(caches[i], prompts[i], 1, prompts[i].Length, first);
            next[i] = Sampling.ArgMax(first);
        }
        var batch = new float[n * v];
        for (int s = 0; s < steps; s++)
        {
            for (int i = 0; i < n; i++) Assert.Equal(aloneTokens[i][s], next[i]);
            mixed.DecodeMixed(next, caches, rowAdapter, batch);
            for (int i = 0; i < n; i++) next[i] = Sampling.ArgMax(batch.AsSpan(i * v, v));
        }
        for (int i = 0; i < n; i++)
        {
            var got = batch.AsSpan(i * v, v);
            ParityCheck.Elementwise($"row {i} batched vs alone", aloneLogits[i], got, 1e-3 * DeviceScratch.MaxAbs(aloneLogits[i]), 1e-3);
            caches[i].Dispose();
        }
        Assert.Equal(0, mixed.SlotsInUse);
    }

    [SkippableFact]
    public void RunningOutOfKvSlotsIsRefusedWithAClearMessageAndADisposedCacheFreesItsSlot()
    {
        var c = Config();
        var model = BackendParityTests.Model(c, 3);
        using var decoder = Decoder(model, slots: 2);
        var gpu = new CudaKvInference(decoder, null);
        var logits = new float[c.VocabSize];
        var a = gpu.CreateCache(1, 8);
        var b = gpu.CreateCache(1, 8);
        var third = gpu.CreateCache(1, 8);
        gpu.Prefill(a, [1, 2], 1, 2, logits);
        gpu.Prefill(b, [1, 2], 1, 2, logits);
        var e = Assert.Throws<InvalidOperationException>(() => gpu.Prefill(third, [1, 2], 1, 2, logits));
        Assert.Equal("all 2 KV cache slots on the device are in use (SessionOptions.MaxBatchSize = 2): dispose finished contexts or raise MaxBatchSize", e.Message);
        a.Dispose();
        gpu.Prefill(third, [1, 2], 1, 2, logits);
        Assert.Equal(2, decoder.SlotsInUse);
        var tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.CreateCache(1, 25));
        Assert.Contains("exceeds the session's maximum sequence length 24", tooLong.Message);
    }

    /// <summary>
    /// The decode step captured once per batch size and replayed (the device reads each token's ids, slots, positions
    /// and adapter slots from the staging upload) gives the plain launches' logits to the bit over many tokens, through
    /// a batch-size change (a request leaving) and a pool re-plan (a higher-rank adapter arriving drops the graphs).
    /// </summary>
    [SkippableFact]
    public void GraphReplayedDecodeStepsGiveThePlainLaunchesLogitsToTheBit()
    {
        var c = Config();
        var model = BackendParityTests.Model(c, 21);
        var a0 = BackendParityTests.Adapter(c, 22, rank: 2);
        var a1 = BackendParityTests.Adapter(c, 23, rank: 4);
        var late = BackendParityTests.Adapter(c, 24, rank: 6);
        int v = c.VocabSize;

        (List<float> Logits, int Captures, int Launches) Run(bool graphs)
        {
            using var decoder = new CudaKvDecoder(NewDevice(), model, new CudaKvOptions(4, 24, 3, CaptureGraphs: graphs), ownsDevice: true);
            var rows = new List<LoraAdapter?> { a0, null, a1 };
            var caches = new List<KvCache>();
            var next = new List<int>();
            var all = new List<float>();
            var first = new float[v];
            for (int i = 0; i < rows.Count; i++)
            {
                var gpu = new CudaKvInference(decoder, rows[i]);
                caches.Add(gpu.CreateCache(1, 20));
                gpu.Prefill(caches[i], TinyModels.RandomIds(3 + i, v, 30 + i), 1, 3 + i, first);
                next.Add(Sampling.ArgMax(first));
            }
            var logits = new float[rows.Count * v];
            for (int step = 0; step < 10; step++)
            {
                if (step == 4) { caches[1].Dispose(); caches.RemoveAt(1); rows.RemoveAt(1); next.RemoveAt(1); } // a request leaves: N = 2
                if (step == 7) rows[1] = late; // a rank-6 adapter: the pool re-plans, the graphs go
                int n = rows.Count;
                decoder.DecodeMixed(next.ToArray(), caches.ToArray(), rows.ToArray(), logits.AsSpan(0, n * v));
                all.AddRange(logits.AsSpan(0, n * v).ToArray());
                for (int i = 0; i < n; i++) next[i] = Sampling.ArgMax(logits.AsSpan(i * v, v));
            }
            foreach (var cache in caches) cache.Dispose();
            return (all, decoder.GraphCaptures, decoder.GraphLaunches);
        }

        var plain = Run(graphs: false);
        var replayed = Run(graphs: true);
        Assert.Equal(0, plain.Captures);
        Assert.Equal(3, replayed.Captures); // N = 3; N = 2; N = 2 again after the re-plan
        Assert.Equal(10, replayed.Launches);
        Assert.Equal(plain.Logits.Count, replayed.Logits.Count);
        for (int i = 0; i < plain.Logits.Count; i++)
            Assert.True(BitConverter.SingleToInt32Bits(plain.Logits[i]) == BitConverter.SingleToInt32Bits(replayed.Logits[i]),
                $"logit {i}: plain {plain.Logits[i]}, replayed {replayed.Logits[i]}");
    }

    /// <summary>The per-token path (one-adapter decode and a mixed step) allocates nothing on the managed heap once
    /// its working memory exists: the staging buffer, the adapter pool lookup, the launches and the logits copy. Run by
    /// the devices whose own host code allocates nothing per launch (cuda-emulated, a GPU; not the C# twin).</summary>
    protected void CheckDecodeStepsAllocateNothing()
    {
        var c = Config();
        var model = BackendParityTests.Model(c, 4);
        var adapter = BackendParityTests.Adapter(c, 5);
        using var decoder = Decoder(model);
        var gpu = new CudaKvInference(decoder, adapter);
        int v = c.VocabSize;
        var caches = new[] { gpu.CreateCache(1, 20), new CudaKvInference(decoder, null).CreateCache(1, 20) };
        var logits = new float[2 * v];
        gpu.Prefill(caches[0], [1, 2, 3], 1, 3, logits);
        gpu.Prefill(caches[1], [4, 5], 1, 2, logits);
        int[] one = [7], two = [8, 9];
        LoraAdapter?[] rows = [adapter, null];
        void Steps()
        {
            gpu.Decode(caches[0], one, logits.AsSpan(0, v));
            decoder.DecodeMixed(two, caches, rows, logits);
        }
        Steps(); // working memory for both batch sizes
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) Steps();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(11, caches[0].Length); // 3 prompt tokens, then 2 per round of Steps
    }

    private static object? Unused;
}

/// <summary>The decoder on the C# twin device (bf16 storage): the orchestration, against the documented kernel contracts.</summary>
public sealed class EmulatedKvDecoderTests : KvDecoderTests
{
    internal override IComputeDevice NewDevice() => new EmulatedDevice();
}

/// <summary>The decoder on cuda-emulated: the real kernels/*.cu compiled for the host.</summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class HostEmulatedKvDecoderTests : KvDecoderTests
{
    internal override IComputeDevice NewDevice() => HostEmulatedBackend.NewDevice();

    [SkippableFact]
    public void DecodeStepsAllocateNothingOnTheManagedHeap() => CheckDecodeStepsAllocateNothing();
}

/// <summary>The decoder on GPU 0 (skipped without one): the real kernels, cuBLAS, pinned copies and graphs.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuKvDecoderTests : KvDecoderTests
{
    internal override IComputeDevice NewDevice() => GpuBackend.NewDevice();

    [SkippableFact]
    public void DecodeStepsAllocateNothingOnTheManagedHeap() => CheckDecodeStepsAllocateNothing();
}

/// <summary>The decoder's own host code on a device that does nothing: a decode step allocates nothing and makes no
/// device allocation once its working memory exists.</summary>
public sealed class NullDeviceKvDecoderTests
{
    [Fact]
    public void DecodeStepsMakeNoManagedOrDeviceAllocation()
    {
        var c = BackendParityTests.Config("qwen2");
        var device = new NullDevice();
        var adapter = BackendParityTests.Adapter(c, 5);
        using var decoder = new CudaKvDecoder(device, BackendParityTests.Model(c, 4), new CudaKvOptions(4, 24, 2), ownsDevice: false);
        var gpu = new CudaKvInference(decoder, adapter);
        var cache = gpu.CreateCache(2, 20);
        var logits = new float[2 * c.VocabSize];
        gpu.Prefill(cache, [1, 2, 3, 4], 2, 2, logits);
        int[] ids = [5, 6];
        gpu.Decode(cache, ids, logits);
        int allocations = device.Allocations;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++) gpu.Decode(cache, ids, logits);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(allocations, device.Allocations);
        Assert.Equal(8, cache.Length);
    }
}

/// <summary>The device KV cache respects the session's memory limit: refused before anything is allocated, in one line
/// naming the options to lower.</summary>
public sealed class KvArenaBudgetTests
{
    [Fact]
    public void AKvArenaBeyondMaxMemoryBytesIsRefusedNamingTheOptions()
    {
        var c = BackendParityTests.Config("qwen2");
        var device = new NullDevice();
        using var decoder = new CudaKvDecoder(device, BackendParityTests.Model(c, 4), new CudaKvOptions(4, 24, 2, MaxMemoryBytes: 4096), ownsDevice: false);
        var gpu = new CudaKvInference(decoder, null);
        using var cache = gpu.CreateCache(1, 8);
        int allocations = device.Allocations;
        var e = Assert.Throws<InvalidOperationException>(() => gpu.Prefill(cache, [1, 2], 1, 2, new float[c.VocabSize]));
        long kv = 2L * c.NumLayers * 4 * 24 * c.KvDim * 2;
        Assert.StartsWith($"the device KV cache of 4 slots x 24 positions needs {kv} bytes; with the weights' ", e.Message);
        Assert.EndsWith("exceeds SessionOptions.MaxMemoryBytes 4096: lower MaxBatchSize or MaxSequenceLength", e.Message);
        Assert.Equal(allocations, device.Allocations);
    }
}
