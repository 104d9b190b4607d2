using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Compute;

namespace TransPeft.Engine.Inference;

/// <summary>
/// One request's autoregressive decoding, a step at a time, over a caller-owned KV cache: <see cref="Start"/>
/// prefills the prompt, each <see cref="Step"/> picks one token (greedy, or temperature → top-k → top-p,
/// seeded), checks the stop conditions and, unless stopping, decodes it. Every buffer (logits, sampling work
/// arrays, the one-token id) is made once per loop, so a step allocates nothing on the managed heap, except
/// decoding text for stop strings (a tokenizer call).
/// </summary>
internal sealed class GenerationLoop
{
    private readonly IInferenceModel _model;
    private readonly Tokenizer? _tokenizer;
    private readonly float[] _logits;
    private readonly int[] _one = new int[1];
    private readonly int[] _sampleIdx;
    private readonly double[] _sampleP;
    private KvCache? _cache;
    private GenerationOptions _options = new();
    private IReadOnlyList<int> _eos = [];
    private Random _rng = new(0);
    private readonly List<int> _output = [];

    public GenerationLoop(IInferenceModel model, Tokenizer? tokenizer)
    {
        _model = model;
        _tokenizer = tokenizer;
        int v = model.Config.VocabSize;
        _logits = new float[v];
        _sampleIdx = new int[v];
        _sampleP = new double[v];
    }

    public IReadOnlyList<int> Output => _output;
    /// <summary>"max_new_tokens", "eos", "stop_string" or "max_position_embeddings" once stopped; null while running.</summary>
    public string? StopReason { get; private set; }
    /// <summary>The continuation cut before the stop string (only when a stop string ended it).</summary>
    public string? StopText { get; private set; }

    /// <summary>Checks the request, (re)uses <paramref name="cache"/> when it is big enough, and prefills the prompt.</summary>
    public KvCache Start(IReadOnlyList<int> promptIds, GenerationOptions options, KvCache? cache)
    {
        options.Validate();
        if (promptIds.Count == 0) throw new ArgumentException("the prompt must hold at least one token");
        if (options.StopStrings.Count > 0 && _tokenizer is null)
            throw new ArgumentException("stop strings need a tokenizer to decode the continuation, and none was given");
        var config = _model.Config;
        int max = _model.MaxPositions;
        if (promptIds.Count >= max)
            throw new ArgumentException($"prompt of {promptIds.Count} tokens leaves no room under max_position_embeddings {max}");
        int capacity = (int)Math.Min(max, (long)promptIds.Count + options.MaxNewTokens);
        if (cache is not null && cache.BatchSize == 1 && cache.Capacity >= capacity) _cache = cache;
        else
        {
            cache?.Dispose(); // a CUDA cache's device slots go back before the new cache takes its own
            _cache = _model.CreateCache(1, capacity);
        }
        _cache.Reset();
        _options = options;
        _eos = options.EosTokenIds ?? config.EosTokenIds;
        _rng = new Random(options.Seed);
        _output.Clear();
        if (_output.Capacity < options.MaxNewTokens) _output.Capacity = Math.Min(options.MaxNewTokens, capacity + 1); // no growth while decoding
        StopReason = null;
        StopText = null;
        var prompt = promptIds as int[] ?? [.. promptIds];
        if (options.MaxNewTokens == 0) { StopReason = "max_new_tokens"; return _cache; }
        _model.Prefill(_cache, prompt, 1, prompt.Length, _logits);
        return _cache;
    }

    /// <summary>Picks the next token (returned) and prepares the one after it; -1 once stopped.</summary>
    public int Step()
    {
        if (StopReason is not null) return -1;
        var cache = _cache ?? throw new InvalidOperationException("Start the loop before stepping it");
        int next = _options.Greedy ? Sampling.ArgMax(_logits) : Sampling.Sample(_logits, _options, _rng, _sampleIdx, _sampleP);
        _output.Add(next);
        if (Contains(_eos, next)) StopReason = "eos";
        else if (_options.StopStrings.Count > 0 && StopStringHit()) StopReason = "stop_string";
        else if (_output.Count >= _options.MaxNewTokens) StopReason = "max_new_tokens";
        else if (cache.Length >= cache.Capacity) StopReason = "max_position_embeddings";
        else
        {
            _one[0] = next;
            _model.Decode(cache, _one, _logits);
        }
        return next;
    }

    private static bool Contains(IReadOnlyList<int> list, int x)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == x) return true;
        return false;
    }

    private bool StopStringHit()
    {
        var text = _tokenizer!.Decode(_output);
        int best = -1;
        foreach (var s in _options.StopStrings)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        if (best < 0) return false;
        StopText = text[..best];
        return true;
    }

    /// <summary>The continuation's text: cut before the stop string when one ended it; null without a tokenizer.</summary>
    public string? Text() => StopReason == "stop_string" ? StopText : _tokenizer?.Decode(_output);
}
