using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TransPeft.Engine.Training;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Text;

/// <summary>
/// Turns a data file into tokenized examples (ids + labels, HF convention):
/// <list type="bullet">
/// <item>plain text: the file is one document, [BOS] + tokens + EOS, every token a target;</item>
/// <item><c>{"text"}</c> records: each record a document, likewise;</item>
/// <item><c>{"prompt","completion"}</c>: [BOS] + prompt + completion + EOS, targets = completion + EOS;</item>
/// <item>Alpaca <c>{"instruction","input","output"}</c>: the standard Alpaca prompt, targets = output + EOS;</item>
/// <item><c>{"input_ids","labels"}</c>: taken as is (labels default to the ids; positions whose
///   optional attention_mask is 0 are removed); nothing is added.</item>
/// </list>
/// Prompt and completion are encoded separately and concatenated, so the loss mask falls exactly on the
/// boundary. With packing (the default for the two text formats) the examples are concatenated and cut
/// into sequences of exactly seqLen tokens (the last one may be shorter); without it each example is
/// truncated to seqLen. Examples left with no counted target are skipped and reported.
/// </summary>
internal static class DatasetLoader
{
    /// <summary>Plain text is encoded in blocks of about this many chars, cut at blank lines, to bound memory.</summary>
    private const int TextBlockChars = 1 << 20;

    public static (TokenizedDataset Dataset, DatasetReport Report) Load(
        string path, DatasetFormat format, DatasetTokenizer tokenizer, int seqLen, bool? pack = null, string? cacheDir = null, int? vocabSize = null)
    {
        if (seqLen < 2) throw new ArgumentOutOfRangeException(nameof(seqLen), $"seq_len must be at least 2, got {seqLen}");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        // Hashing /dev/zero or a pipe would never end: only regular files (links followed) are data.
        using (var probe = InputFile.OpenRead(path)) InputFile.RegularLength(probe, path);
        if (format == DatasetFormat.Auto) format = Detect(path);
        bool packed = pack ?? format.PacksByDefault();

        string key = string.Join("|",
            TokenizationCache.FormatVersion, $"sha256={HashFile(path)}", $"tokenizer={tokenizer.Identity}",
            $"bos={tokenizer.BosId?.ToString() ?? "none"}", $"eos={tokenizer.EosId}", $"seq_len={seqLen}",
            $"format={format.Name()}", $"pack={packed}", $"template={(format == DatasetFormat.Alpaca ? "alpaca-v1" : "none")}");
        var cache = cacheDir is null ? null : new TokenizationCache(cacheDir);
        var entry = cache?.TryLoad(key);
        // The cache key does not hold the model's vocabulary: a cached entry is checked against it, and one with an
        // id out of range is encoded again, so that the error names the file's line.
        if (entry is not null && vocabSize is { } v && !FitsVocab(entry, v)) entry = null;
        bool hit = entry is not null;
        if (entry is null)
        {
            var examples = Encode(path, format, tokenizer, vocabSize);
            if (vocabSize is { } vv && examples.FindIndex(e => !FitsVocab(e.Ids, e.Labels, vv)) is >= 0 and var bad)
                // Only a tokenizer with more ids than the model gets here (pre-tokenized records are checked per line).
                throw new DatasetFormatException(path, $"example {bad + 1}", $"the tokenizer produced an id outside the model's vocab_size {vv}");
            entry = Shape(examples, seqLen, packed);
            cache?.Save(key, entry);
        }
        int count = entry.Offsets.Length - 1;
        if (count == 0)
            throw new DatasetFormatException(path, "(file)", $"no usable example: all {entry.Skipped} example(s) lost every counted target (labels all -100, or the prompt fills seq_len = {seqLen})");
        var ds = new TokenizedDataset(path, key, tokenizer.PadOrEos, entry.Ids, entry.Labels, entry.Offsets);
        long targets = 0;
        for (int i = 0; i < count; i++) targets += CountTargets(ds.LabelsOf(i));
        return (ds, new DatasetReport(path, format, packed, count, entry.Skipped, entry.Truncated, entry.Ids.Length, targets, hit, key));
    }

    /// <summary>Format from the extension, or from the first JSON record's fields.</summary>
    public static DatasetFormat Detect(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".txt" or ".md" or ".text") return DatasetFormat.Text;
        if (ext is not (".jsonl" or ".json" or ".ndjson"))
            throw new DatasetFormatException(path, "(file)", $"cannot tell the format from the extension '{ext}': use .txt for plain text, .jsonl/.json for records, or set data_format");
        foreach (var (loc, o) in JsonRecordReader.Read(path))
        {
            if (o.ContainsKey("input_ids")) return DatasetFormat.Tokenized;
            if (o.ContainsKey("prompt") && o.ContainsKey("completion")) return DatasetFormat.PromptCompletion;
            if (o.ContainsKey("instruction") && o.ContainsKey("output")) return DatasetFormat.Alpaca;
            if (o.ContainsKey("text")) return DatasetFormat.TextRecords;
            throw new DatasetFormatException(path, loc,
                $"cannot tell the record format from fields [{string.Join(", ", o.Select(kv => kv.Key))}]: expected {{\"text\"}}, {{\"prompt\",\"completion\"}}, {{\"instruction\",\"input\",\"output\"}} or {{\"input_ids\",\"labels\"}}");
        }
        throw new DatasetFormatException(path, "(file)", "holds no record");
    }

    internal static string HashFile(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    private static bool FitsVocab(TokenizationCache.Entry e, int vocab) => FitsVocab(e.Ids, e.Labels, vocab);

    private static bool FitsVocab(int[] ids, int[] labels, int vocab)
    {
        foreach (var x in ids) if ((uint)x >= (uint)vocab) return false;
        foreach (var x in labels) if (x != TokenBatch.IgnoreIndex && (uint)x >= (uint)vocab) return false;
        return true;
    }

    private static List<(int[] Ids, int[] Labels)> Encode(string path, DatasetFormat format, DatasetTokenizer tok, int? vocabSize)
    {
        var list = new List<(int[], int[])>();
        if (format == DatasetFormat.Text)
        {
            var ids = new List<int>();
            if (tok.BosId is { } bos) ids.Add(bos);
            foreach (var block in TextBlocks(File.ReadAllText(path))) ids.AddRange(tok.Encode(block));
            ids.Add(tok.EosId);
            var a = ids.ToArray();
            list.Add((a, (int[])a.Clone()));
            return list;
        }
        foreach (var (loc, o) in JsonRecordReader.Read(path))
        {
            switch (format)
            {
                case DatasetFormat.TextRecords:
                {
                    var text = JsonRecordReader.RequireString(o, "text", path, loc, "text records need \"text\"");
                    var a = Concat(tok.BosId, tok.Encode(text), [], tok.EosId);
                    list.Add((a, (int[])a.Clone()));
                    break;
                }
                case DatasetFormat.PromptCompletion:
                {
                    const string hint = "prompt/completion records need \"prompt\" and \"completion\"";
                    var prompt = JsonRecordReader.RequireString(o, "prompt", path, loc, hint);
                    var completion = JsonRecordReader.RequireString(o, "completion", path, loc, hint);
                    list.Add(PromptAndTarget(tok, prompt, completion));
                    break;
                }
                case DatasetFormat.Alpaca:
                {
                    const string hint = "Alpaca records need \"instruction\" and \"output\" (\"input\" optional)";
                    var instruction = JsonRecordReader.RequireString(o, "instruction", path, loc, hint);
                    var input = JsonRecordReader.OptionalString(o, "input", path, loc);
                    var output = JsonRecordReader.RequireString(o, "output", path, loc, hint);
                    list.Add(PromptAndTarget(tok, AlpacaTemplate.Prompt(instruction, input), output));
                    break;
                }
                case DatasetFormat.Tokenized:
                    list.Add(PreTokenized(o, path, loc, vocabSize));
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(format), format, null);
            }
        }
        return list;
    }

    private static (int[], int[]) PromptAndTarget(DatasetTokenizer tok, string prompt, string completion)
    {
        var p = tok.Encode(prompt);
        var c = tok.Encode(completion);
        var ids = Concat(tok.BosId, p, c, tok.EosId);
        var labels = (int[])ids.Clone();
        int masked = ids.Length - c.Length - 1; // BOS + prompt
        Array.Fill(labels, TokenBatch.IgnoreIndex, 0, masked);
        return (ids, labels);
    }

    private static (int[], int[]) PreTokenized(JsonObject o, string path, string loc, int? vocabSize)
    {
        var ids = JsonRecordReader.IntArray(o, "input_ids", path, loc, required: true)!;
        var labels = JsonRecordReader.IntArray(o, "labels", path, loc, required: false) ?? (int[])ids.Clone();
        var mask = JsonRecordReader.IntArray(o, "attention_mask", path, loc, required: false);
        if (labels.Length != ids.Length)
            throw new DatasetFormatException(path, loc, $"field 'labels': expected {ids.Length} entries (as many as input_ids), got {labels.Length}");
        if (mask is not null && mask.Length != ids.Length)
            throw new DatasetFormatException(path, loc, $"field 'attention_mask': expected {ids.Length} entries (as many as input_ids), got {mask.Length}");
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] < 0) throw new DatasetFormatException(path, loc, $"field 'input_ids'[{i}]: expected a token id >= 0, got {ids[i]}");
            if (ids[i] >= vocabSize)
                throw new DatasetFormatException(path, loc, $"field 'input_ids'[{i}]: expected a token id below the model's vocab_size {vocabSize}, got {ids[i]}");
            if (labels[i] < 0 && labels[i] != TokenBatch.IgnoreIndex)
                throw new DatasetFormatException(path, loc, $"field 'labels'[{i}]: expected a token id >= 0 or -100, got {labels[i]}");
            if (labels[i] >= vocabSize)
                throw new DatasetFormatException(path, loc, $"field 'labels'[{i}]: expected a token id below the model's vocab_size {vocabSize} or -100, got {labels[i]}");
            if (mask is not null && mask[i] is not (0 or 1))
                throw new DatasetFormatException(path, loc, $"field 'attention_mask'[{i}]: expected 0 or 1, got {mask[i]}");
        }
        if (mask is null) return (ids, labels);
        var keep = Enumerable.Range(0, ids.Length).Where(i => mask[i] == 1).ToArray();
        return (Array.ConvertAll(keep, i => ids[i]), Array.ConvertAll(keep, i => labels[i]));
    }

    private static int[] Concat(int? bos, int[] a, int[] b, int eos)
    {
        int start = bos.HasValue ? 1 : 0;
        var r = new int[start + a.Length + b.Length + 1];
        if (bos is { } x) r[0] = x;
        a.CopyTo(r, start);
        b.CopyTo(r, start + a.Length);
        r[^1] = eos;
        return r;
    }

    /// <summary>Cuts text into blocks of about <see cref="TextBlockChars"/>, each ending after a blank line when one is near.</summary>
    internal static IEnumerable<string> TextBlocks(string text)
    {
        int pos = 0;
        while (pos < text.Length)
        {
            if (text.Length - pos <= TextBlockChars) { yield return text[pos..]; yield break; }
            int cut = text.IndexOf("\n\n", pos + TextBlockChars, StringComparison.Ordinal);
            cut = cut < 0 ? text.Length : cut + 2;
            yield return text[pos..cut];
            pos = cut;
        }
    }

    private static int CountTargets(ReadOnlySpan<int> labels)
    {
        int n = 0;
        for (int t = 1; t < labels.Length; t++) if (labels[t] != TokenBatch.IgnoreIndex) n++;
        return n;
    }

    /// <summary>Packs or truncates to seqLen, drops examples without a counted target, and flattens.</summary>
    private static TokenizationCache.Entry Shape(List<(int[] Ids, int[] Labels)> examples, int seqLen, bool pack)
    {
        var ids = new List<int>();
        var labels = new List<int>();
        var offsets = new List<long> { 0 };
        int skipped = 0, truncated = 0;

        void Emit(ReadOnlySpan<int> i, ReadOnlySpan<int> l)
        {
            if (CountTargets(l) == 0) { skipped++; return; }
            foreach (var x in i) ids.Add(x);
            foreach (var x in l) labels.Add(x);
            offsets.Add(ids.Count);
        }

        if (pack)
        {
            var streamIds = examples.SelectMany(e => e.Ids).ToArray();
            var streamLabels = examples.SelectMany(e => e.Labels).ToArray();
            for (int start = 0; start < streamIds.Length; start += seqLen)
            {
                int len = Math.Min(seqLen, streamIds.Length - start);
                Emit(streamIds.AsSpan(start, len), streamLabels.AsSpan(start, len));
            }
        }
        else
        {
            foreach (var (i, l) in examples)
            {
                int len = i.Length;
                if (len > seqLen) { truncated++; len = seqLen; }
                Emit(i.AsSpan(0, len), l.AsSpan(0, len));
            }
        }
        return new TokenizationCache.Entry(ids.ToArray(), labels.ToArray(), offsets.ToArray(), skipped, truncated);
    }
}
