using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Text;

/// <summary>
/// Builds a Microsoft.ML.Tokenizers tokenizer from a Hugging Face <c>tokenizer.json</c> of byte-level BPE
/// (GPT-2, Llama-3, Qwen2/Qwen3), which that library has no loader for. The file's parts map as follows:
/// <list type="bullet">
/// <item>normalizer: none, or NFC (Qwen) applied by <see cref="NfcNormalizer"/>;</item>
/// <item>pre_tokenizer: the Split regex (or ByteLevel's built-in GPT-2 regex) becomes a
/// <see cref="RegexPreTokenizer"/>; ByteLevel itself is BpeOptions.ByteLevel;</item>
/// <item>model: vocab + merges ("a b" strings or ["a", "b"] pairs) become BpeOptions;</item>
/// <item>added_tokens: all of them become special tokens, matched in the text before pre-tokenization as
/// the Hugging Face tokenizer matches added tokens.</item>
/// </list>
/// One BPE variant needs care: <c>"ignore_merges": true</c> (Llama-3) first looks a whole pre-token up in
/// the vocabulary and only runs merges when it is absent. BpeTokenizer cannot do that, so such files go
/// to the library's tiktoken engine, which does exactly that lookup and then merges by token rank. The
/// two agree only when the merges are the ones tiktoken implies (every split of every token whose halves
/// are tokens, ordered by the merged token's id); that is checked, and a file that breaks it is refused.
/// </summary>
internal sealed class HfTokenizerJson
{
    /// <summary>GPT-2's pre-tokenization regex, used by a ByteLevel pre-tokenizer with use_regex = true.</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public required Tokenizer Tokenizer { get; init; }
    /// <summary>Largest id (vocabulary or added token) + 1: the smallest embedding table that fits.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Token text -> id for the vocabulary and every added token.</summary>
    public required IReadOnlyDictionary<string, int> TokenIds { get; init; }
    /// <summary>The special token the post_processor puts before every text (Llama-3's &lt;|begin_of_text|&gt;), if any.</summary>
    public string? PrependedToken { get; init; }

    public static HfTokenizerJson Load(string path)
    {
        byte[] bytes = InputFile.ReadAllBytes(path, JsonInput.MaxConfigBytes);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new TokenizerFormatException(path, "(file)", "UTF-8 text");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new TokenizerFormatException(path, "(file)", $"well-formed JSON: {JsonInput.Describe(e)}"); }
        using var _ = doc;
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new TokenizerFormatException(path, "(file)", "a JSON object");
        return new Parser(path).Build(root);
    }

    private sealed class Parser(string path)
    {
        private TokenizerFormatException Error(string field, string expected, bool notByteLevel = false) =>
            new(path, field, expected) { NotByteLevelBpe = notByteLevel };

        private JsonElement? Field(JsonElement obj, string name, string where)
        {
            JsonElement? found = null;
            foreach (var p in obj.EnumerateObject())
            {
                if (p.Name != name) continue;
                if (found is not null) throw Error(where + name, "a single value (the key appears twice)");
                found = p.Value;
            }
            return found is { ValueKind: JsonValueKind.Null } ? null : found;
        }

        private string? Str(JsonElement obj, string name, string where) => Field(obj, name, where) switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } v => v.GetString(),
            var v => throw Error(where + name, $"a string, got {v.Value.GetRawText()}"),
        };

        private bool? Bool(JsonElement obj, string name, string where) => Field(obj, name, where) switch
        {
            null => null,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            var v => throw Error(where + name, $"true or false, got {v.Value.GetRawText()}"),
        };

        private JsonElement Obj(JsonElement obj, string name, string where) => Field(obj, name, where) switch
        {
            { ValueKind: JsonValueKind.Object } v => v,
            null => throw Error(where + name, "an object (the field is missing)"),
            var v => throw Error(where + name, $"an object, got {v.Value.ValueKind}"),
        };

        public HfTokenizerJson Build(JsonElement root)
        {
            var model = Obj(root, "model", "");
            string? type = Str(model, "type", "model.");
            if (type is not null && type != "BPE")
                throw Error("model.type", $"\"BPE\" (byte-level BPE tokenizers only), got \"{type}\"", notByteLevel: true);
            if (Bool(model, "byte_fallback", "model.") == true)
                throw Error("model.byte_fallback", "false (byte_fallback belongs to SentencePiece-style BPE, not byte-level BPE)", notByteLevel: true);
            if (Str(model, "continuing_subword_prefix", "model.") is { Length: > 0 } csp)
                throw Error("model.continuing_subword_prefix", $"null or empty for byte-level BPE, got \"{csp}\"", notByteLevel: true);
            if (Str(model, "end_of_word_suffix", "model.") is { Length: > 0 } eow)
                throw Error("model.end_of_word_suffix", $"null or empty for byte-level BPE, got \"{eow}\"", notByteLevel: true);
            if (Field(model, "dropout", "model.") is { } dropout && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
                throw Error("model.dropout", $"null or 0 (BPE dropout randomises encoding), got {dropout.GetRawText()}");
            bool ignoreMerges = Bool(model, "ignore_merges", "model.") ?? false;

            var normalizer = ParseNormalizer(root);
            string pattern = ParsePreTokenizer(root);
            ParseDecoder(root);

            var vocab = ParseVocab(model);
            var merges = ParseMerges(model, vocab);
            var added = ParseAddedTokens(root, vocab);

            PreTokenizer preTokenizer;
            try { preTokenizer = new IsolatedSplitPreTokenizer(pattern, added, path); }
            catch (ArgumentException e) { throw Error("pre_tokenizer.pattern", $"a regular expression .NET can run: {e.Message}"); }

            Tokenizer tokenizer = ignoreMerges
                ? BuildTiktoken(vocab, merges, added, preTokenizer, normalizer)
                : BpeTokenizer.Create(new BpeOptions(vocab)
                {
                    Merges = merges.Select(m => m.Text),
                    ByteLevel = true,
                    SpecialTokens = added,
                    PreTokenizer = preTokenizer,
                    Normalizer = normalizer,
                });

            var ids = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
            foreach (var (k, v) in added) ids[k] = v;
            int maxId = Math.Max(vocab.Values.DefaultIfEmpty(-1).Max(), added.Values.DefaultIfEmpty(-1).Max());
            return new HfTokenizerJson
            {
                Tokenizer = tokenizer,
                VocabSize = maxId + 1,
                TokenIds = ids,
                PrependedToken = ParsePrependedToken(root, ids),
            };
        }

        private NfcNormalizer? ParseNormalizer(JsonElement root)
        {
            if (Field(root, "normalizer", "") is not { } n) return null;
            bool nfc = false;
            void Add(JsonElement e, string where)
            {
                if (e.ValueKind != JsonValueKind.Object) throw Error(where, "an object with a 'type'");
                string? t = Str(e, "type", where + ".");
                switch (t)
                {
                    case "NFC": nfc = true; break;
                    case "Sequence":
                        if (Field(e, "normalizers", where + ".") is not { ValueKind: JsonValueKind.Array } list)
                            throw Error(where + ".normalizers", "an array of normalizers");
                        int i = 0;
                        foreach (var item in list.EnumerateArray()) Add(item, $"{where}.normalizers[{i++}]");
                        break;
                    default:
                        throw Error(where + ".type", $"null, NFC or a Sequence of NFC; '{t}' is not supported", notByteLevel: true);
                }
            }
            Add(n, "normalizer");
            return nfc ? NfcNormalizer.Instance : null;
        }

        private string ParsePreTokenizer(JsonElement root)
        {
            if (Field(root, "pre_tokenizer", "") is not { } pre)
                throw Error("pre_tokenizer", "a ByteLevel pre-tokenizer (alone or after a Split), as byte-level BPE has; found none", notByteLevel: true);
            if (pre.ValueKind != JsonValueKind.Object) throw Error("pre_tokenizer", "an object with a 'type'");
            var steps = new List<(JsonElement Step, string Where)>();
            if (Str(pre, "type", "pre_tokenizer.") == "Sequence")
            {
                if (Field(pre, "pretokenizers", "pre_tokenizer.") is not { ValueKind: JsonValueKind.Array } list)
                    throw Error("pre_tokenizer.pretokenizers", "an array of pre-tokenizers");
                int i = 0;
                foreach (var s in list.EnumerateArray()) steps.Add((s, $"pre_tokenizer.pretokenizers[{i++}]"));
            }
            else steps.Add((pre, "pre_tokenizer"));

            string? pattern = null;
            bool byteLevel = false;
            foreach (var (step, where) in steps)
            {
                if (step.ValueKind != JsonValueKind.Object) throw Error(where, "an object with a 'type'");
                string? t = Str(step, "type", where + ".");
                if (t == "Split" && !byteLevel && pattern is null)
                {
                    string? behavior = Str(step, "behavior", where + ".");
                    if (behavior != "Isolated")
                        throw Error(where + ".behavior", $"\"Isolated\" (each regex match is its own piece), got \"{behavior}\"");
                    if (Bool(step, "invert", where + ".") == true) throw Error(where + ".invert", "false");
                    var p = Obj(step, "pattern", where + ".");
                    pattern = Str(p, "Regex", where + ".pattern.")
                        ?? (Str(p, "String", where + ".pattern.") is { } literal ? Regex.Escape(literal)
                            : throw Error(where + ".pattern", "{\"Regex\": ...} or {\"String\": ...}"));
                }
                else if (t == "ByteLevel" && !byteLevel)
                {
                    byteLevel = true;
                    if (Bool(step, "add_prefix_space", where + ".") == true)
                        throw Error(where + ".add_prefix_space", "false (a leading space added to every text is not supported)");
                    if (Bool(step, "use_regex", where + ".") ?? true)
                    {
                        if (pattern is not null)
                            throw Error(where + ".use_regex", "false after a Split (two regex stages in a row are not supported)");
                        pattern = Gpt2Pattern;
                    }
                }
                else
                {
                    throw Error(where + ".type", $"Split followed by ByteLevel, or ByteLevel alone (byte-level BPE); '{t}' here is not supported", notByteLevel: true);
                }
            }
            if (!byteLevel)
                throw Error("pre_tokenizer", "a ByteLevel step (this is not a byte-level BPE tokenizer)", notByteLevel: true);
            // ByteLevel without any regex hands the whole text to BPE as one piece.
            return pattern ?? @"[\s\S]+";
        }

        private void ParseDecoder(JsonElement root)
        {
            if (Field(root, "decoder", "") is not { } d) return;
            if (d.ValueKind != JsonValueKind.Object) throw Error("decoder", "an object with a 'type'");
            string? t = Str(d, "type", "decoder.");
            if (t != "ByteLevel")
                throw Error("decoder.type", $"\"ByteLevel\" for byte-level BPE, got \"{t}\"", notByteLevel: true);
        }

        private Dictionary<string, int> ParseVocab(JsonElement model)
        {
            var v = Obj(model, "vocab", "model.");
            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            var byId = new Dictionary<int, string>();
            foreach (var p in v.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                    throw Error("model.vocab", $"non-negative integer ids; token \"{p.Name}\" has {p.Value.GetRawText()}");
                if (!vocab.TryAdd(p.Name, id)) throw Error("model.vocab", $"each token once; \"{p.Name}\" appears twice");
                if (!byId.TryAdd(id, p.Name)) throw Error("model.vocab", $"distinct ids; \"{p.Name}\" and \"{byId[id]}\" both have id {id}");
                if (!ByteLevelAlphabet.TryDecode(p.Name, out _))
                    throw Error("model.vocab", $"tokens written in the byte-level alphabet; \"{p.Name}\" (id {id}) has a character outside it", notByteLevel: true);
            }
            for (int b = 0; b < 256; b++)
            {
                string single = ByteLevelAlphabet.Encode((byte)b).ToString();
                if (!vocab.ContainsKey(single))
                    throw Error("model.vocab", $"all 256 single-byte tokens (byte-level BPE can encode any text only with them); byte 0x{b:X2} ('{single}') is missing");
            }
            return vocab;
        }

        /// <summary>One merge: the "left right" text the library reads, and the ids of both parts and of the result.</summary>
        internal readonly record struct Merge(string Text, int Left, int Right, int Merged);

        private List<Merge> ParseMerges(JsonElement model, Dictionary<string, int> vocab)
        {
            if (Field(model, "merges", "model.") is not { ValueKind: JsonValueKind.Array } m)
                throw Error("model.merges", "an array of merges (\"a b\" strings or [\"a\", \"b\"] pairs)");
            // Span lookups: a real file has hundreds of thousands of merges, so no substring per part.
            var lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
            var merges = new List<Merge>(m.GetArrayLength());
            Span<char> joined = stackalloc char[256];
            int i = 0;
            foreach (var e in m.EnumerateArray())
            {
                string where = $"model.merges[{i}]";
                string text;
                int split;
                if (e.ValueKind == JsonValueKind.String)
                {
                    text = e.GetString()!;
                    split = text.IndexOf(' ');
                    if (split <= 0 || split == text.Length - 1 || text.IndexOf(' ', split + 1) >= 0)
                        throw Error(where, $"\"left right\" with exactly one space, got \"{text}\"");
                }
                else if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2
                         && e[0].ValueKind == JsonValueKind.String && e[1].ValueKind == JsonValueKind.String)
                {
                    string l = e[0].GetString()!, r = e[1].GetString()!;
                    text = l + " " + r;
                    split = l.Length;
                }
                else throw Error(where, $"a \"left right\" string or a [\"left\", \"right\"] pair, got {e.GetRawText()}");
                ReadOnlySpan<char> left = text.AsSpan(0, split), right = text.AsSpan(split + 1);
                Span<char> both = left.Length + right.Length <= joined.Length ? joined[..(left.Length + right.Length)] : new char[left.Length + right.Length];
                left.CopyTo(both);
                right.CopyTo(both[left.Length..]);
                if (!lookup.TryGetValue(left, out int li) || !lookup.TryGetValue(right, out int ri) || !lookup.TryGetValue(both, out int mi))
                {
                    string missing = !lookup.ContainsKey(left) ? left.ToString() : !lookup.ContainsKey(right) ? right.ToString() : both.ToString();
                    throw Error(where, $"tokens of model.vocab; \"{missing}\" (from the merge \"{text}\") is not in it");
                }
                merges.Add(new Merge(text, li, ri, mi));
                i++;
            }
            return merges;
        }

        private Dictionary<string, int> ParseAddedTokens(JsonElement root, Dictionary<string, int> vocab)
        {
            var added = new Dictionary<string, int>(StringComparer.Ordinal);
            if (Field(root, "added_tokens", "") is not { } list) return added;
            if (list.ValueKind != JsonValueKind.Array) throw Error("added_tokens", "an array of {id, content, ...}");
            var vocabById = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
            int i = 0;
            foreach (var t in list.EnumerateArray())
            {
                string where = $"added_tokens[{i++}]";
                if (t.ValueKind != JsonValueKind.Object) throw Error(where, "an object {id, content, ...}");
                if (Field(t, "id", where + ".") is not { ValueKind: JsonValueKind.Number } idNode || !idNode.TryGetInt32(out int id) || id < 0)
                    throw Error(where + ".id", "a non-negative integer");
                string content = Str(t, "content", where + ".") is { Length: > 0 } c ? c : throw Error(where + ".content", "a non-empty string");
                foreach (var flag in new[] { "lstrip", "rstrip", "single_word" })
                    if (Bool(t, flag, where + ".") == true)
                        throw Error(where + "." + flag, $"false (added-token option '{flag}' is not supported), on \"{content}\"");
                if (!added.TryAdd(content, id)) throw Error(where + ".content", $"each added token once; \"{content}\" appears twice");
                if (vocabById.TryGetValue(id, out var other) && other != content)
                    throw Error(where + ".id", $"an id not used by another token; {id} (\"{content}\") is \"{other}\" in model.vocab");
                if (vocab.TryGetValue(content, out int vid) && vid != id)
                    throw Error(where + ".id", $"the id model.vocab gives \"{content}\" ({vid}), got {id}");
            }
            return added;
        }

        private string? ParsePrependedToken(JsonElement root, Dictionary<string, int> ids)
        {
            // TemplateProcessing's "single" template: [SpecialToken bos?, Sequence A, ...]. Llama-3 puts
            // <|begin_of_text|> there; Qwen and GPT-2 (ByteLevel post-processor) prepend nothing.
            if (Field(root, "post_processor", "") is not { ValueKind: JsonValueKind.Object } pp) return null;
            var processors = new List<JsonElement>();
            if (Str(pp, "type", "post_processor.") == "Sequence" && Field(pp, "processors", "post_processor.") is { ValueKind: JsonValueKind.Array } list)
                processors.AddRange(list.EnumerateArray());
            else processors.Add(pp);
            foreach (var p in processors)
            {
                if (p.ValueKind != JsonValueKind.Object || Str(p, "type", "post_processor.") != "TemplateProcessing") continue;
                if (Field(p, "single", "post_processor.") is not { ValueKind: JsonValueKind.Array } single || single.GetArrayLength() == 0) continue;
                var first = single[0];
                if (first.ValueKind == JsonValueKind.Object && first.TryGetProperty("SpecialToken", out var st)
                    && st.ValueKind == JsonValueKind.Object && st.TryGetProperty("id", out var tok) && tok.ValueKind == JsonValueKind.String)
                {
                    string token = tok.GetString()!;
                    if (!ids.ContainsKey(token))
                        throw Error("post_processor.single[0].SpecialToken.id", $"a token of the vocabulary or added_tokens, got \"{token}\"");
                    return token;
                }
            }
            return null;
        }

        private Tokenizer BuildTiktoken(Dictionary<string, int> vocab, List<Merge> merges,
            Dictionary<string, int> added, PreTokenizer preTokenizer, NfcNormalizer? normalizer)
        {
            // tiktoken merges the adjacent pair whose concatenation has the lowest id. That equals BPE with
            // these merges when (1) merges come in order of the merged token's id and (2) every split of a
            // token into two tokens is a merge. Tokenizers converted from tiktoken (Llama-3) satisfy both.
            static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;
            int last = -1;
            var pairs = new HashSet<long>(merges.Count);
            for (int i = 0; i < merges.Count; i++)
            {
                var m = merges[i];
                if (m.Merged < last)
                    throw Error("model.ignore_merges", $"false, or merges listed in the order of the merged token's id (merge {i} \"{m.Text}\" makes id {m.Merged} after id {last})");
                last = m.Merged;
                pairs.Add(PairKey(m.Left, m.Right));
            }
            var lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
            foreach (var token in vocab.Keys)
                for (int k = 1; k < token.Length; k++)
                {
                    if (lookup.TryGetValue(token.AsSpan(0, k), out int l) && lookup.TryGetValue(token.AsSpan(k), out int r) && !pairs.Contains(PairKey(l, r)))
                        throw Error("model.ignore_merges", $"false, or a merge for every split of a token into two tokens; \"{token[..k]} {token[k..]}\" -> \"{token}\" is missing");
                }

            // The library reads tiktoken's text format: one "base64(token bytes) rank" line per token.
            var sb = new StringBuilder(vocab.Count * 16);
            foreach (var (token, id) in vocab)
            {
                ByteLevelAlphabet.TryDecode(token, out var raw);
                sb.Append(Convert.ToBase64String(raw)).Append(' ').Append(id).Append('\n');
            }
            using var stream = new MemoryStream(Encoding.UTF8.GetBytes(sb.ToString()));
            return TiktokenTokenizer.Create(stream, preTokenizer, normalizer, added);
        }
    }
}
