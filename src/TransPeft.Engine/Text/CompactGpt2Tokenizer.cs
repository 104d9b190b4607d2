using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Text;

/// <summary>
/// GPT-2's byte-level BPE squeezed into a small vocabulary for small models, without an unknown token.
/// Text is split by the real GPT-2 tokenizer (<c>TiktokenTokenizer.CreateForModel("gpt2")</c>); each GPT-2
/// token then becomes one id if it is in the kept set, else it is spelled with smaller units
/// (<see cref="TokenizerFallback"/>): by default the fewest kept tokens and bytes that make it up
/// (" harpooneer" -> " harp" "oon" "eer"), or plainly one byte id per UTF-8 byte. Since every string is a
/// sequence of bytes, every text encodes, there is no unknown token, and decoding gives the text back exactly.
/// <code>
///   id 0                 &lt;|endoftext|&gt; (EOS, document separator; GPT-2 id 50256)
///   ids 1 .. 256         the bytes 0x00 .. 0xFF (id = 1 + byte); GPT-2's single-byte tokens map here too
///   ids 257 .. V-1       kept multi-byte GPT-2 tokens, most frequent in the training texts first
///                        (ties: lower GPT-2 id first)
/// </code>
/// It is a <see cref="Tokenizer"/> of Microsoft.ML.Tokenizers, so the library's EncodeToIds, Decode,
/// CountTokens and GetIndexByTokenCount work on it.
/// </summary>
public sealed class CompactGpt2Tokenizer : Tokenizer
{
    public const int EosId = 0;
    public const int ByteIdOffset = 1;
    public const int FirstKeptId = 257;
    public const string EosToken = "<|endoftext|>";
    public const string FormatName = "tpeft.compact-gpt2";
    public const int FormatVersion = 1;

    private static readonly Lazy<TiktokenTokenizer> SharedGpt2 = new(() => TiktokenTokenizer.CreateForModel("gpt2"));
    private static readonly byte[] EosBytes = Encoding.UTF8.GetBytes(EosToken);

    private readonly TiktokenTokenizer _gpt2;
    private readonly byte[][] _gpt2Bytes;
    private readonly int[] _gpt2ToCompact; // GPT-2 id -> compact id, -1 = falls back to bytes
    private readonly byte[][] _compactBytes; // compact id -> bytes it decodes to
    private readonly int[] _keptGpt2Ids;
    private readonly Dictionary<string, int> _keptByBytes = new(StringComparer.Ordinal); // Latin-1 view of bytes -> compact id
    private readonly int[]?[] _fallback; // GPT-2 id -> compact ids of its fallback spelling (computed on first use)

    private CompactGpt2Tokenizer(IReadOnlyList<int> keptGpt2Ids, string source, TokenizerFallback fallback)
    {
        Fallback = fallback;
        _gpt2 = SharedGpt2.Value;
        _gpt2Bytes = Gpt2ByteTable.Table;
        _keptGpt2Ids = keptGpt2Ids.ToArray();
        _gpt2ToCompact = new int[Gpt2ByteTable.TokenCount + 1];
        Array.Fill(_gpt2ToCompact, -1);
        _gpt2ToCompact[Gpt2ByteTable.EndOfTextId] = EosId;
        _compactBytes = new byte[FirstKeptId + _keptGpt2Ids.Length][];
        _compactBytes[EosId] = EosBytes;
        for (int b = 0; b < 256; b++) _compactBytes[ByteIdOffset + b] = [(byte)b];
        for (int g = 0; g < Gpt2ByteTable.TokenCount; g++)
            if (_gpt2Bytes[g].Length == 1) _gpt2ToCompact[g] = ByteIdOffset + _gpt2Bytes[g][0];
        for (int i = 0; i < _keptGpt2Ids.Length; i++)
        {
            int g = _keptGpt2Ids[i];
            if (g < 0 || g >= Gpt2ByteTable.TokenCount)
                throw new ArgumentException($"{source}: kept GPT-2 id {g} (position {i}) is outside 0..{Gpt2ByteTable.TokenCount - 1}");
            if (_gpt2Bytes[g].Length < 2)
                throw new ArgumentException($"{source}: kept GPT-2 id {g} (position {i}) is a single byte, which the byte ids already cover");
            if (_gpt2ToCompact[g] >= FirstKeptId)
                throw new ArgumentException($"{source}: GPT-2 id {g} is kept twice (positions {_gpt2ToCompact[g] - FirstKeptId} and {i})");
            _gpt2ToCompact[g] = FirstKeptId + i;
            _compactBytes[FirstKeptId + i] = _gpt2Bytes[g];
            _keptByBytes[Key(_gpt2Bytes[g])] = FirstKeptId + i;
        }
        _fallback = new int[]?[Gpt2ByteTable.TokenCount + 1];
    }

    private static string Key(ReadOnlySpan<byte> bytes) => System.Text.Encoding.Latin1.GetString(bytes);

    /// <summary>How a GPT-2 token outside the kept set is spelled.</summary>
    public TokenizerFallback Fallback { get; }

    /// <summary>
    /// The compact ids of a GPT-2 token: its own id when kept, else its fallback spelling. With
    /// <see cref="TokenizerFallback.KeptPieces"/> the spelling is the shortest sequence of kept tokens and
    /// single bytes whose bytes concatenate to the token's bytes (dynamic programming over byte positions;
    /// among equally short spellings the one with the longest first piece wins, which makes it unique).
    /// </summary>
    private int[] FallbackIds(int gpt2Id)
    {
        var cached = _fallback[gpt2Id];
        if (cached is not null) return cached;
        var b = _gpt2Bytes[gpt2Id];
        int[] ids;
        if (Fallback == TokenizerFallback.Bytes)
        {
            ids = new int[b.Length];
            for (int i = 0; i < b.Length; i++) ids[i] = ByteIdOffset + b[i];
        }
        else
        {
            // best[i] = fewest pieces spelling b[i..]; next[i] = end of the first piece of that spelling.
            int n = b.Length;
            var best = new int[n + 1];
            var next = new int[n + 1];
            var piece = new int[n + 1];
            for (int i = n - 1; i >= 0; i--)
            {
                best[i] = int.MaxValue;
                for (int j = n; j > i; j--)
                {
                    int id = j - i == 1 ? ByteIdOffset + b[i] : _keptByBytes.GetValueOrDefault(Key(b.AsSpan(i, j - i)), -1);
                    if (id < 0 || best[j] == int.MaxValue) continue;
                    if (1 + best[j] < best[i]) { best[i] = 1 + best[j]; next[i] = j; piece[i] = id; }
                }
            }
            ids = new int[best[0]];
            for (int i = 0, k = 0; i < n; i = next[i]) ids[k++] = piece[i];
        }
        _fallback[gpt2Id] = ids;
        return ids;
    }

    /// <summary>Number of ids: 257 + kept tokens. The model's vocab_size.</summary>
    public int VocabSize => _compactBytes.Length;

    /// <summary>The kept GPT-2 ids; position i is compact id 257 + i.</summary>
    public IReadOnlyList<int> KeptGpt2Ids => _keptGpt2Ids;

    /// <summary>A tokenizer keeping exactly these GPT-2 ids (in this order).</summary>
    public static CompactGpt2Tokenizer FromKeptIds(IReadOnlyList<int> keptGpt2Ids, TokenizerFallback fallback = TokenizerFallback.KeptPieces) =>
        new(keptGpt2Ids, "kept id list", fallback);

    /// <summary>
    /// Keeps the most frequent multi-byte GPT-2 tokens of <paramref name="texts"/> so that the vocabulary has at
    /// most <paramref name="vocabSize"/> ids (EOS and the 256 bytes included). Fewer when the texts use fewer tokens.
    /// </summary>
    public static CompactGpt2Tokenizer Train(IEnumerable<string> texts, int vocabSize = 8192, TokenizerFallback fallback = TokenizerFallback.KeptPieces)
    {
        if (vocabSize < FirstKeptId) throw new ArgumentOutOfRangeException(nameof(vocabSize), $"needs at least {FirstKeptId} ids (EOS + 256 bytes), got {vocabSize}");
        var gpt2 = SharedGpt2.Value;
        var bytes = Gpt2ByteTable.Table;
        var counts = new long[Gpt2ByteTable.TokenCount + 1];
        foreach (var text in texts)
            foreach (var id in gpt2.EncodeToIds(text)) counts[id]++;
        var kept = Enumerable.Range(0, Gpt2ByteTable.TokenCount)
            .Where(g => counts[g] > 0 && bytes[g].Length >= 2)
            .OrderByDescending(g => counts[g]).ThenBy(g => g)
            .Take(vocabSize - FirstKeptId)
            .ToList();
        return new CompactGpt2Tokenizer(kept, "training", fallback);
    }

    // ---------------------------------------------------------------- encoding

    /// <summary>The ids of <paramref name="text"/>. A literal "&lt;|endoftext|&gt;" in the text becomes EOS.</summary>
    public int[] Encode(string text)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        AppendIds(_gpt2.EncodeToIds(text), ids);
        return ids.ToArray();
    }

    private void AppendIds(IReadOnlyList<int> gpt2Ids, List<int> ids)
    {
        foreach (var g in gpt2Ids)
        {
            int c = _gpt2ToCompact[g];
            if (c >= 0) { ids.Add(c); continue; }
            ids.AddRange(FallbackIds(g));
        }
    }

    /// <summary>How many ids the GPT-2 token becomes.</summary>
    private int CompactLength(int gpt2Id) => _gpt2ToCompact[gpt2Id] >= 0 ? 1 : FallbackIds(gpt2Id).Length;

    /// <summary>
    /// Encodes at most <paramref name="maxTokens"/> ids, stopping only between GPT-2 tokens that do not share a
    /// character, so that the ids decode to exactly the first <paramref name="charsConsumed"/> characters.
    /// </summary>
    private List<EncodedToken> EncodePrefix(ReadOnlySpan<char> text, int maxTokens, out int charsConsumed)
    {
        var gpt2Tokens = _gpt2.EncodeToTokens(text, out _);
        var result = new List<EncodedToken>();
        int safeCount = 0, safeChars = 0;
        charsConsumed = 0;
        for (int j = 0; j < gpt2Tokens.Count; j++)
        {
            var t = gpt2Tokens[j];
            // A boundary before token j is clean when token j starts at or after the end of token j-1.
            if (j == 0 || t.Offset.Start.Value >= gpt2Tokens[j - 1].Offset.End.Value)
            {
                safeCount = result.Count;
                safeChars = j == 0 ? 0 : gpt2Tokens[j - 1].Offset.End.Value;
            }
            if (result.Count + CompactLength(t.Id) > maxTokens)
            {
                result.RemoveRange(safeCount, result.Count - safeCount);
                charsConsumed = safeChars;
                return result;
            }
            int c = _gpt2ToCompact[t.Id];
            if (c >= 0) result.Add(new EncodedToken(c, c == EosId ? EosToken : t.Value, t.Offset));
            else foreach (var id in FallbackIds(t.Id)) result.Add(new EncodedToken(id, TokenText(id), t.Offset));
        }
        charsConsumed = text.Length;
        return result;
    }

    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        var span = text is null ? textSpan : text.AsSpan();
        var tokens = EncodePrefix(span, settings.MaxTokenCount, out int consumed);
        return new EncodeResults<EncodedToken> { Tokens = tokens, NormalizedText = null, CharsConsumed = consumed };
    }

    protected override EncodeResults<int> EncodeToIds(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        var span = text is null ? textSpan : text.AsSpan();
        if (settings.MaxTokenCount == int.MaxValue)
        {
            var ids = new List<int>(span.Length / 3 + 4);
            AppendIds(_gpt2.EncodeToIds(span), ids);
            return new EncodeResults<int> { Tokens = ids, NormalizedText = null, CharsConsumed = span.Length };
        }
        var tokens = EncodePrefix(span, settings.MaxTokenCount, out int consumed);
        return new EncodeResults<int> { Tokens = tokens.Select(t => t.Id).ToList(), NormalizedText = null, CharsConsumed = consumed };
    }

    protected override int CountTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        var span = text is null ? textSpan : text.AsSpan();
        if (settings.MaxTokenCount != int.MaxValue) return EncodePrefix(span, settings.MaxTokenCount, out _).Count;
        int n = 0;
        foreach (var g in _gpt2.EncodeToIds(span)) n += CompactLength(g);
        return n;
    }

    /// <summary>
    /// The longest prefix of <paramref name="text"/> whose encoding has at most <paramref name="maxTokens"/> ids
    /// (cut between GPT-2 tokens, never inside a character), and that encoding's length.
    /// </summary>
    public string TruncateToTokens(string text, int maxTokens, out int tokenCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTokens);
        var tokens = EncodePrefix(text, maxTokens, out int consumed);
        tokenCount = tokens.Count;
        return consumed == text.Length ? text : text[..consumed];
    }

    // ---------------------------------------------------------------- decoding

    /// <summary>The bytes the ids stand for.</summary>
    public byte[] DecodeToBytes(IEnumerable<int> ids)
    {
        var buffer = new ArrayBufferWriter<byte>();
        foreach (var id in ids) buffer.Write(BytesOf(id));
        return buffer.WrittenSpan.ToArray();
    }

    private byte[] BytesOf(int id)
    {
        if ((uint)id >= (uint)_compactBytes.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is outside this tokenizer's vocabulary 0..{_compactBytes.Length - 1}");
        return _compactBytes[id];
    }

    /// <summary>The text of the ids (invalid UTF-8, e.g. from a cut inside a character, becomes U+FFFD).</summary>
    public override string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(DecodeToBytes(ids));

    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten)
    {
        // Decode whole ids only, and stop only where the bytes so far end a complete UTF-8 character.
        var bytes = new List<byte>();
        var checkpoints = new List<(int Ids, int Bytes)> { (0, 0) };
        int n = 0;
        foreach (var id in ids)
        {
            bytes.AddRange(BytesOf(id));
            n++;
            if (EndsOnCharacterBoundary(bytes)) checkpoints.Add((n, bytes.Count));
        }
        var all = bytes.ToArray();
        if (checkpoints[^1].Ids != n) checkpoints.Add((n, all.Length)); // trailing partial character decodes to U+FFFD
        int lo = 0, hi = checkpoints.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (Encoding.UTF8.GetCharCount(all, 0, checkpoints[mid].Bytes) <= destination.Length) lo = mid; else hi = mid - 1;
        }
        var (usedIds, usedBytes) = checkpoints[lo];
        charsWritten = Encoding.UTF8.GetChars(all.AsSpan(0, usedBytes), destination);
        idsConsumed = usedIds;
        return usedIds == n ? OperationStatus.Done : OperationStatus.DestinationTooSmall;
    }

    private static bool EndsOnCharacterBoundary(List<byte> bytes)
    {
        // Walk back over continuation bytes (10xxxxxx) to the lead byte and check the sequence is complete.
        int i = bytes.Count - 1, continuation = 0;
        while (i >= 0 && (bytes[i] & 0xC0) == 0x80 && continuation < 3) { i--; continuation++; }
        if (i < 0) return continuation == 0;
        byte lead = bytes[i];
        int need = lead < 0x80 ? 0 : (lead & 0xE0) == 0xC0 ? 1 : (lead & 0xF0) == 0xE0 ? 2 : (lead & 0xF8) == 0xF0 ? 3 : -1;
        return need < 0 || need == continuation; // an invalid lead byte decodes to U+FFFD on its own
    }

    // ---------------------------------------------------------------- statistics

    /// <summary>Counts tokens and byte fallback over some texts.</summary>
    public TokenizerCoverage MeasureCoverage(IEnumerable<string> texts)
    {
        long chars = 0, g2 = 0, g2Fallback = 0, tokens = 0, fallbackIds = 0, byteIds = 0;
        foreach (var text in texts)
        {
            chars += text.Length;
            foreach (var g in _gpt2.EncodeToIds(text))
            {
                g2++;
                if (_gpt2ToCompact[g] >= 0) { tokens++; continue; }
                g2Fallback++;
                var f = FallbackIds(g);
                tokens += f.Length;
                fallbackIds += f.Length;
                foreach (var id in f) if (id < FirstKeptId) byteIds++;
            }
        }
        return new TokenizerCoverage(chars, g2, g2Fallback, tokens, fallbackIds, byteIds);
    }

    /// <summary>A readable form of an id: the token's text, or &lt;0xAB&gt; for a byte that is not text on its own.</summary>
    public string TokenText(int id)
    {
        var b = BytesOf(id);
        if (id >= ByteIdOffset && id < FirstKeptId && b[0] >= 0x80) return $"<0x{b[0]:X2}>";
        return Encoding.UTF8.GetString(b);
    }

    // ---------------------------------------------------------------- persistence

    private static string FallbackName(TokenizerFallback f) => f == TokenizerFallback.Bytes ? "bytes" : "kept_pieces";

    /// <summary>Writes the mapping as JSON (atomically). Only GPT-2 ids are stored; the bytes come from the GPT-2 vocabulary.</summary>
    public void Save(string path, JsonObject? extra = null)
    {
        var kept = new JsonArray();
        foreach (var g in _keptGpt2Ids) kept.Add((JsonNode)JsonValue.Create(g));
        var preview = new JsonArray();
        foreach (var id in Enumerable.Range(FirstKeptId, Math.Min(32, _keptGpt2Ids.Length))) preview.Add((JsonNode)JsonValue.Create(TokenText(id)));
        var root = new JsonObject
        {
            ["format"] = FormatName,
            ["version"] = FormatVersion,
            ["base_tokenizer"] = "gpt2",
            ["base_vocabulary_sha256"] = Gpt2ByteTable.Sha256,
            ["vocab_size"] = VocabSize,
            ["eos_id"] = EosId,
            ["eos_token"] = EosToken,
            ["byte_id_offset"] = ByteIdOffset,
            ["first_kept_id"] = FirstKeptId,
            ["fallback"] = FallbackName(Fallback),
            ["layout"] = "id 0 = <|endoftext|>; ids 1..256 = bytes 0x00..0xFF (1 + byte); ids 257.. = kept_gpt2_ids in order",
            ["first_kept_tokens"] = preview,
            ["kept_gpt2_ids"] = kept,
        };
        if (extra is not null) root["info"] = extra;
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }

    /// <summary>Reads a file written by <see cref="Save"/>; throws <see cref="TokenizerFormatException"/> naming the field on bad input.</summary>
    public static CompactGpt2Tokenizer Load(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new TokenizerFormatException(path, "(document)", $"valid JSON ({e.Message})"); }
        if (root is not JsonObject o) throw new TokenizerFormatException(path, "(document)", "a JSON object");

        T Get<T>(string field, string expected)
        {
            try { return o[field] is { } n ? n.GetValue<T>() : throw new TokenizerFormatException(path, field, expected + ", but it is missing"); }
            catch (Exception e) when (e is InvalidOperationException or FormatException) { throw new TokenizerFormatException(path, field, expected); }
        }
        if (Get<string>("format", $"\"{FormatName}\"") != FormatName) throw new TokenizerFormatException(path, "format", $"\"{FormatName}\"");
        if (Get<int>("version", $"{FormatVersion}") != FormatVersion) throw new TokenizerFormatException(path, "version", $"{FormatVersion}");
        if (Get<string>("base_tokenizer", "\"gpt2\"") != "gpt2") throw new TokenizerFormatException(path, "base_tokenizer", "\"gpt2\"");
        var sha = Get<string>("base_vocabulary_sha256", "a sha256 hex string");
        if (sha != Gpt2ByteTable.Sha256)
            throw new TokenizerFormatException(path, "base_vocabulary_sha256", $"{Gpt2ByteTable.Sha256} (the GPT-2 vocabulary of this build), found {sha}");
        if (Get<int>("eos_id", "0") != EosId) throw new TokenizerFormatException(path, "eos_id", "0");
        if (Get<int>("byte_id_offset", "1") != ByteIdOffset) throw new TokenizerFormatException(path, "byte_id_offset", "1");
        if (Get<int>("first_kept_id", "257") != FirstKeptId) throw new TokenizerFormatException(path, "first_kept_id", "257");
        if (o["kept_gpt2_ids"] is not JsonArray arr) throw new TokenizerFormatException(path, "kept_gpt2_ids", "an array of GPT-2 token ids");
        var kept = new List<int>(arr.Count);
        foreach (var n in arr)
        {
            try { kept.Add(n!.GetValue<int>()); }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            { throw new TokenizerFormatException(path, "kept_gpt2_ids", $"integers, found '{n?.ToJsonString()}' at position {kept.Count}"); }
        }
        int vocab = Get<int>("vocab_size", "an integer");
        if (vocab != FirstKeptId + kept.Count)
            throw new TokenizerFormatException(path, "vocab_size", $"{FirstKeptId + kept.Count} (257 + {kept.Count} kept ids), found {vocab}");
        var fallbackName = Get<string>("fallback", "\"kept_pieces\" or \"bytes\"");
        var fallback = fallbackName switch
        {
            "kept_pieces" => TokenizerFallback.KeptPieces,
            "bytes" => TokenizerFallback.Bytes,
            _ => throw new TokenizerFormatException(path, "fallback", $"\"kept_pieces\" or \"bytes\", found \"{fallbackName}\""),
        };
        try { return new CompactGpt2Tokenizer(kept, path, fallback); }
        catch (ArgumentException e) { throw new TokenizerFormatException(path, "kept_gpt2_ids", $"distinct multi-byte GPT-2 ids ({e.Message})"); }
    }
}
