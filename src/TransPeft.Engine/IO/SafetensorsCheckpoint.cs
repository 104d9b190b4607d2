using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace TransPeft.Engine.IO;

/// <summary>
/// A model's weights in a Hugging Face folder: one <c>model.safetensors</c>, or shards
/// <c>model-00001-of-0000N.safetensors</c> listed by <c>model.safetensors.index.json</c>
/// ({"metadata": {"total_size": bytes}, "weight_map": {tensor: shard file}}). Every tensor is looked
/// up by name across shards; the index and the shards must agree exactly. When both layouts are
/// present the index wins, as it does for transformers.
/// </summary>
public sealed partial class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafetensorsReader> _owner = new(StringComparer.Ordinal);
    private readonly List<SafetensorsReader> _readers = new();

    public string Directory { get; }
    public IReadOnlyCollection<string> Names => _owner.Keys;
    public IReadOnlyList<SafetensorsReader> Shards => _readers;

    private SafetensorsCheckpoint(string dir) { Directory = dir; }

    public static SafetensorsCheckpoint Open(string dir)
    {
        var ck = new SafetensorsCheckpoint(dir);
        try
        {
            var index = Path.Combine(dir, IndexFileName);
            var single = Path.Combine(dir, SingleFileName);
            if (File.Exists(index)) ck.OpenSharded(index);
            else if (File.Exists(single)) ck.Add(SafetensorsReader.Open(single));
            else throw new FileNotFoundException($"{dir}: no {SingleFileName} and no {IndexFileName}", single);
            return ck;
        }
        catch
        {
            ck.Dispose();
            throw;
        }
    }

    private void OpenSharded(string indexPath)
    {
        var byFile = ReadIndex(indexPath);
        foreach (var (file, tensors) in byFile)
        {
            var shardPath = Path.Combine(Path.GetDirectoryName(indexPath)!, file);
            if (!File.Exists(shardPath))
                throw new SafetensorsFormatException(indexPath, tensors.First(), $"shard file '{file}' listed in weight_map does not exist");
            var reader = SafetensorsReader.Open(shardPath);
            Add(reader);
            foreach (var t in tensors)
                if (!reader.Contains(t))
                    throw new SafetensorsFormatException(indexPath, t, $"weight_map says the tensor is in '{file}', which does not hold it");
            foreach (var t in reader.Names)
                if (!tensors.Contains(t))
                    throw new SafetensorsFormatException(shardPath, t, "tensor is in the shard but not in the index's weight_map");
        }
    }

    /// <summary>Parses and checks an index file; returns shard file -> the tensors it must hold.</summary>
    internal static Dictionary<string, HashSet<string>> ReadIndex(string indexPath)
    {
        JsonDocument doc;
        // JsonDocument keeps repeated properties; the checks below turn them into errors with names.
        var bytes = File.ReadAllBytes(indexPath);
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new SafetensorsFormatException(indexPath, null, "index is not valid UTF-8 text");
        try { doc = JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new SafetensorsFormatException(indexPath, null, $"index is not well-formed JSON: {JsonInput.Describe(e)}"); }
        using var _ = doc;
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(indexPath, null, $"index must be a JSON object with 'weight_map', found {root.ValueKind}");

        JsonElement? map = null;
        foreach (var prop in root.EnumerateObject())
        {
            if (prop.Name == "weight_map")
            {
                if (map is not null) throw new SafetensorsFormatException(indexPath, null, "'weight_map' appears twice");
                map = prop.Value;
            }
            else if (prop.Name == "metadata")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object)
                    throw new SafetensorsFormatException(indexPath, null, $"'metadata' must be an object, found {prop.Value.ValueKind}");
                // total_size is informational (transformers never checks it, and real indexes count tied or
                // shared tensors differently), so only its type is checked.
                if (prop.Value.TryGetProperty("total_size", out var ts)
                    && (ts.ValueKind != JsonValueKind.Number || !ts.TryGetInt64(out long size) || size < 0))
                    throw new SafetensorsFormatException(indexPath, null, $"'metadata.total_size' must be a non-negative integer byte count, found {ts.GetRawText()}");
            }
        }
        if (map is not { ValueKind: JsonValueKind.Object } weightMap)
            throw new SafetensorsFormatException(indexPath, null, "index needs an object field 'weight_map' mapping tensor names to shard files");

        var byFile = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in weightMap.EnumerateObject())
        {
            string tensor = entry.Name;
            if (!seen.Add(tensor))
                throw new SafetensorsFormatException(indexPath, tensor, "tensor is listed twice in weight_map");
            if (entry.Value.ValueKind != JsonValueKind.String || entry.Value.GetString() is not { Length: > 0 } file)
                throw new SafetensorsFormatException(indexPath, tensor, $"weight_map value must be a shard file name, found {entry.Value.GetRawText()}");
            if (Path.GetFileName(file) != file || file is "." or ".." || file.Contains('\\'))
                throw new SafetensorsFormatException(indexPath, tensor, $"shard name '{file}' must be a plain file name in the model folder");
            (byFile.TryGetValue(file, out var l) ? l : byFile[file] = new(StringComparer.Ordinal)).Add(tensor);
        }
        if (seen.Count == 0)
            throw new SafetensorsFormatException(indexPath, null, "weight_map lists no tensors");
        return byFile;
    }

    private void Add(SafetensorsReader reader)
    {
        _readers.Add(reader);
        foreach (var name in reader.Names)
        {
            if (_owner.TryGetValue(name, out var other))
                throw new SafetensorsFormatException(reader.Path, name, $"tensor also appears in shard '{other.Path}'");
            _owner[name] = reader;
        }
    }

    public bool Contains(string name) => _owner.ContainsKey(name);

    public SafetensorsReader ReaderOf(string name) =>
        _owner.TryGetValue(name, out var r) ? r : throw new SafetensorsFormatException(Directory, name, "tensor is missing from the checkpoint");

    public TensorInfo GetInfo(string name) => ReaderOf(name).GetInfo(name);
    public float[] ReadFloat32(string name) => ReaderOf(name).ReadFloat32(name);

    public void Dispose()
    {
        foreach (var r in _readers) r.Dispose();
        _readers.Clear();
    }

    /// <summary>HF's shard file name: model-00001-of-00003.safetensors (1-based, five digits).</summary>
    internal static string ShardFileName(int index, int count) => $"model-{index + 1:D5}-of-{count:D5}.safetensors";

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial Regex ShardNamePattern();

    /// <summary>
    /// Writes fp32 tensors as a checkpoint in <paramref name="dir"/>: one model.safetensors, or, when
    /// <paramref name="maxShardBytes"/> is given and the tensors do not fit in one file of that size,
    /// shards plus the index. Tensors are packed in the given order as huggingface_hub does: a new shard
    /// starts when the next tensor would overflow the current one; a tensor larger than the limit gets a
    /// shard of its own. Only one shard's bytes are held in memory at a time.
    /// </summary>
    /// <remarks>
    /// Every file is written atomically (temp + rename). Across files the order keeps readers from ever
    /// seeing a mix of old and new weights: for shards, the old index is removed first (a crash then leaves
    /// a folder that fails to open with a clear error, never a mixed one) and the new index is written
    /// last; for a single file, the old index (which readers prefer) is removed only once the new file is
    /// in place. Stale files of the other layout are removed at the end.
    /// </remarks>
    internal static void Save(string dir, IReadOnlyList<(string Name, float[] Data, long[] Shape)> tensors,
        SafetensorsDType dtype, long? maxShardBytes, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (maxShardBytes is <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), maxShardBytes, "a shard size limit must be positive");
        if (dtype is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            throw new ArgumentException($"weights are saved as F32, F16 or BF16, not {dtype}", nameof(dtype));
        var dupe = tensors.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (dupe is not null) throw new ArgumentException($"tensor '{dupe.Key}' is given twice", nameof(tensors));
        System.IO.Directory.CreateDirectory(dir);

        long Bytes(int i) => tensors[i].Data.LongLength * dtype.ByteSize();
        var shards = new List<List<int>> { new() };
        long current = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            long size = Bytes(i);
            if (maxShardBytes is long max && shards[^1].Count > 0 && current + size > max)
            {
                shards.Add(new());
                current = 0;
            }
            shards[^1].Add(i);
            current += size;
        }

        SafetensorsWriter NewWriter()
        {
            var w = new SafetensorsWriter().AddMetadata("format", "pt");
            if (metadata is not null) foreach (var (k, v) in metadata) w.AddMetadata(k, v);
            return w;
        }
        string indexPath = Path.Combine(dir, IndexFileName), singlePath = Path.Combine(dir, SingleFileName);
        var keep = new HashSet<string>(StringComparer.Ordinal);

        if (shards.Count == 1)
        {
            var w = NewWriter();
            foreach (int i in shards[0]) w.AddFloat(tensors[i].Name, tensors[i].Data, tensors[i].Shape, dtype);
            w.Save(singlePath);
            if (File.Exists(indexPath)) File.Delete(indexPath);
        }
        else
        {
            if (File.Exists(indexPath)) File.Delete(indexPath);
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            long total = 0;
            for (int s = 0; s < shards.Count; s++)
            {
                string file = ShardFileName(s, shards.Count);
                var w = NewWriter();
                foreach (int i in shards[s])
                {
                    w.AddFloat(tensors[i].Name, tensors[i].Data, tensors[i].Shape, dtype);
                    weightMap[tensors[i].Name] = file;
                    total += Bytes(i);
                }
                w.Save(Path.Combine(dir, file));
                keep.Add(file);
            }
            var map = new JsonObject();
            foreach (var (name, file) in weightMap) map[name] = file;
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = map };
            AtomicFile.WriteAllText(indexPath, index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (File.Exists(singlePath)) File.Delete(singlePath);
        }
        foreach (var path in System.IO.Directory.EnumerateFiles(dir))
        {
            string name = Path.GetFileName(path);
            if (ShardNamePattern().IsMatch(name) && !keep.Contains(name)) File.Delete(path);
        }
    }
}
