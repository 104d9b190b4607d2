using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Text;

/// <summary>
/// The one way in to tokenizers: a Hugging Face model folder (tokenizer.json of byte-level BPE, else
/// tokenizer.model of SentencePiece) or a tiktoken name (gpt2, r50k_base, cl100k_base / gpt-4,
/// o200k_base / gpt-4o, and the other model names Microsoft.ML.Tokenizers knows).
/// Encoding never adds BOS or EOS; <see cref="TokenizerInfo"/> says whether the model expects them.
/// </summary>
public static class TokenizerLoader
{
    public const string TokenizerJsonFileName = "tokenizer.json";
    public const string SentencePieceFileName = "tokenizer.model";
    public const string TokenizerConfigFileName = "tokenizer_config.json";
    /// <summary>The engine's compacted GPT-2 tokenizer (Data/Tokenization), saved beside models the experiment trains.</summary>
    public const string CompactFileName = "tpeft_tokenizer.json";

    /// <summary>The tokenizer of a model folder (see <see cref="Load"/>).</summary>
    public static Tokenizer FromModelFolder(string dir) => LoadFolder(dir).Tokenizer;

    /// <summary>A tiktoken tokenizer by encoding name (r50k_base, cl100k_base, o200k_base) or model name (gpt2, gpt-4, gpt-4o, ...).</summary>
    public static Tokenizer FromName(string name) => LoadNamed(name).Tokenizer;

    /// <summary>A folder if one exists at <paramref name="folderOrName"/>, otherwise a tiktoken name.</summary>
    public static TokenizerInfo Load(string folderOrName)
    {
        if (Directory.Exists(folderOrName)) return LoadFolder(folderOrName);
        if (File.Exists(folderOrName)) return LoadCompact(folderOrName);
        if (folderOrName.Contains('/') || folderOrName.Contains('\\') || folderOrName.StartsWith('.'))
            throw new DirectoryNotFoundException($"{folderOrName}: tokenizer folder not found");
        return LoadNamed(folderOrName);
    }

    /// <summary>True when <paramref name="dir"/> holds a tokenizer file this loader reads.</summary>
    public static bool HasTokenizer(string dir) =>
        File.Exists(Path.Combine(dir, CompactFileName)) || File.Exists(Path.Combine(dir, TokenizerJsonFileName))
        || File.Exists(Path.Combine(dir, SentencePieceFileName));

    internal static TokenizerInfo LoadFolder(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: tokenizer folder not found");
        string json = Path.Combine(dir, TokenizerJsonFileName), model = Path.Combine(dir, SentencePieceFileName);
        if (File.Exists(Path.Combine(dir, CompactFileName))) return LoadCompact(Path.Combine(dir, CompactFileName));
        var config = ReadTokenizerConfig(Path.Combine(dir, TokenizerConfigFileName));
        if (File.Exists(json))
        {
            HfTokenizerJson? hf = null;
            try { hf = HfTokenizerJson.Load(json); }
            // A SentencePiece-style tokenizer.json (Llama-2, Mistral) is not byte-level BPE; its tokenizer.model
            // beside it is the same tokenizer in the format this library reads.
            catch (TokenizerFormatException e) when (e.NotByteLevelBpe && File.Exists(model)) { }
            if (hf is not null)
            {
                int? Resolve(string field) => config.Token(field) is not { } t ? null
                    : hf.TokenIds.TryGetValue(t, out int id) ? id
                    : throw new TokenizerFormatException(config.Path, field, $"a token of {TokenizerJsonFileName}; \"{t}\" is not one");
                int? bos = Resolve("bos_token") ?? (hf.PrependedToken is { } p ? hf.TokenIds[p] : null);
                return new TokenizerInfo(hf.Tokenizer, json, hf.VocabSize, bos, Resolve("eos_token"),
                    config.AddBosToken ?? hf.PrependedToken is not null);
            }
        }
        if (File.Exists(model)) return LoadSentencePiece(model, config);
        throw new FileNotFoundException($"{dir}: no {TokenizerJsonFileName} and no {SentencePieceFileName} (a model folder needs one of them)", json);
    }

    /// <summary>A compacted GPT-2 tokenizer file (format "tpeft.compact-gpt2"): id 0 is EOS, no BOS.</summary>
    internal static TokenizerInfo LoadCompact(string path)
    {
        var t = CompactGpt2Tokenizer.Load(path);
        return new TokenizerInfo(t, path, t.VocabSize, null, CompactGpt2Tokenizer.EosId, false);
    }

    private static TokenizerInfo LoadSentencePiece(string path, TokenizerConfig config)
    {
        byte[] bytes = File.ReadAllBytes(path); // file-system errors surface here, as themselves
        SentencePieceTokenizer sp;
        try
        {
            sp = SentencePieceTokenizer.Create(new MemoryStream(bytes), addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e)
        {
            // The library reports a corrupt protobuf as whatever its parser throws: InvalidProtocolBufferException
            // (an IOException), or even NullReferenceException for an empty file.
            throw new TokenizerFormatException(path, "(file)", $"a SentencePiece model (protobuf ModelProto): {e.GetType().Name}: {e.Message}");
        }
        if (sp.Vocabulary.Count == 0) throw new TokenizerFormatException(path, "pieces", "at least one piece");
        int maxId = sp.Vocabulary.Values.Max();
        if (sp.SpecialTokens is { Count: > 0 } specials) maxId = Math.Max(maxId, specials.Values.Max());
        int? Id(int id) => id >= 0 && id <= maxId ? id : null;
        int? Resolve(string field, int? fallback) => config.Token(field) is not { } t ? fallback
            : sp.Vocabulary.TryGetValue(t, out int id) ? id
            : throw new TokenizerFormatException(config.Path, field, $"a piece of {SentencePieceFileName}; \"{t}\" is not one");
        int? bos = Resolve("bos_token", Id(sp.BeginningOfSentenceId));
        // Llama-2, Mistral and Gemma tokenizers put BOS first unless tokenizer_config.json says otherwise.
        return new TokenizerInfo(sp, path, maxId + 1, bos, Resolve("eos_token", Id(sp.EndOfSentenceId)), config.AddBosToken ?? bos is not null);
    }

    private static readonly string[] EncodingNames = ["r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"];

    internal static TokenizerInfo LoadNamed(string name)
    {
        TiktokenTokenizer t;
        try
        {
            t = EncodingNames.Contains(name) ? TiktokenTokenizer.CreateForEncoding(name) : TiktokenTokenizer.CreateForModel(name);
        }
        catch (Exception e) when (e is NotSupportedException or ArgumentException)
        {
            throw new ArgumentException($"'{name}' is neither a tokenizer folder nor a known tokenizer name "
                + "(expected a folder with tokenizer.json or tokenizer.model, or gpt2, r50k_base, cl100k_base, gpt-4, o200k_base, gpt-4o)", nameof(name), e);
        }
        catch (InvalidOperationException e)
        {
            // The encoding's data lives in a separate package (p50k_base is not referenced).
            throw new ArgumentException($"tokenizer '{name}' needs a data package this build does not include: {e.Message}", nameof(name), e);
        }
        int? eos = t.SpecialTokens is { } s && s.TryGetValue("<|endoftext|>", out int id) ? id : null;
        return new TokenizerInfo(t, name, TiktokenVocabSize(t), BosTokenId: null, eos, AddBosToken: false);
    }

    /// <summary>
    /// Largest id + 1 of a tiktoken tokenizer, which exposes no vocabulary. Its byte-pair ranks are
    /// 0..N-1 without gaps (every OpenAI encoding) and ids it does not know decode to "", so the first
    /// unknown id past them is found by bisection; special tokens lie above the ranks.
    /// </summary>
    internal static int TiktokenVocabSize(TiktokenTokenizer t)
    {
        int lo = 0, hi = 1 << 24; // invariant: ids below lo decode, hi does not
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (t.Decode([mid]).Length > 0) lo = mid + 1; else hi = mid;
        }
        int size = lo;
        if (t.SpecialTokens is { } specials) foreach (var id in specials.Values) size = Math.Max(size, id + 1);
        return size;
    }

    /// <summary>The few fields of tokenizer_config.json a trainer needs; everything else is ignored.</summary>
    private sealed record TokenizerConfig(string Path, JsonObject? Root)
    {
        /// <summary>bos_token / eos_token: a string, or an AddedToken object {"content": ...}; null when absent.</summary>
        public string? Token(string field) => Root?[field] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out string? s) => s,
            JsonObject o when o["content"] is JsonValue c && c.TryGetValue(out string? s) => s,
            var n => throw new TokenizerFormatException(Path, field, $"a token string or {{\"content\": ...}}, got {n.ToJsonString()}"),
        };

        public bool? AddBosToken => Root?["add_bos_token"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out bool b) => b,
            var n => throw new TokenizerFormatException(Path, "add_bos_token", $"true or false, got {n.ToJsonString()}"),
        };
    }

    private static TokenizerConfig ReadTokenizerConfig(string path)
    {
        if (!File.Exists(path)) return new TokenizerConfig(path, null);
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
            return new TokenizerConfig(path, root as JsonObject ?? throw new TokenizerFormatException(path, "(file)", "a JSON object"));
        }
        catch (JsonException e) { throw new TokenizerFormatException(path, "(file)", $"well-formed JSON without repeated keys: {e.Message}"); }
    }
}
