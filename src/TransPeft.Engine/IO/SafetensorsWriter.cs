using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace TransPeft.Engine.IO;

/// <summary>
/// Collects tensors and writes one safetensors file: keys sorted byte-wise (as the Python writer does),
/// contiguous offsets, header padded with spaces to a multiple of 8, written to a temporary file
/// that is renamed into place so a crash never leaves a half-written file.
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly SortedDictionary<string, (SafetensorsDType DType, long[] Shape, byte[] Data)> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    public SafetensorsWriter AddMetadata(string key, string value) { _metadata[key] = value; return this; }

    public SafetensorsWriter Add(string name, SafetensorsDType dtype, long[] shape, byte[] data)
    {
        if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved", nameof(name));
        if (shape.Any(d => d < 0)) throw new ArgumentException($"tensor '{name}': shape [{string.Join(",", shape)}] has a negative dimension");
        long elements = shape.Aggregate(1L, (a, b) => checked(a * b));
        if (elements * dtype.ByteSize() != data.Length)
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(",", shape)}] x {dtype} needs {elements * dtype.ByteSize()} bytes, got {data.Length}");
        if (!_tensors.TryAdd(name, (dtype, shape, data)))
            throw new ArgumentException($"tensor '{name}' added twice");
        return this;
    }

    /// <summary>Adds fp32 values stored as <paramref name="dtype"/> (F32, BF16 or F16).</summary>
    public SafetensorsWriter AddFloat(string name, ReadOnlySpan<float> values, long[] shape, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        byte[] bytes;
        switch (dtype)
        {
            case SafetensorsDType.F32:
                bytes = MemoryMarshal.AsBytes(values).ToArray();
                break;
            case SafetensorsDType.BF16:
                var bf = new ushort[values.Length];
                for (int i = 0; i < values.Length; i++) bf[i] = BFloat16.FromSingle(values[i]);
                bytes = MemoryMarshal.AsBytes(bf.AsSpan()).ToArray();
                break;
            case SafetensorsDType.F16:
                var h = new Half[values.Length];
                for (int i = 0; i < values.Length; i++) h[i] = (Half)values[i];
                bytes = MemoryMarshal.AsBytes(h.AsSpan()).ToArray();
                break;
            default:
                throw new ArgumentException($"tensor '{name}': cannot store floats as {dtype}");
        }
        return Add(name, dtype, shape, bytes);
    }

    public SafetensorsWriter AddFloat64(string name, ReadOnlySpan<double> values, long[] shape) =>
        Add(name, SafetensorsDType.F64, shape, MemoryMarshal.AsBytes(values).ToArray());

    public SafetensorsWriter AddInt64(string name, ReadOnlySpan<long> values, long[] shape) =>
        Add(name, SafetensorsDType.I64, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>The header JSON as the file will hold it, before padding.</summary>
    internal byte[] BuildHeader()
    {
        using var ms = new MemoryStream();
        // Relaxed escaping writes non-ASCII names and metadata (and quotes inside metadata JSON) readably;
        // the result is still strict JSON, which is all the format asks for.
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in _metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in _tensors)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", t.DType.ToString());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    /// <summary>Writes the file atomically (temporary file in the same folder, then rename).</summary>
    public void Save(string path)
    {
        var header = BuildHeader();
        int padded = (header.Length + 7) / 8 * 8;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(header);
            for (int i = header.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var t in _tensors.Values) stream.Write(t.Data);
        });
    }
}
