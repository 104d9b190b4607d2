using System.Numerics;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Model.Bert;

/// <summary>Names and shapes of a BERT encoder's weights, as Hugging Face's BertModel stores them.</summary>
public static class BertWeights
{
    /// <summary>PEFT's module names for LoRA on BERT (suffix-matched, as PEFT does).</summary>
    public static readonly string[] LoraTargetModules = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"];

    /// <summary>Every tensor the encoder needs (the pooler is optional and unused), in file order.</summary>
    public static IEnumerable<(string Name, long[] Shape)> ExpectedShapes(BertConfig c)
    {
        long h = c.HiddenSize, i = c.IntermediateSize;
        yield return ("embeddings.word_embeddings.weight", [c.VocabSize, h]);
        yield return ("embeddings.position_embeddings.weight", [c.MaxPositionEmbeddings, h]);
        yield return ("embeddings.token_type_embeddings.weight", [c.TypeVocabSize, h]);
        yield return ("embeddings.LayerNorm.weight", [h]);
        yield return ("embeddings.LayerNorm.bias", [h]);
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"encoder.layer.{l}.";
            foreach (var m in new[] { "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense" })
            {
                yield return (p + m + ".weight", [h, h]);
                yield return (p + m + ".bias", [h]);
            }
            yield return (p + "attention.output.LayerNorm.weight", [h]);
            yield return (p + "attention.output.LayerNorm.bias", [h]);
            yield return (p + "intermediate.dense.weight", [i, h]);
            yield return (p + "intermediate.dense.bias", [i]);
            yield return (p + "output.dense.weight", [h, i]);
            yield return (p + "output.dense.bias", [h]);
            yield return (p + "output.LayerNorm.weight", [h]);
            yield return (p + "output.LayerNorm.bias", [h]);
        }
    }
}

/// <summary>One named tensor of a BERT encoder, adapter or head, in T (fp32 in production, fp64 in gradient checks).</summary>
internal sealed class BertTensor<T>(string name, int[] shape, T[] data) where T : unmanaged, IFloatingPointIeee754<T>
{
    public string Name { get; } = name;
    public int[] Shape { get; } = shape;
    public T[] Data { get; } = data.Length == shape.Aggregate(1, (a, b) => a * b)
        ? data : throw new ArgumentException($"tensor '{name}': {data.Length} values for shape [{string.Join(",", shape)}]");
    /// <summary>Gradient accumulator; null for frozen tensors (nothing is computed for them).</summary>
    public T[]? Grad { get; private set; }

    public static BertTensor<T> Zeros(string name, params int[] shape) => new(name, shape, new T[shape.Aggregate(1, (a, b) => a * b)]);
    public void EnableGrad() => Grad ??= new T[Data.Length];
    public void ZeroGrad() { if (Grad is not null) Array.Clear(Grad); }
}

/// <summary>A LoRA module on one BERT linear: A [r, in], B [out, r], y += scaling · x·Aᵀ·Bᵀ.</summary>
internal sealed class BertLoraModule<T>(BertTensor<T> a, BertTensor<T> b, double scaling) where T : unmanaged, IFloatingPointIeee754<T>
{
    public BertTensor<T> A { get; } = a;
    public BertTensor<T> B { get; } = b;
    public double Scaling { get; } = scaling;
    public int Rank => A.Shape[0];
}

/// <summary>A linear layer with bias (every BERT linear has one) and an optional LoRA module. W is [out, in].</summary>
internal sealed class BertLinear<T>(string module, BertTensor<T> weight, BertTensor<T> bias) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The Hugging Face module path, e.g. "encoder.layer.0.attention.self.query".</summary>
    public string Module { get; } = module;
    public BertTensor<T> Weight { get; } = weight;
    public BertTensor<T> Bias { get; } = bias;
    public BertLoraModule<T>? Lora { get; set; }
    public int In => Weight.Shape[1];
    public int Out => Weight.Shape[0];
}

internal sealed class BertLayerParams<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public required BertLinear<T> Query, Key, Value, AttentionOutput, Intermediate, Output;
    public required BertTensor<T> AttentionLnWeight, AttentionLnBias, OutputLnWeight, OutputLnBias;

    public IEnumerable<BertLinear<T>> Linears => [Query, Key, Value, AttentionOutput, Intermediate, Output];
}

/// <summary>All weights of a BERT encoder in T, laid out per layer.</summary>
internal sealed class BertParams<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public required BertConfig Config { get; init; }
    public required BertTensor<T> WordEmbeddings, PositionEmbeddings, TokenTypeEmbeddings, EmbeddingLnWeight, EmbeddingLnBias;
    public required BertLayerParams<T>[] Layers { get; init; }

    public IEnumerable<BertLinear<T>> Linears => Layers.SelectMany(l => l.Linears);

    /// <summary>Builds the encoder from a name → fp32 values lookup (a safetensors file, an ONNX import).</summary>
    public static BertParams<T> Create(BertConfig c, Func<string, float[]> read)
    {
        var shapes = BertWeights.ExpectedShapes(c).ToDictionary(x => x.Name, x => Array.ConvertAll(x.Shape, d => (int)d));
        BertTensor<T> Get(string name) => new(name, shapes[name], Array.ConvertAll(read(name), T.CreateTruncating));
        BertLinear<T> Linear(string module) => new(module, Get(module + ".weight"), Get(module + ".bias"));
        var layers = new BertLayerParams<T>[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"encoder.layer.{l}.";
            layers[l] = new BertLayerParams<T>
            {
                Query = Linear(p + "attention.self.query"),
                Key = Linear(p + "attention.self.key"),
                Value = Linear(p + "attention.self.value"),
                AttentionOutput = Linear(p + "attention.output.dense"),
                AttentionLnWeight = Get(p + "attention.output.LayerNorm.weight"),
                AttentionLnBias = Get(p + "attention.output.LayerNorm.bias"),
                Intermediate = Linear(p + "intermediate.dense"),
                Output = Linear(p + "output.dense"),
                OutputLnWeight = Get(p + "output.LayerNorm.weight"),
                OutputLnBias = Get(p + "output.LayerNorm.bias"),
            };
        }
        return new BertParams<T>
        {
            Config = c,
            WordEmbeddings = Get("embeddings.word_embeddings.weight"),
            PositionEmbeddings = Get("embeddings.position_embeddings.weight"),
            TokenTypeEmbeddings = Get("embeddings.token_type_embeddings.weight"),
            EmbeddingLnWeight = Get("embeddings.LayerNorm.weight"),
            EmbeddingLnBias = Get("embeddings.LayerNorm.bias"),
            Layers = layers,
        };
    }

    /// <summary>Loads model.safetensors of an HF BERT folder, checking every shape against config.json.</summary>
    public static BertParams<T> Load(string dir, BertConfig c)
    {
        var file = Path.Combine(dir, "model.safetensors");
        using var st = SafetensorsReader.Open(file);
        foreach (var (name, shape) in BertWeights.ExpectedShapes(c))
        {
            if (!st.Contains(name)) throw new ModelConfigException(file, name, "this BERT weight; it is missing");
            var have = st.GetInfo(name).Shape;
            if (!have.SequenceEqual(shape))
                throw new ModelConfigException(file, name, $"shape [{string.Join(",", shape)}] (from config.json), found [{string.Join(",", have)}]");
        }
        return Create(c, st.ReadFloat32);
    }
}
