using System.Text.Json;
using System.Text.Json.Nodes;

namespace TransPeft.Engine.IO;

/// <summary>
/// A model's weights in a Hugging Face folder: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> ({"weight_map": {tensor: shard file}}). Every tensor is looked
/// up by name across shards; the index and the shards must agree exactly.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
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
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(indexPath)); }
        catch (JsonException e) { throw new SafetensorsFormatException(indexPath, null, $"index is not well-formed JSON: {e.Message}"); }
        if (root?["weight_map"] is not JsonObject map)
            throw new SafetensorsFormatException(indexPath, null, "index needs an object field 'weight_map' mapping tensor names to shard files");
        var byFile = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (tensor, fileNode) in map)
        {
            if (fileNode is not JsonValue v || !v.TryGetValue(out string? file) || string.IsNullOrEmpty(file))
                throw new SafetensorsFormatException(indexPath, tensor, "weight_map value must be a shard file name");
            if (file.Contains('/') || file.Contains('\\') || file.Contains(".."))
                throw new SafetensorsFormatException(indexPath, tensor, $"shard name '{file}' must be a plain file name in the model folder");
            (byFile.TryGetValue(file, out var l) ? l : byFile[file] = new()).Add(tensor);
        }
        foreach (var (file, tensors) in byFile)
        {
            var shardPath = Path.Combine(Path.GetDirectoryName(indexPath)!, file);
            if (!File.Exists(shardPath))
                throw new SafetensorsFormatException(indexPath, tensors[0], $"shard file '{file}' listed in weight_map does not exist");
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
}
