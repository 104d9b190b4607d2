using System.Diagnostics;
using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Inference;

/// <summary>
/// Autoregressive generation on the CPU backend with a KV cache: one prefill pass over the prompt, then
/// one single-token pass per new token. Sampling: greedy, or temperature → top-k → top-p, seeded.
/// </summary>
public sealed class Generator
{
    private readonly CpuTransformer _model;
    private readonly Tokenizer? _tokenizer;

    public Generator(TransformerModel model, LoraAdapter? adapter = null, Tokenizer? tokenizer = null)
    {
        _model = CpuTransformer.ForInference(model, adapter);
        _tokenizer = tokenizer;
    }

    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options)
    {
        options.Validate();
        if (promptIds.Count == 0) throw new ArgumentException("the prompt must hold at least one token");
        var config = _model.Config;
        int capacity = Math.Min(config.MaxPositionEmbeddings, promptIds.Count + options.MaxNewTokens);
        if (promptIds.Count >= config.MaxPositionEmbeddings)
            throw new ArgumentException($"prompt of {promptIds.Count} tokens leaves no room under max_position_embeddings {config.MaxPositionEmbeddings}");
        var eos = options.EosTokenIds ?? config.EosTokenIds;
        var cache = new KvCache(config, 1, capacity);
        var rng = new Random(options.Seed);
        var sw = Stopwatch.StartNew();
        var logits = _model.ForwardCached(cache, promptIds.ToArray(), 1, promptIds.Count);
        var output = new List<int>();
        string reason = "max_new_tokens";
        string? text = null;
        while (output.Count < options.MaxNewTokens)
        {
            int next = options.Greedy ? Sampling.ArgMax(logits) : Sampling.Sample(logits, options, rng);
            output.Add(next);
            if (eos.Contains(next)) { reason = "eos"; break; }
            if (options.StopStrings.Count > 0 && _tokenizer is not null)
            {
                text = _tokenizer.Decode(output);
                var hit = options.StopStrings.Select(s => (s, i: text.IndexOf(s, StringComparison.Ordinal))).Where(x => x.i >= 0).OrderBy(x => x.i).FirstOrDefault();
                if (hit.s is not null) { text = text[..hit.i]; reason = "stop_string"; break; }
            }
            if (cache.Length >= cache.Capacity) { reason = "max_position_embeddings"; break; }
            logits = _model.ForwardCached(cache, [next], 1, 1);
        }
        if (reason != "stop_string") text = _tokenizer?.Decode(output);
        double seconds = sw.Elapsed.TotalSeconds;
        return new GenerationResult(output, text, reason, seconds > 0 ? output.Count / seconds : 0);
    }
}
