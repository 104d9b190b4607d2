using TransPeft.Engine.IO;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Model.Bert;

/// <summary>
/// A BERT encoder loaded from a Hugging Face folder (config.json of model_type bert, model.safetensors, vocab.txt
/// and optionally sentence-transformers' 1_Pooling/config.json). Immutable once loaded: share it across threads;
/// each <see cref="BertEmbedder"/> call keeps its own activations.
/// </summary>
public sealed class BertModel
{
    private BertModel(string dir, BertConfig config, BertParams<float> weights, BertTokenizer tokenizer, BertPooling pooling)
    {
        Directory = dir; Config = config; Params = weights; Tokenizer = tokenizer; DefaultPooling = pooling;
    }

    public string Directory { get; }
    public BertConfig Config { get; }
    /// <summary>Lower-casing WordPiece tokenizer read from vocab.txt (ML.Tokenizers' BertTokenizer, HF's ids).</summary>
    public BertTokenizer Tokenizer { get; }
    /// <summary>The pooling named in 1_Pooling/config.json; Mean when the folder has none.</summary>
    public BertPooling DefaultPooling { get; }
    internal BertParams<float> Params { get; }

    /// <summary>Loads an HF BERT folder; errors name the file and field.</summary>
    public static BertModel Load(string dir)
    {
        var config = BertConfig.Load(Path.Combine(dir, "config.json"));
        var vocab = Path.Combine(dir, "vocab.txt");
        if (!File.Exists(vocab)) throw new ModelConfigException(vocab, "(file)", "vocab.txt (WordPiece vocabulary) next to config.json");
        bool lower = true;
        var tokCfg = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(tokCfg) && JsonInput.ReadConfigObject(tokCfg) is var tc && tc["do_lower_case"] is JsonValue dl)
            lower = dl.GetValue<bool>();
        var tokenizer = BertTokenizer.Create(vocab, new BertOptions { LowerCaseBeforeTokenization = lower });
        var weights = BertParams<float>.Load(dir, config);
        return new BertModel(dir, config, weights, tokenizer, ReadPooling(dir));
    }

    /// <summary>sentence-transformers' pooling config: CLS when pooling_mode_cls_token is true, else mean.</summary>
    public static BertPooling ReadPooling(string dir)
    {
        var path = Path.Combine(dir, "1_Pooling", "config.json");
        if (!File.Exists(path)) return BertPooling.Mean;
        var o = JsonInput.ReadConfigObject(path);
        if (o["pooling_mode_cls_token"] is JsonValue cls && cls.GetValue<bool>()) return BertPooling.Cls;
        if (o["pooling_mode_mean_tokens"] is JsonValue mean && mean.GetValue<bool>()) return BertPooling.Mean;
        throw new ModelConfigException(path, "pooling_mode_*", "pooling_mode_cls_token or pooling_mode_mean_tokens true (max pooling is not supported)");
    }

    /// <summary>[CLS] tokens [SEP], cut to <paramref name="maxTokens"/> in all (at least 2; at most max_position_embeddings).</summary>
    public int[] Encode(string text, int maxTokens)
    {
        maxTokens = Math.Clamp(maxTokens, 2, Config.MaxPositionEmbeddings);
        var ids = Tokenizer.EncodeToIds(text, addSpecialTokens: false);
        int keep = Math.Min(ids.Count, maxTokens - 2);
        var result = new int[keep + 2];
        result[0] = Tokenizer.ClassificationTokenId;
        for (int i = 0; i < keep; i++) result[i + 1] = ids[i];
        result[^1] = Tokenizer.SeparatorTokenId;
        return result;
    }
}
