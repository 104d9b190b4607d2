using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cpu.Bert;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.TransPeft;
using PoolingOps = TransPeft.Engine.Compute.Cpu.Bert.Pooling;

namespace TransPeft.Engine.Training.Bert;

/// <summary>One labelled text.</summary>
public sealed record LabelledText(string Text, int Label);

/// <summary>
/// A LoRA adapter on a BERT encoder plus a linear classification head on its pooled sentence vector, trained with
/// cross-entropy (optionally with Trans-PEFT's FFN masking and dropping), saved as a PEFT folder: adapter_config.json
/// (task_type SEQ_CLS, modules_to_save ["classifier"]) and adapter_model.safetensors with
/// <c>base_model.model.bert.encoder.layer.N.….lora_A.weight</c> and the head as <c>base_model.model.classifier.weight/bias</c>,
/// the names PEFT writes for a BertForSequenceClassification. One difference from HF's head, recorded in the file's
/// metadata: the head reads the sentence pooling (mean or CLS token) directly, not BERT's tanh pooler.
/// </summary>
public sealed class BertSequenceClassifier
{
    private const string KeyPrefix = "base_model.model.bert.", HeadPrefix = "base_model.model.classifier.";

    private BertSequenceClassifier(string[] labels, int rank, double alpha, BertPooling pooling, int maxTokens,
        Dictionary<string, (float[] A, float[] B)> lora, float[] headW, float[] headB, TransPeftSettings? transPeft)
    {
        Labels = labels; Rank = rank; Alpha = alpha; Pooling = pooling; MaxTokens = maxTokens;
        Lora = lora; HeadWeight = headW; HeadBias = headB; TransPeft = transPeft;
    }

    public IReadOnlyList<string> Labels { get; }
    public int Rank { get; }
    public double Alpha { get; }
    public BertPooling Pooling { get; }
    public int MaxTokens { get; }
    public TransPeftSettings? TransPeft { get; }
    /// <summary>LoRA A [r, in] and B [out, r] by HF module path (e.g. encoder.layer.0.attention.self.query).</summary>
    internal Dictionary<string, (float[] A, float[] B)> Lora { get; }
    internal float[] HeadWeight { get; }
    internal float[] HeadBias { get; }

    /// <summary>
    /// Trains an adapter and head on <paramref name="model"/>. Deterministic for a seed: the LoRA A and head
    /// initialisation, the batch order and the Trans-PEFT draws all come from it. <paramref name="progress"/> gets
    /// (step, loss) after each step.
    /// </summary>
    public static BertSequenceClassifier Train(BertModel model, IReadOnlyList<LabelledText> train, IReadOnlyList<string> labels,
        BertClassifierOptions o, Action<int, double>? progress = null, CancellationToken cancellationToken = default)
    {
        o.Validate();
        if (train.Count == 0) throw new ArgumentException("no training examples");
        if (labels.Count < 2) throw new ArgumentException("a classifier needs at least two labels");
        foreach (var x in train)
            if ((uint)x.Label >= (uint)labels.Count) throw new ArgumentException($"label {x.Label} of \"{Short(x.Text)}\" is outside 0..{labels.Count - 1}");
        var rng = new Random(unchecked((int)o.Seed * 7919 + 17));
        var p = WithFreshLora(model.Params, o.Rank, o.Alpha, rng);
        int h = model.Config.HiddenSize, k = labels.Count;
        var head = NewHead<float>(h, k, rng);
        var trainables = p.Linears.SelectMany(l => new[] { l.Lora!.A, l.Lora.B }).Concat([head.Weight, head.Bias]).ToList();
        foreach (var t in trainables) t.EnableGrad();
        var optimizer = new AdamW(trainables.Select(t => new Parameter(t.Name, t.Shape, t.Data, t.Grad!)).ToList(), 0.9, 0.999, 1e-8, o.WeightDecay);

        var encoded = train.Select(x => model.Encode(x.Text, o.MaxTokens)).ToArray();
        var encoder = new BertEncoder<float>(p);
        var order = new int[train.Count];
        int cursor = order.Length;
        for (int step = 0; step < o.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = new int[Math.Min(o.BatchSize, train.Count)];
            for (int i = 0; i < batch.Length; i++)
            {
                if (cursor == order.Length) { for (int j = 0; j < order.Length; j++) order[j] = j; rng.Shuffle(order); cursor = 0; }
                batch[i] = order[cursor++];
            }
            foreach (var t in trainables) t.ZeroGrad();
            var perturbation = o.PMask > 0 || o.PDrop > 0
                ? new PhiloxFfnPerturbation(new RandomStream(o.Seed, (uint)step, 0), o.PMask, o.PDrop) : null;
            double loss = ForwardBackward(encoder, head, batch.Select(i => encoded[i]).ToArray(), batch.Select(i => train[i].Label).ToArray(), o.Pooling, k, perturbation);
            if (!double.IsFinite(loss)) throw new TrainingDivergedException(step, "cross-entropy loss", null);
            optimizer.Update(o.LearningRate);
            progress?.Invoke(step + 1, loss);
        }
        var lora = p.Linears.ToDictionary(l => l.Module, l => (l.Lora!.A.Data, l.Lora.B.Data));
        var settings = o.PMask > 0 || o.PDrop > 0 ? new TransPeftSettings { PMask = o.PMask, PDrop = o.PDrop, Seed = o.Seed } : null;
        return new BertSequenceClassifier([.. labels], o.Rank, o.Alpha, o.Pooling, o.MaxTokens, lora, head.Weight.Data, head.Bias.Data, settings);
    }

    /// <summary>Mean cross-entropy of one batch; gradients accumulated into every enabled tensor.</summary>
    internal static double ForwardBackward<T>(BertEncoder<T> encoder, BertLinear<T> head, int[][] seqs, int[] labels, BertPooling pooling, int k,
        FfnPerturbation? perturbation) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int b = seqs.Length, h = encoder.Config.HiddenSize;
        var (ids, valid, t) = BertEmbedder.PadBatch(seqs);
        var hidden = encoder.Forward(ids, null, valid, b, t, perturbation);
        var pooled = new T[b * h];
        PoolingOps.Forward(pooled, hidden, valid, b, t, h, pooling);
        var logits = new T[b * k];
        BertLinearOps.Forward(logits, pooled, b, head, null);
        // softmax cross-entropy, mean over the batch: dlogits = (softmax − onehot) / B
        double loss = 0;
        var dlogits = new T[b * k];
        T invB = T.One / T.CreateChecked(b);
        for (int i = 0; i < b; i++)
        {
            var row = logits.AsSpan(i * k, k);
            var d = dlogits.AsSpan(i * k, k);
            T max = TensorPrimitives.Max<T>(row);
            TensorPrimitives.Subtract(row, max, d);
            TensorPrimitives.Exp<T>(d, d);
            T sum = TensorPrimitives.Sum<T>(d);
            loss += double.CreateChecked(T.Log(sum) + max - row[labels[i]]);
            TensorPrimitives.Divide(d, sum, d);
            d[labels[i]] -= T.One;
            TensorPrimitives.Multiply(d, invB, d);
        }
        var dpooled = new T[b * h];
        BertLinearOps.Backward(dpooled, dlogits, pooled, b, head, null);
        var dhidden = new T[b * t * h];
        PoolingOps.Backward(dhidden, dpooled, valid, b, t, h, pooling);
        encoder.Backward(dhidden);
        return loss / b;
    }

    /// <summary>The encoder's weights shared (frozen) with fresh LoRA modules on PEFT's six BERT modules: A ~ U(±1/√in) (PEFT's kaiming-uniform), B = 0.</summary>
    internal static BertParams<T> WithFreshLora<T>(BertParams<T> base_, int rank, double alpha, Random rng) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var p = ShallowCopy(base_);
        foreach (var lin in p.Linears)
        {
            double bound = 1 / Math.Sqrt(lin.In);
            var a = new T[rank * lin.In];
            for (int i = 0; i < a.Length; i++) a[i] = T.CreateTruncating((rng.NextDouble() * 2 - 1) * bound);
            lin.Lora = new BertLoraModule<T>(new BertTensor<T>(lin.Module + ".lora_A", [rank, lin.In], a),
                BertTensor<T>.Zeros(lin.Module + ".lora_B", lin.Out, rank), alpha / rank);
        }
        return p;
    }

    /// <summary>New linear objects over the same (frozen) weight arrays, so LoRA modules attach per classifier.</summary>
    private static BertParams<T> ShallowCopy<T>(BertParams<T> s) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        static BertLinear<T> L(BertLinear<T> l) => new(l.Module, l.Weight, l.Bias);
        return new BertParams<T>
        {
            Config = s.Config, WordEmbeddings = s.WordEmbeddings, PositionEmbeddings = s.PositionEmbeddings, TokenTypeEmbeddings = s.TokenTypeEmbeddings,
            EmbeddingLnWeight = s.EmbeddingLnWeight, EmbeddingLnBias = s.EmbeddingLnBias,
            Layers = s.Layers.Select(l => new BertLayerParams<T>
            {
                Query = L(l.Query), Key = L(l.Key), Value = L(l.Value), AttentionOutput = L(l.AttentionOutput), Intermediate = L(l.Intermediate), Output = L(l.Output),
                AttentionLnWeight = l.AttentionLnWeight, AttentionLnBias = l.AttentionLnBias, OutputLnWeight = l.OutputLnWeight, OutputLnBias = l.OutputLnBias,
            }).ToArray(),
        };
    }

    /// <summary>PyTorch's nn.Linear initialisation: weight and bias ~ U(±1/√in).</summary>
    internal static BertLinear<T> NewHead<T>(int hidden, int k, Random rng) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        double bound = 1 / Math.Sqrt(hidden);
        T U() => T.CreateTruncating((rng.NextDouble() * 2 - 1) * bound);
        var w = new T[k * hidden]; for (int i = 0; i < w.Length; i++) w[i] = U();
        var b = new T[k]; for (int i = 0; i < k; i++) b[i] = U();
        return new BertLinear<T>("classifier", new BertTensor<T>("classifier.weight", [k, hidden], w), new BertTensor<T>("classifier.bias", [k], b));
    }

    /// <summary>Class probabilities [texts, labels] with this adapter and head on <paramref name="model"/> (which may be another base than the one trained on: transfer).</summary>
    public float[][] Predict(BertModel model, IReadOnlyList<string> texts, int batchSize = 32)
    {
        var p = ShallowCopy(model.Params);
        foreach (var lin in p.Linears)
        {
            if (!Lora.TryGetValue(lin.Module, out var ab)) throw new InvalidOperationException($"adapter has no LoRA weights for module '{lin.Module}'");
            if (ab.A.Length != Rank * lin.In || ab.B.Length != lin.Out * Rank)
                throw new InvalidOperationException($"adapter module '{lin.Module}': shapes do not fit this base (in {lin.In}, out {lin.Out}, r {Rank})");
            lin.Lora = new BertLoraModule<float>(new BertTensor<float>(lin.Module + ".lora_A", [Rank, lin.In], ab.A), new BertTensor<float>(lin.Module + ".lora_B", [lin.Out, Rank], ab.B), Alpha / Rank);
        }
        int h = model.Config.HiddenSize, k = Labels.Count;
        if (HeadWeight.Length != k * h) throw new InvalidOperationException($"classifier head is [{k}, {HeadWeight.Length / k}], the base's hidden size is {h}");
        var head = new BertLinear<float>("classifier", new BertTensor<float>("classifier.weight", [k, h], HeadWeight), new BertTensor<float>("classifier.bias", [k], HeadBias));
        var encoder = new BertEncoder<float>(p);
        var result = new float[texts.Count][];
        for (int start = 0; start < texts.Count; start += batchSize)
        {
            int b = Math.Min(batchSize, texts.Count - start);
            var seqs = Enumerable.Range(start, b).Select(i => model.Encode(texts[i], MaxTokens)).ToArray();
            var (ids, valid, t) = BertEmbedder.PadBatch(seqs);
            var hidden = encoder.Forward(ids, null, valid, b, t);
            var pooled = new float[b * h];
            PoolingOps.Forward(pooled, hidden, valid, b, t, h, Pooling);
            var logits = new float[b * k];
            BertLinearOps.Forward(logits, pooled, b, head, null);
            for (int i = 0; i < b; i++)
            {
                var row = logits.AsSpan(i * k, k).ToArray();
                TensorPrimitives.SoftMax(row, row);
                result[start + i] = row;
            }
        }
        return result;
    }

    /// <summary>Accuracy on labelled texts with its 95% Wilson interval.</summary>
    public (int Correct, int Total, ConfidenceInterval Interval) Evaluate(BertModel model, IReadOnlyList<LabelledText> test)
    {
        var probs = Predict(model, test.Select(x => x.Text).ToList());
        int correct = 0;
        for (int i = 0; i < test.Count; i++)
            if (TensorPrimitives.IndexOfMax<float>(probs[i]) == test[i].Label) correct++;
        return (correct, test.Count, Statistics.Wilson(correct, test.Count));
    }

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (temp files renamed into place).</summary>
    public void Save(string dir, string baseModel)
    {
        Directory.CreateDirectory(dir);
        var w = new SafetensorsWriter()
            .AddMetadata("format", "pt")
            .AddMetadata("tpeft_head_input", Pooling == BertPooling.Cls ? "cls" : "mean")
            .AddMetadata("tpeft_labels", new JsonArray(Labels.Select(l => (JsonNode)l).ToArray()).ToJsonString())
            .AddMetadata("tpeft_max_tokens", MaxTokens.ToString(CultureInfo.InvariantCulture));
        if (TransPeft is not null) w.AddMetadata(TransPeftSettings.MetadataKey, TransPeft.ToJson());
        foreach (var (module, (a, b)) in Lora)
        {
            long @in = a.Length / Rank, @out = b.Length / Rank;
            w.AddFloat($"{KeyPrefix}{module}.lora_A.weight", a, [Rank, @in]);
            w.AddFloat($"{KeyPrefix}{module}.lora_B.weight", b, [@out, Rank]);
        }
        w.AddFloat(HeadPrefix + "weight", HeadWeight, [Labels.Count, HeadWeight.Length / Labels.Count]);
        w.AddFloat(HeadPrefix + "bias", HeadBias, [Labels.Count]);
        w.Save(Path.Combine(dir, "adapter_model.safetensors"));
        AtomicFile.WriteAllText(Path.Combine(dir, "adapter_config.json"), new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "SEQ_CLS",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = Rank,
            ["lora_alpha"] = Alpha,
            ["lora_dropout"] = 0.0,
            ["target_modules"] = new JsonArray(BertWeights.LoraTargetModules.Select(m => (JsonNode)m).ToArray()),
            ["modules_to_save"] = new JsonArray("classifier"),
            ["bias"] = "none",
            ["use_rslora"] = false,
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads a folder written by <see cref="Save"/>; errors name the file and the field.</summary>
    public static BertSequenceClassifier Load(string dir)
    {
        var cfgPath = Path.Combine(dir, "adapter_config.json");
        if (!File.Exists(cfgPath)) throw new ModelConfigException(cfgPath, "(file)", "an adapter_config.json (PEFT LoRA, task_type SEQ_CLS)");
        var cfg = JsonInput.ReadConfigObject(cfgPath);
        if (cfg["task_type"]?.GetValue<string>() != "SEQ_CLS") throw new ModelConfigException(cfgPath, "task_type", "'SEQ_CLS' (a sequence-classification adapter)");
        int r = cfg["r"]?.GetValue<int>() ?? throw new ModelConfigException(cfgPath, "r", "the LoRA rank");
        double alpha = cfg["lora_alpha"]?.GetValue<double>() ?? throw new ModelConfigException(cfgPath, "lora_alpha", "a number");
        var file = Path.Combine(dir, "adapter_model.safetensors");
        using var st = SafetensorsReader.Open(file);
        string Meta(string key) => st.Metadata.TryGetValue(key, out var v) ? v : throw new SafetensorsFormatException(file, null, $"metadata '{key}' is missing (not written by tpeft's BERT classifier)");
        var labels = (JsonNode.Parse(Meta("tpeft_labels")) as JsonArray)?.Select(n => n?.GetValue<string>() ?? "").ToArray()
            ?? throw new SafetensorsFormatException(file, null, "metadata 'tpeft_labels' must be a JSON array of label names");
        var pooling = Meta("tpeft_head_input") == "cls" ? BertPooling.Cls : BertPooling.Mean;
        int maxTokens = int.Parse(Meta("tpeft_max_tokens"), CultureInfo.InvariantCulture);
        var lora = new Dictionary<string, (float[], float[])>(StringComparer.Ordinal);
        foreach (var name in st.Names.Where(n => n.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
        {
            var module = name[KeyPrefix.Length..^".lora_A.weight".Length];
            var bName = $"{KeyPrefix}{module}.lora_B.weight";
            if (!st.Contains(bName)) throw new SafetensorsFormatException(file, bName, "LoRA B for this A is missing");
            lora[module] = (st.ReadFloat32(name), st.ReadFloat32(bName));
        }
        var settings = st.Metadata.TryGetValue(TransPeftSettings.MetadataKey, out var tp) ? TransPeftSettings.Parse(tp, file) : null;
        return new BertSequenceClassifier(labels, r, alpha, pooling, maxTokens, lora, st.ReadFloat32(HeadPrefix + "weight"), st.ReadFloat32(HeadPrefix + "bias"), settings);
    }

    private static string Short(string s) => s.Length > 40 ? s[..37] + "..." : s;
}
