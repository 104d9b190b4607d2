using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Text;

/// <summary>
/// Tokenized datasets cached on disk as safetensors (ids and labels I32, offsets I64), one file per
/// key. The key holds everything the tokens depend on (file hash, tokenizer identity, special ids,
/// sequence length, format, packing), so a changed input simply misses; the full key is also stored
/// in the file's metadata and compared on load, so a damaged or colliding file is never trusted.
/// Files are written atomically (temporary file + rename): a crash leaves no half file.
/// </summary>
internal sealed class TokenizationCache(string directory)
{
    public const string FormatVersion = "tpeft-tokens-v1";
    public string Directory { get; } = directory;

    public string PathFor(string key) =>
        System.IO.Path.Combine(Directory, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..32] + ".tokens.safetensors");

    internal sealed record Entry(int[] Ids, int[] Labels, long[] Offsets, int Skipped, int Truncated);

    /// <summary>The cached entry for <paramref name="key"/>, or null when absent or unreadable.</summary>
    public Entry? TryLoad(string key)
    {
        var path = PathFor(key);
        if (!File.Exists(path)) return null;
        try
        {
            using var r = SafetensorsReader.Open(path);
            if (!r.Metadata.TryGetValue("key", out var stored) || stored != key) return null;
            var ids = ReadInt32(r, "ids");
            var labels = ReadInt32(r, "labels");
            var offsets = r.ReadInt64("offsets");
            if (ids.Length != labels.Length || offsets.Length == 0 || offsets[0] != 0 || offsets[^1] != ids.Length) return null;
            return new Entry(ids, labels, offsets, int.Parse(r.Metadata["skipped"]), int.Parse(r.Metadata["truncated"]));
        }
        catch (Exception e) when (e is SafetensorsFormatException or IOException or KeyNotFoundException or FormatException)
        {
            return null; // a damaged cache file is rebuilt, never trusted
        }
    }

    private static int[] ReadInt32(SafetensorsReader r, string name)
    {
        var info = r.GetInfo(name);
        if (info.DType != SafetensorsDType.I32) throw new FormatException($"{name} is {info.DType}, expected I32");
        return MemoryMarshal.Cast<byte, int>(r.GetBytes(name)).ToArray();
    }

    public void Save(string key, Entry e)
    {
        System.IO.Directory.CreateDirectory(Directory);
        new SafetensorsWriter()
            .AddMetadata("format", FormatVersion)
            .AddMetadata("key", key)
            .AddMetadata("skipped", e.Skipped.ToString())
            .AddMetadata("truncated", e.Truncated.ToString())
            .Add("ids", SafetensorsDType.I32, [e.Ids.Length], MemoryMarshal.AsBytes(e.Ids.AsSpan()).ToArray())
            .Add("labels", SafetensorsDType.I32, [e.Labels.Length], MemoryMarshal.AsBytes(e.Labels.AsSpan()).ToArray())
            .AddInt64("offsets", e.Offsets, [e.Offsets.Length])
            .Save(PathFor(key));
    }
}
