using System.Diagnostics;
using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Compute;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Inference;

/// <summary>
/// Autoregressive generation with a KV cache on any backend: one prefill pass over the prompt, then one
/// single-token pass per new token (<see cref="GenerationLoop"/>). Sampling: greedy, or temperature → top-k →
/// top-p, seeded. Hosts normally generate through <see cref="Sessions.InferenceContext"/>, which streams.
/// </summary>
public sealed class Generator
{
    private readonly IInferenceModel _model;
    private readonly Tokenizer? _tokenizer;

    /// <summary>Generation on the CPU backend for one model and optional adapter.</summary>
    public Generator(TransformerModel model, LoraAdapter? adapter = null, Tokenizer? tokenizer = null)
        : this(CpuTransformer.ForInference(model, adapter), tokenizer) { }

    internal Generator(IInferenceModel model, Tokenizer? tokenizer)
    {
        _model = model;
        _tokenizer = tokenizer;
    }

    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancel = default)
    {
        var loop = new GenerationLoop(_model, _tokenizer);
        var sw = Stopwatch.StartNew();
        using var cache = loop.Start(promptIds, options, null); // a CUDA cache's device slot goes back at the end
        while (loop.Step() >= 0) cancel.ThrowIfCancellationRequested();
        double seconds = sw.Elapsed.TotalSeconds;
        return new GenerationResult(loop.Output.ToArray(), loop.Text(), loop.StopReason!, seconds > 0 ? loop.Output.Count / seconds : 0);
    }
}
