using TransPeft.Engine.IO;

namespace TransPeft.Engine.Model;

/// <summary>
/// A Llama-family decoder's weights in fp32 on the CPU, with its config. Loads and saves the
/// Hugging Face layout (config.json + model.safetensors or shards; F32, F16 or BF16 on disk).
/// </summary>
public sealed class TransformerModel
{
    public ModelConfig Config { get; }
    internal Parameter Embed { get; }
    internal LayerWeights[] Layers { get; }
    internal Parameter FinalNorm { get; }
    /// <summary>The output head; null when tied to the embedding.</summary>
    internal Parameter? LmHead { get; }
    /// <summary>The matrix the output head multiplies by: lm_head, or the embedding when tied.</summary>
    internal Parameter Head => LmHead ?? Embed;

    internal TransformerModel(ModelConfig config, Parameter embed, LayerWeights[] layers, Parameter finalNorm, Parameter? lmHead)
    {
        Config = config; Embed = embed; Layers = layers; FinalNorm = finalNorm; LmHead = lmHead;
    }

    /// <summary>Every tensor with its Hugging Face name, in file order of a freshly written model.</summary>
    internal IEnumerable<Parameter> Parameters()
    {
        yield return Embed;
        foreach (var l in Layers) foreach (var p in l.All()) yield return p;
        yield return FinalNorm;
        if (LmHead is not null) yield return LmHead;
    }

    public long ParameterCount => Parameters().Sum(p => (long)p.Length);

    /// <summary>Loads config.json and the weights of a Hugging Face model folder.</summary>
    /// <param name="memoryLimit">Most bytes the weights may take (null: what the process can use, <see cref="MemoryBudget.Available"/>);
    /// a model beyond it is refused with a <see cref="MemoryBudgetException"/> before anything is allocated.</param>
    public static TransformerModel Load(string dir, long? memoryLimit = null)
    {
        var config = ModelConfig.Load(Path.Combine(dir, "config.json"));
        RequireMemory(config, dir, memoryLimit);
        using var ck = SafetensorsCheckpoint.Open(dir);
        return Assemble(config, dir, ck, (name, shape) =>
        {
            var data = ck.ReadFloat32(name);
            NonFiniteValueException.ThrowIfAny(data, ck.ReaderOf(name).Path, $"tensor '{name}'");
            return new Parameter(name, shape, data);
        }, null);
    }

    /// <summary>
    /// Opens a model folder without reading the weights: the same checks of names, shapes and dtypes as
    /// <see cref="Load"/>, but every parameter stays in the memory-mapped file until its fp32 values are first read
    /// (then they are converted and checked finite, as <see cref="Load"/> does up front). The CUDA backend uploads
    /// such parameters in bf16 straight from the mapping, so no fp32 copy of the weights ever exists on the host.
    /// Allocates nothing for the weights, so it checks no memory budget: whoever materialises or uploads them does.
    /// </summary>
    internal static TransformerModel OpenLazy(string dir)
    {
        var config = ModelConfig.Load(Path.Combine(dir, "config.json"));
        var ck = SafetensorsCheckpoint.Open(dir);
        try
        {
            var weights = new CheckpointWeights(ck);
            return Assemble(config, dir, ck, (name, shape) => new Parameter(name, shape, weights.Tensor(name)), weights);
        }
        catch
        {
            ck.Dispose();
            throw;
        }
    }

    /// <summary>The model's tensors from a checkpoint, each checked against the shape config.json implies, read by
    /// <paramref name="read"/>; a tensor the config does not explain is an error.</summary>
    private static TransformerModel Assemble(ModelConfig config, string dir, SafetensorsCheckpoint ck,
        Func<string, int[], Parameter> read, CheckpointWeights? lazySource)
    {
        var known = new HashSet<string>(StringComparer.Ordinal);

        Parameter Read(string name, params int[] shape)
        {
            known.Add(name);
            if (!ck.Contains(name)) throw new SafetensorsFormatException(dir, name, $"required tensor is missing (config.json implies shape [{string.Join(", ", shape)}])");
            var info = ck.GetInfo(name);
            if (!info.Shape.SequenceEqual(shape.Select(x => (long)x)))
                throw new SafetensorsFormatException(ck.ReaderOf(name).Path, name,
                    $"shape [{string.Join(", ", info.Shape)}] does not match config.json, which implies [{string.Join(", ", shape)}]");
            return read(name, shape);
        }
        Parameter? ReadOptional(string name, params int[] shape) => ck.Contains(name) ? Read(name, shape) : null;

        int h = config.HiddenSize;
        var embed = Read("model.embed_tokens.weight", config.VocabSize, h);
        var layers = new LayerWeights[config.NumLayers];
        for (int l = 0; l < config.NumLayers; l++) layers[l] = LayerWeights.Build(config, l, Read, ReadOptional);
        var norm = Read("model.norm.weight", h);
        Parameter? head = null;
        if (!config.TieWordEmbeddings) head = Read("lm_head.weight", config.VocabSize, h);
        else if (ck.Contains("lm_head.weight")) known.Add("lm_head.weight"); // some tied checkpoints still carry a copy; the embedding is used

        var unknown = ck.Names.Where(n => !known.Contains(n) && !n.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)).ToList();
        if (unknown.Count > 0)
            throw new SafetensorsFormatException(ck.ReaderOf(unknown[0]).Path, unknown[0],
                $"tensor is not part of a {config.ModelType} model with this config ({unknown.Count} unexpected tensor(s))");
        return new TransformerModel(config, embed, layers, norm, head) { Checkpoint = lazySource };
    }

    /// <summary>The mapped checkpoint behind lazy parameters (<see cref="OpenLazy"/>); null for a model read eagerly or built in memory.</summary>
    internal CheckpointWeights? Checkpoint { get; private init; }

    /// <summary>Reads every lazy parameter's fp32 values now (the CPU backend computes on them), checking the memory
    /// they take against <paramref name="memoryLimit"/> first.</summary>
    internal void Materialise(long? memoryLimit)
    {
        if (Checkpoint is null) return;
        RequireMemory(Config, Checkpoint.Directory, memoryLimit);
        foreach (var p in Parameters()) _ = p.Data;
    }

    /// <summary>
    /// Writes config.json and the weights in fp32, bf16 or fp16: one model.safetensors, or, with
    /// <paramref name="maxShardBytes"/>, model-0000i-of-0000n.safetensors shards plus
    /// model.safetensors.index.json as transformers writes them. Every file is written atomically.
    /// </summary>
    public void Save(string dir, SafetensorsDType dtype = SafetensorsDType.F32, long? maxShardBytes = null)
    {
        var tensors = Parameters().Select(p => (p.Name, p.Data, p.LongShape)).ToList();
        SafetensorsCheckpoint.Save(dir, tensors, dtype, maxShardBytes);
        var cfg = Config.ToJson();
        cfg["torch_dtype"] = dtype switch { SafetensorsDType.BF16 => "bfloat16", SafetensorsDType.F16 => "float16", _ => "float32" };
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// A randomly initialised model as transformers initialises one: every linear and embedding
    /// weight ~ N(0, initStd²), norms 1, biases 0. Deterministic for a seed.
    /// </summary>
    /// <param name="memoryLimit">As for <see cref="Load"/>.</param>
    public static TransformerModel CreateRandom(ModelConfig config, int seed, double initStd = 0.02, long? memoryLimit = null)
    {
        config.Validate("(model config)");
        RequireMemory(config, "(model config)", memoryLimit);
        var rng = new Random(seed);
        Parameter Normal(string name, params int[] shape)
        {
            var p = Parameter.Zeros(name, shape);
            for (int k = 0; k < p.Length; k += 2)
            {
                // Box-Muller: two independent normals from two uniforms.
                double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                double r = Math.Sqrt(-2.0 * Math.Log(u1)) * initStd;
                p.Data[k] = (float)(r * Math.Cos(2 * Math.PI * u2));
                if (k + 1 < p.Length) p.Data[k + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
            }
            return p;
        }
        Parameter Ones(string name, int n) { var p = Parameter.Zeros(name, n); Array.Fill(p.Data, 1f); return p; }

        int h = config.HiddenSize, q = config.QDim, kv = config.KvDim, i = config.IntermediateSize;
        var embed = Normal("model.embed_tokens.weight", config.VocabSize, h);
        var layers = new LayerWeights[config.NumLayers];
        // Norm weights start at 1, every other weight ~ N(0, std²), biases (where the architecture has them) at 0.
        Parameter Weight(string name, int[] shape) => name.EndsWith("layernorm.weight", StringComparison.Ordinal) ? Ones(name, shape[0]) : Normal(name, shape);
        Parameter? Bias(string name, int[] shape) =>
            (name.Contains(".o_proj.", StringComparison.Ordinal) ? config.OBias : config.QkvBias) ? Parameter.Zeros(name, shape) : null;
        for (int l = 0; l < config.NumLayers; l++) layers[l] = LayerWeights.Build(config, l, Weight, Bias);
        var norm = Ones("model.norm.weight", h);
        var head = config.TieWordEmbeddings ? null : Normal("lm_head.weight", config.VocabSize, h);
        return new TransformerModel(config, embed, layers, norm, head);
    }

    /// <summary>The fp32 weights a config implies, against the memory available, before any is allocated.</summary>
    internal static void RequireMemory(ModelConfig config, string source, long? limit)
    {
        long count;
        try { count = config.ParameterCount(); }
        catch (OverflowException) { throw new ModelConfigException(source, "(sizes)", "a parameter count that fits 64 bits"); }
        MemoryBudget.Require(MemoryBudget.Fp32Bytes(count, source), $"{source}: the model's {count:N0} fp32 parameters", limit);
    }

    /// <summary>A deep copy (weights duplicated in fp32, no gradients); lazy parameters of this model stay lazy.</summary>
    internal TransformerModel Clone()
    {
        Parameter C(Parameter p) => new(p.Name, (int[])p.Shape.Clone(), p.CopyData());
        Parameter? CO(Parameter? p) => p is null ? null : C(p);
        var layers = Layers.Select(l => new LayerWeights
        {
            InputNorm = C(l.InputNorm), Q = C(l.Q), K = C(l.K), V = C(l.V), O = C(l.O),
            QBias = CO(l.QBias), KBias = CO(l.KBias), VBias = CO(l.VBias), OBias = CO(l.OBias),
            PostNorm = C(l.PostNorm), Gate = C(l.Gate), Up = C(l.Up), Down = C(l.Down),
        }).ToArray();
        return new TransformerModel(Config, C(Embed), layers, C(FinalNorm), CO(LmHead));
    }
}
