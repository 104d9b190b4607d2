using TorchSharp;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace TransPeft.Bench.Compare;

/// <summary>
/// The same Llama-family decoder in libtorch (TorchSharp-cpu), written functionally over a name → tensor
/// map so it reads the engine's safetensors files by their Hugging Face names. Math as in the golden
/// fixtures: RMSNorm (x·rsqrt(mean x² + eps)·w), rotate-half RoPE, causal GQA attention through
/// scaled_dot_product_attention (k/v heads repeated), SwiGLU, untied head, mean CE over shifted targets.
/// LoRA (PEFT convention): y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ on every projection that has A/B tensors.
/// </summary>
internal sealed class TorchLlama : IDisposable
{
    private readonly ModelConfig _c;
    private readonly Dictionary<string, TorchSharp.Modules.Parameter> _w = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (TorchSharp.Modules.Parameter A, TorchSharp.Modules.Parameter B)> _lora = new(StringComparer.Ordinal);
    /// <summary>Every tensor by its file name (base weights by HF name, LoRA by PEFT key).</summary>
    private readonly Dictionary<string, TorchSharp.Modules.Parameter> _byName = new(StringComparer.Ordinal);
    private readonly float _loraScaling;
    private readonly Tensor _cos, _sin;

    public IReadOnlyList<TorchSharp.Modules.Parameter> BaseParameters => _w.Values.ToList();
    public IReadOnlyList<TorchSharp.Modules.Parameter> LoraParameters => _lora.Values.SelectMany(p => new[] { p.A, p.B }).ToList();

    /// <summary>Loads model.safetensors of <paramref name="modelDir"/> and, when given, a PEFT adapter folder.</summary>
    public TorchLlama(string modelDir, string? adapterDir, float loraScaling, int maxSeq)
    {
        _c = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        using (var r = SafetensorsReader.Open(Path.Combine(modelDir, "model.safetensors")))
            foreach (var name in r.Names) _byName[name] = _w[name] = ToTensor(r, name);
        _loraScaling = loraScaling;
        if (adapterDir is not null)
        {
            using var r = SafetensorsReader.Open(Path.Combine(adapterDir, "adapter_model.safetensors"));
            foreach (var name in r.Names.Where(n => n.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
            {
                // base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight -> model.layers.0.self_attn.q_proj.weight
                string module = name["base_model.model.".Length..^".lora_A.weight".Length];
                string nameB = name.Replace(".lora_A.", ".lora_B.");
                var pair = (ToTensor(r, name), ToTensor(r, nameB));
                _lora[module + ".weight"] = pair;
                _byName[name] = pair.Item1;
                _byName[nameB] = pair.Item2;
            }
        }
        // RoPE tables in float64, as the engine and transformers compute them, then cast.
        int d = _c.HeadDim, half = d / 2;
        var cos = new float[maxSeq * d];
        var sin = new float[maxSeq * d];
        for (int p = 0; p < maxSeq; p++)
            for (int j = 0; j < half; j++)
            {
                double angle = p * (1.0 / Math.Pow(_c.RopeTheta, 2.0 * j / d));
                cos[p * d + j] = cos[p * d + j + half] = (float)Math.Cos(angle);
                sin[p * d + j] = sin[p * d + j + half] = (float)Math.Sin(angle);
            }
        _cos = tensor(cos, [maxSeq, d]);
        _sin = tensor(sin, [maxSeq, d]);
    }

    private static TorchSharp.Modules.Parameter ToTensor(SafetensorsReader r, string name) =>
        new(tensor(r.ReadFloat32(name), r.GetInfo(name).Shape.ToArray()), requires_grad: false);

    /// <summary>Only the LoRA tensors require grad (LoRA step), or only the base weights (full step).</summary>
    public void SetTrainable(bool lora)
    {
        foreach (var t in _w.Values) t.requires_grad_(!lora);
        foreach (var (a, b) in _lora.Values) { a.requires_grad_(lora); b.requires_grad_(lora); }
    }

    public bool UseLora { get; set; }

    /// <summary>A base weight (HF name) or LoRA tensor (PEFT key), as the engine's Parameter.Name spells it.</summary>
    public TorchSharp.Modules.Parameter Named(string name) => _byName.TryGetValue(name, out var t) ? t
        : throw new KeyNotFoundException($"libtorch model has no tensor '{name}'");

    private Tensor Linear(Tensor x, string weight)
    {
        var y = F.linear(x, _w[weight]);
        if (UseLora && _lora.TryGetValue(weight, out var ab))
            y = y + F.linear(F.linear(x, ab.A), ab.B) * _loraScaling;
        return y;
    }

    private Tensor RmsNorm(Tensor x, string weight) =>
        x * (x.pow(2).mean([-1], keepdim: true) + _c.RmsNormEps).rsqrt() * _w[weight];

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
    }

    /// <summary>Mean cross-entropy of ids [B,T] predicting ids shifted by one.</summary>
    public Tensor Loss(Tensor ids)
    {
        long b = ids.shape[0], t = ids.shape[1];
        int nh = _c.NumHeads, nkv = _c.NumKvHeads, d = _c.HeadDim;
        var cos = _cos.narrow(0, 0, t);
        var sin = _sin.narrow(0, 0, t);
        var x = _w["model.embed_tokens.weight"].index_select(0, ids.flatten()).view(b, t, -1);
        for (int l = 0; l < _c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var n1 = RmsNorm(x, p + "input_layernorm.weight");
            var q = Linear(n1, p + "self_attn.q_proj.weight").view(b, t, nh, d).transpose(1, 2);
            var k = Linear(n1, p + "self_attn.k_proj.weight").view(b, t, nkv, d).transpose(1, 2);
            var v = Linear(n1, p + "self_attn.v_proj.weight").view(b, t, nkv, d).transpose(1, 2);
            q = q * cos + RotateHalf(q) * sin;
            k = k * cos + RotateHalf(k) * sin;
            if (nkv != nh)
            {
                k = k.repeat_interleave(nh / nkv, dim: 1);
                v = v.repeat_interleave(nh / nkv, dim: 1);
            }
            var att = F.scaled_dot_product_attention(q, k, v, is_casual: true).transpose(1, 2).reshape(b, t, nh * d);
            var h = x + Linear(att, p + "self_attn.o_proj.weight");
            var n2 = RmsNorm(h, p + "post_attention_layernorm.weight");
            var a = F.silu(Linear(n2, p + "mlp.gate_proj.weight")) * Linear(n2, p + "mlp.up_proj.weight");
            x = h + Linear(a, p + "mlp.down_proj.weight");
        }
        var xf = RmsNorm(x, "model.norm.weight");
        var logits = F.linear(xf.narrow(1, 0, t - 1), _w["lm_head.weight"]);
        var targets = ids.narrow(1, 1, t - 1);
        return F.cross_entropy(logits.reshape(-1, _c.VocabSize), targets.reshape(-1));
    }

    public void Dispose()
    {
        foreach (var t in _w.Values) t.Dispose();
        foreach (var (a, b) in _lora.Values) { a.Dispose(); b.Dispose(); }
        _cos.Dispose(); _sin.Dispose();
    }
}
