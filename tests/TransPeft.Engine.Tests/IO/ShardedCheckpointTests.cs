using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.IO;

/// <summary>Checkpoint folders: single file or shards + model.safetensors.index.json, written and read back.</summary>
public sealed class ShardedCheckpointTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static List<(string Name, float[] Data, long[] Shape)> Tensors()
    {
        // 4 tensors of 400, 800, 200 and 1200 bytes in F32.
        (string, int)[] spec = [("model.embed_tokens.weight", 100), ("model.layers.0.mlp.up_proj.weight", 200), ("model.norm.weight", 50), ("lm_head.weight", 300)];
        return spec.Select((s, k) => (s.Item1, Enumerable.Range(0, s.Item2).Select(i => k * 1000f + i).ToArray(), new long[] { s.Item2 })).ToList();
    }

    [Fact]
    public void Sharded_round_trip_splits_like_huggingface_and_reads_every_tensor()
    {
        var tensors = Tensors();
        // Limit 1000 bytes: [400 + 800 > 1000] -> shard 1 = {embed}; shard 2 = {up (800), norm (200)} = 1000;
        // lm_head (1200) is larger than the limit and gets a shard of its own.
        SafetensorsCheckpoint.Save(_dir.Path, tensors, SafetensorsDType.F32, maxShardBytes: 1000);
        var files = Directory.GetFiles(_dir.Path).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
            "model.safetensors.index.json"], files);

        var index = JsonNode.Parse(File.ReadAllText(_dir.File("model.safetensors.index.json")))!;
        Assert.Equal(2600, (long)index["metadata"]!["total_size"]!);
        var map = index["weight_map"]!.AsObject();
        Assert.Equal(["lm_head.weight", "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "model.norm.weight"], map.Select(kv => kv.Key));
        Assert.Equal("model-00001-of-00003.safetensors", (string)map["model.embed_tokens.weight"]!);
        Assert.Equal("model-00002-of-00003.safetensors", (string)map["model.layers.0.mlp.up_proj.weight"]!);
        Assert.Equal("model-00002-of-00003.safetensors", (string)map["model.norm.weight"]!);
        Assert.Equal("model-00003-of-00003.safetensors", (string)map["lm_head.weight"]!);

        using var ck = SafetensorsCheckpoint.Open(_dir.Path);
        Assert.Equal(3, ck.Shards.Count);
        Assert.Equal(4, ck.Names.Count);
        foreach (var (name, data, shape) in tensors)
        {
            Assert.Equal(data, ck.ReadFloat32(name));
            Assert.Equal(shape, ck.GetInfo(name).Shape);
            Assert.Equal("pt", ck.ReaderOf(name).Metadata["format"]);
        }
    }

    [Fact]
    public void Everything_fitting_one_shard_is_written_as_a_single_file_and_stale_layouts_are_removed()
    {
        var tensors = Tensors();
        SafetensorsCheckpoint.Save(_dir.Path, tensors, SafetensorsDType.BF16, maxShardBytes: 1000);
        Assert.True(File.Exists(_dir.File("model.safetensors.index.json")));

        // Re-saving unsharded must remove the index (which readers prefer) and the old shards.
        File.WriteAllText(_dir.File("model-00009-of-00009.safetensors.keep"), "not ours");
        SafetensorsCheckpoint.Save(_dir.Path, tensors, SafetensorsDType.F32, maxShardBytes: 1 << 20);
        Assert.Equal(["model-00009-of-00009.safetensors.keep", "model.safetensors"],
            Directory.GetFiles(_dir.Path).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal));
        using (var ck = SafetensorsCheckpoint.Open(_dir.Path))
            Assert.Equal(tensors[3].Data, ck.ReadFloat32("lm_head.weight"));

        // And going back to shards removes the single file.
        SafetensorsCheckpoint.Save(_dir.Path, tensors, SafetensorsDType.F32, maxShardBytes: 1400); // [400, 800, 200] [1200]
        Assert.False(File.Exists(_dir.File("model.safetensors")));
        using var ck2 = SafetensorsCheckpoint.Open(_dir.Path);
        Assert.Equal(2, ck2.Shards.Count);
        Assert.Equal(tensors[0].Data, ck2.ReadFloat32("model.embed_tokens.weight"));
    }

    [Fact]
    public void Save_refuses_bad_arguments()
    {
        var t = Tensors();
        Assert.Throws<ArgumentOutOfRangeException>(() => SafetensorsCheckpoint.Save(_dir.Path, t, SafetensorsDType.F32, maxShardBytes: 0));
        Assert.Contains("F32, F16 or BF16", Assert.Throws<ArgumentException>(() => SafetensorsCheckpoint.Save(_dir.Path, t, SafetensorsDType.I64, null)).Message);
        t.Add(t[0]);
        Assert.Contains("'model.embed_tokens.weight' is given twice", Assert.Throws<ArgumentException>(() => SafetensorsCheckpoint.Save(_dir.Path, t, SafetensorsDType.F32, null)).Message);
    }

    // ---- index problems: each names the index (or shard) file, the tensor where one is involved, and the rule.

    private string WriteShards()
    {
        File.WriteAllBytes(_dir.File("a.safetensors"), RawSafetensors.SingleF32("x", [1f, 2f]));
        File.WriteAllBytes(_dir.File("b.safetensors"), RawSafetensors.SingleF32("y", [3f]));
        return _dir.File(SafetensorsCheckpoint.IndexFileName);
    }

    public static TheoryData<string, string?, string> BrokenIndexes => new()
    {
        { "{\"weight_map\": {\"x\": \"a.safetensors\", ", null, "index is not well-formed JSON" },
        { "[\"a.safetensors\"]", null, "index must be a JSON object with 'weight_map', found Array" },
        { "{\"metadata\": {}}", null, "index needs an object field 'weight_map'" },
        { "{\"weight_map\": {}}", null, "weight_map lists no tensors" },
        { "{\"weight_map\": {\"x\": \"a.safetensors\"}, \"weight_map\": {\"y\": \"b.safetensors\"}}", null, "'weight_map' appears twice" },
        { "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\", \"x\": \"b.safetensors\"}}", "x", "tensor is listed twice in weight_map" },
        { "{\"weight_map\": {\"x\": 3, \"y\": \"b.safetensors\"}}", "x", "weight_map value must be a shard file name, found 3" },
        { "{\"weight_map\": {\"x\": \"../a.safetensors\", \"y\": \"b.safetensors\"}}", "x", "shard name '../a.safetensors' must be a plain file name" },
        { "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"c.safetensors\"}}", "y", "shard file 'c.safetensors' listed in weight_map does not exist" },
        { "{\"weight_map\": {\"x\": \"b.safetensors\", \"y\": \"b.safetensors\"}}", "x", "weight_map says the tensor is in 'b.safetensors', which does not hold it" },
        { "{\"metadata\": {\"total_size\": \"12\"}, \"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}", null, "'metadata.total_size' must be a non-negative integer byte count" },
        { "{\"metadata\": [], \"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}", null, "'metadata' must be an object" },
    };

    [Theory]
    [MemberData(nameof(BrokenIndexes))]
    public void Broken_index_is_rejected_naming_file_tensor_and_rule(string indexJson, string? tensor, string rule)
    {
        var indexPath = WriteShards();
        File.WriteAllText(indexPath, indexJson);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Contains(SafetensorsCheckpoint.IndexFileName, e.Message);
        Assert.Contains(rule, e.Message);
        Assert.Equal(tensor, e.Tensor);
    }

    [Fact]
    public void Tensor_in_a_shard_but_missing_from_the_index_is_rejected_naming_the_shard()
    {
        var indexPath = WriteShards();
        File.WriteAllBytes(_dir.File("b.safetensors"), new SafetensorsWriter().AddFloat("y", [3f], [1]).AddFloat("z", [4f], [1]).ToBytesForTest(_dir));
        File.WriteAllText(indexPath, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}");
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Contains("b.safetensors", e.Message);
        Assert.Equal("z", e.Tensor);
        Assert.Contains("tensor is in the shard but not in the index's weight_map", e.Message);
    }

    [Fact]
    public void Corrupt_shard_is_reported_by_its_own_file_name()
    {
        var indexPath = WriteShards();
        File.WriteAllText(indexPath, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}");
        File.WriteAllBytes(_dir.File("b.safetensors"), RawSafetensors.Build("{\"y\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4));
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.EndsWith("b.safetensors", e.FilePath);
        Assert.Equal("y", e.Tensor);
    }

    [Fact]
    public void Folder_without_weights_names_both_layouts()
    {
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Contains("no model.safetensors and no model.safetensors.index.json", e.Message);
        Assert.Contains(_dir.Path, e.Message);
    }

    [Fact]
    public void Missing_tensor_lookup_names_the_checkpoint_and_tensor()
    {
        File.WriteAllBytes(_dir.File("model.safetensors"), RawSafetensors.SingleF32("x", [1f]));
        using var ck = SafetensorsCheckpoint.Open(_dir.Path);
        var e = Assert.Throws<SafetensorsFormatException>(() => ck.ReadFloat32("nope"));
        Assert.Equal("nope", e.Tensor);
        Assert.Contains("tensor is missing from the checkpoint", e.Message);
    }
}

internal static class SafetensorsWriterTestExtensions
{
    /// <summary>The bytes the writer produces (through a scratch file, as Save is the only output).</summary>
    public static byte[] ToBytesForTest(this SafetensorsWriter w, TempDir dir)
    {
        var path = dir.File($".scratch-{Guid.NewGuid():N}");
        w.Save(path);
        var bytes = File.ReadAllBytes(path);
        File.Delete(path);
        return bytes;
    }
}
