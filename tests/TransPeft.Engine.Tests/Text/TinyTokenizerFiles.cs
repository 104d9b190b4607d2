using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Text;

/// <summary>Small tokenizer files written from scratch, so every rule can be tested without downloads.</summary>
internal static class TinyTokenizerFiles
{
    /// <summary>
    /// A byte-level BPE tokenizer.json: the 256 byte tokens with id = byte value, then
    /// bc=256, ab=257, cd=258, abcd=259 and the added token &lt;|eot|&gt;=260. Merges in id order:
    /// "b c", "a b", "c d", "ab cd". Plain BPE turns "abcd" into a, bc, d (bc merges first and then
    /// nothing fits), while ignore_merges finds abcd whole.
    /// </summary>
    public static JsonObject ByteLevelBpe(bool ignoreMerges = false, bool arrayMerges = false)
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.Encode((byte)b).ToString()] = b;
        vocab["bc"] = 256; vocab["ab"] = 257; vocab["cd"] = 258; vocab["abcd"] = 259;
        (string, string)[] merges = [("b", "c"), ("a", "b"), ("c", "d"), ("ab", "cd")];
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(AddedToken(260, "<|eot|>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = ignoreMerges,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => arrayMerges ? (JsonNode)new JsonArray(m.Item1, m.Item2) : m.Item1 + " " + m.Item2).ToArray()),
            },
        };
    }

    public static JsonObject AddedToken(int id, string content) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
        ["normalized"] = false, ["special"] = true,
    };

    public static void Write(string dir, JsonObject tokenizerJson) =>
        File.WriteAllText(Path.Combine(dir, TokenizerLoader.TokenizerJsonFileName), tokenizerJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    // ---- SentencePiece: a ModelProto written with a minimal protobuf encoder.

    private static void Varint(Stream s, ulong v) { while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; } s.WriteByte((byte)v); }
    private static void Tag(Stream s, int field, int wireType) => Varint(s, (ulong)((field << 3) | wireType));
    private static void Bytes(Stream s, int field, byte[] b) { Tag(s, field, 2); Varint(s, (ulong)b.Length); s.Write(b); }
    private static void String(Stream s, int field, string v) => Bytes(s, field, Encoding.UTF8.GetBytes(v));
    private static void Int(Stream s, int field, long v) { Tag(s, field, 0); Varint(s, (ulong)v); }
    private static void Float(Stream s, int field, float v) { Tag(s, field, 5); s.Write(BitConverter.GetBytes(v)); }
    private static byte[] Message(Action<Stream> write) { var m = new MemoryStream(); write(m); return m.ToArray(); }

    /// <summary>
    /// A SentencePiece BPE model (sentencepiece_model.proto): ids 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;, then merged
    /// pieces by falling score (3 ▁h, 4 ll, 5 ▁he, 6 llo, 7 ▁hello, 8 ▁w, 9 or, 10 ld, 11 ▁wor, 12 ▁world),
    /// then the single characters ▁ h e l o w r d (13-20). "hello world" encodes to [7, 12].
    /// </summary>
    public static byte[] SentencePieceModel()
    {
        const int Normal = 1, Unknown = 2, Control = 3;
        var pieces = new List<(string Piece, float Score, int Type)> { ("<unk>", 0, Unknown), ("<s>", 0, Control), ("</s>", 0, Control) };
        string[] merged = ["▁h", "ll", "▁he", "llo", "▁hello", "▁w", "or", "ld", "▁wor", "▁world"];
        for (int i = 0; i < merged.Length; i++) pieces.Add((merged[i], -1 - i, Normal));
        foreach (var c in "▁helowrd") pieces.Add((c.ToString(), -100, Normal));
        return Message(m =>
        {
            foreach (var (piece, score, type) in pieces)
                Bytes(m, 1, Message(p => { String(p, 1, piece); Float(p, 2, score); Int(p, 3, type); }));
            // trainer_spec: model_type = BPE (2), vocab_size, unk/bos/eos ids, no pad.
            Bytes(m, 2, Message(t => { Int(t, 3, 2); Int(t, 4, pieces.Count); Int(t, 40, 0); Int(t, 41, 1); Int(t, 42, 2); Int(t, 43, -1); }));
            // normalizer_spec: identity, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces.
            Bytes(m, 3, Message(n => { String(n, 1, "identity"); Int(n, 3, 1); Int(n, 4, 1); Int(n, 5, 1); }));
        });
    }

    /// <summary>A tokenizer.json of the SentencePiece kind (Llama-2 style: Metaspace, byte_fallback) — not byte-level BPE.</summary>
    public static JsonObject SentencePieceStyleJson() => new()
    {
        ["added_tokens"] = new JsonArray(),
        ["normalizer"] = new JsonObject { ["type"] = "Sequence", ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" }) },
        ["pre_tokenizer"] = null,
        ["decoder"] = new JsonObject { ["type"] = "Sequence" },
        ["model"] = new JsonObject
        {
            ["type"] = "BPE", ["byte_fallback"] = true, ["vocab"] = new JsonObject { ["<unk>"] = 0, ["▁"] = 1 }, ["merges"] = new JsonArray(),
        },
    };
}
