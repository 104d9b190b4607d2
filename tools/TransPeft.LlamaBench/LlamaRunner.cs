using LLama;
using LLama.Common;
using LLama.Native;

namespace TransPeft.LlamaBench;

/// <summary>llama.cpp (through LLamaSharp) on a GGUF file: greedy decoding of token ids, timed per token.</summary>
internal sealed class LlamaRunner : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();
    private readonly int _vocab;

    public LlamaRunner(string gguf, int threads, int contextSize)
    {
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)contextSize, Threads = threads, BatchThreads = threads, GpuLayerCount = 0,
            BatchSize = (uint)contextSize, UBatchSize = (uint)contextSize,
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
        _vocab = _weights.Vocab.Count;
    }

    /// <summary>Greedy continuation of <paramref name="prompt"/>; <paramref name="stamps"/>[i] = seconds from the call to token i.</summary>
    public int[] Greedy(int[] prompt, int newTokens, double[]? stamps = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        _context.NativeHandle.MemoryClear(true);
        _batch.Clear();
        for (int i = 0; i < prompt.Length; i++) _batch.Add((LLamaToken)prompt[i], (LLamaPos)(i), LLamaSeqId.Zero, i == prompt.Length - 1);
        Decode();
        var output = new int[newTokens];
        int pos = prompt.Length;
        for (int n = 0; n < newTokens; n++)
        {
            var logits = _context.NativeHandle.GetLogitsIth(_batch.TokenCount - 1);
            int best = 0;
            for (int v = 1; v < _vocab; v++) if (logits[v] > logits[best]) best = v;
            output[n] = best;
            if (stamps is not null) stamps[n] = sw.Elapsed.TotalSeconds;
            if (n == newTokens - 1) break;
            _batch.Clear();
            _batch.Add((LLamaToken)best, (LLamaPos)(pos++), LLamaSeqId.Zero, true);
            Decode();
        }
        return output;
    }

    private void Decode()
    {
        var r = _context.NativeHandle.Decode(_batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode failed: {r}");
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
