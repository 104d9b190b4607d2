using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace TransPeft.Engine.IO;

/// <summary>
/// Reads one safetensors file through a memory mapping. The header is validated completely
/// on open (see <see cref="Open"/>), so a reader that exists describes a well-formed file.
/// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section.
/// </summary>
public sealed unsafe class SafetensorsReader : IDisposable
{
    /// <summary>Headers larger than this are refused (the format's own reference limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorInfo> _tensors;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensor names in the order of their data offsets.</summary>
    public IReadOnlyList<string> Names { get; }

    private SafetensorsReader(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr,
        long dataStart, Dictionary<string, TensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path; _map = map; _view = view; _base = basePtr; _dataStart = dataStart;
        _tensors = tensors; Metadata = metadata;
        Names = tensors.Values.OrderBy(t => t.Begin).ThenBy(t => t.Name, StringComparer.Ordinal).Select(t => t.Name).ToArray();
    }

    /// <summary>
    /// Opens and validates a file: header length against the file size and the cap, well-formed JSON,
    /// known dtypes, integer shapes, byte range = elements x dtype size, ranges in bounds, contiguous
    /// from 0 with no gap or overlap and covering the data section, no duplicate names.
    /// </summary>
    public static SafetensorsReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        // Size and mapping both come from one open handle: a symlink (the Hugging Face cache links every
        // snapshot file into blobs/) is followed to its target, and the size is the target's, not the link's.
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* basePtr = null;
        try
        {
            long fileLength = InputFile.RegularLength(fs, path);
            if (fileLength < 8)
                throw new SafetensorsFormatException(path, null, $"file is {fileLength} bytes, shorter than the 8-byte header length prefix");
            Span<byte> prefix = stackalloc byte[8];
            fs.ReadExactly(prefix);
            ulong headerLenU = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLenU > MaxHeaderBytes)
                throw new SafetensorsFormatException(path, null, $"header length {headerLenU} exceeds the cap of {MaxHeaderBytes} bytes");
            long headerLen = (long)headerLenU;
            if (8 + headerLen > fileLength)
                throw new SafetensorsFormatException(path, null, $"header length {headerLen} runs past the end of the file ({fileLength} bytes)");

            map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            fs = null; // the mapping owns the handle now
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            basePtr += view.PointerOffset;
            var headerBytes = new ReadOnlySpan<byte>(basePtr + 8, checked((int)headerLen));
            long dataLength = fileLength - 8 - headerLen;
            var (tensors, metadata) = ParseHeader(path, headerBytes, dataLength);
            return new SafetensorsReader(path, map, view, basePtr, 8 + headerLen, tensors, metadata);
        }
        catch
        {
            if (basePtr != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            fs?.Dispose();
            throw;
        }
    }

    internal static (Dictionary<string, TensorInfo>, IReadOnlyDictionary<string, string>) ParseHeader(
        string path, ReadOnlySpan<byte> headerBytes, long dataLength)
    {
        // JsonDocument checks UTF-8 only when a string is read, so bad bytes in a name would surface later
        // as an InvalidOperationException; check the whole header up front instead.
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes))
            throw new SafetensorsFormatException(path, null, "header is not valid UTF-8 text");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException(path, null, $"header is not well-formed JSON: {e.Message}");
        }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(path, null, $"header must be a JSON object, found {doc.RootElement.ValueKind}");

        var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        bool sawMetadata = false;
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (sawMetadata) throw new SafetensorsFormatException(path, null, "duplicate '__metadata__' entry");
                sawMetadata = true;
                if (prop.Value.ValueKind != JsonValueKind.Object)
                    throw new SafetensorsFormatException(path, null, "'__metadata__' must be an object of string values");
                foreach (var m in prop.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String)
                        throw new SafetensorsFormatException(path, null, $"'__metadata__' value of '{m.Name}' must be a string, found {m.Value.ValueKind}");
                    // JsonDocument keeps repeated properties; a repeated key would silently pick one value.
                    if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                        throw new SafetensorsFormatException(path, null, $"'__metadata__' key '{m.Name}' appears twice");
                }
                continue;
            }
            // JsonDocument keeps repeated properties (it does not reject them), so this check is ours to make.
            if (tensors.ContainsKey(prop.Name))
                throw new SafetensorsFormatException(path, prop.Name, "duplicate tensor name: the header lists it twice");
            tensors[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
        }

        // Offsets must tile the data section exactly: sorted by begin, each starts where the last ended.
        long expected = 0;
        foreach (var t in tensors.Values.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.Begin < expected)
                throw new SafetensorsFormatException(path, t.Name, $"byte range [{t.Begin}, {t.End}) overlaps the previous tensor, which ends at {expected}");
            if (t.Begin > expected)
                throw new SafetensorsFormatException(path, t.Name, $"byte range starts at {t.Begin}, leaving a gap after offset {expected} (offsets must be contiguous)");
            expected = t.End;
        }
        if (expected != dataLength)
            throw new SafetensorsFormatException(path, null, $"tensors cover {expected} bytes of a {dataLength}-byte data section (trailing bytes are not allowed)");
        return (tensors, metadata);
    }

    private static TensorInfo ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(path, name, "entry must be an object with dtype, shape and data_offsets");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new SafetensorsFormatException(path, name, "missing string field 'dtype'");
        if (!SafetensorsDTypeExtensions.TryParse(dt.GetString()!, out var dtype))
            throw new SafetensorsFormatException(path, name, $"unknown dtype '{dt.GetString()}' (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new SafetensorsFormatException(path, name, "missing array field 'shape'");
        var shape = new List<long>();
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new SafetensorsFormatException(path, name, $"shape entry {d} is not a non-negative integer");
            shape.Add(v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new SafetensorsFormatException(path, name, "missing field 'data_offsets' of two integers [begin, end]");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new SafetensorsFormatException(path, name, $"data_offsets {off} must be integers with 0 <= begin <= end");
        if (end > dataLength)
            throw new SafetensorsFormatException(path, name, $"data_offsets end {end} is past the end of the {dataLength}-byte data section");
        long elements = 1;
        try { foreach (var d in shape) elements = checked(elements * d); }
        catch (OverflowException) { throw new SafetensorsFormatException(path, name, "shape's element count overflows"); }
        long want = elements * dtype.ByteSize();
        if (want != end - begin)
            throw new SafetensorsFormatException(path, name,
                $"shape [{string.Join(", ", shape)}] x {dtype} ({dtype.ByteSize()} bytes) = {want} bytes, but data_offsets span {end - begin} bytes");
        return new TensorInfo(name, dtype, shape.ToArray(), begin, end);
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorInfo GetInfo(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>The raw little-endian bytes of a tensor, straight from the mapping (valid while the reader lives).</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var t = GetInfo(name);
        if (t.ByteLength > int.MaxValue)
            throw new NotSupportedException($"{Path}: tensor '{name}' is {t.ByteLength} bytes; tensors over 2 GiB cannot be read as one span");
        return new ReadOnlySpan<byte>(_base + _dataStart + t.Begin, (int)t.ByteLength);
    }

    /// <summary>A tensor converted to fp32 (F32 as is; F16, BF16 and F64 converted; integer types refused).</summary>
    public float[] ReadFloat32(string name)
    {
        var t = GetInfo(name);
        var bytes = GetBytes(name);
        var result = new float[t.ElementCount];
        switch (t.DType)
        {
            case SafetensorsDType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
                break;
            case SafetensorsDType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < result.Length; i++) result[i] = BFloat16.ToSingle(bf[i]);
                break;
            case SafetensorsDType.F16:
                var h = MemoryMarshal.Cast<byte, Half>(bytes);
                for (int i = 0; i < result.Length; i++) result[i] = (float)h[i];
                break;
            case SafetensorsDType.F64:
                var d = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < result.Length; i++) result[i] = (float)d[i];
                break;
            default:
                throw NotFloatingPoint(t);
        }
        return result;
    }

    /// <summary>Throws unless a tensor holds floating-point values (the one message for every reader of model weights).</summary>
    internal void RequireFloatingPoint(string name)
    {
        var t = GetInfo(name);
        if (t.DType is not (SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16 or SafetensorsDType.F64)) throw NotFloatingPoint(t);
    }

    private SafetensorsFormatException NotFloatingPoint(TensorInfo t) =>
        new(Path, t.Name, $"dtype {t.DType} is not a floating-point type (expected F32, F16, BF16 or F64)");

    /// <summary>
    /// <paramref name="byteCount"/> raw bytes of a tensor from <paramref name="byteOffset"/> on, straight from the mapping:
    /// how a tensor of any size is read in chunks (valid while the reader lives).
    /// </summary>
    internal ReadOnlySpan<byte> GetBytes(string name, long byteOffset, int byteCount)
    {
        var t = GetInfo(name);
        if (byteOffset < 0 || byteCount < 0 || byteOffset + byteCount > t.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), $"{Path}: bytes [{byteOffset}, {byteOffset + byteCount}) are outside tensor '{name}' ({t.ByteLength} bytes)");
        return new ReadOnlySpan<byte>(_base + _dataStart + t.Begin + byteOffset, byteCount);
    }

    /// <summary>A floating-point tensor as fp64 (used by tests against the float64 golden values).</summary>
    public double[] ReadFloat64(string name)
    {
        var t = GetInfo(name);
        if (t.DType == SafetensorsDType.F64) return MemoryMarshal.Cast<byte, double>(GetBytes(name)).ToArray();
        return Array.ConvertAll(ReadFloat32(name), x => (double)x);
    }

    /// <summary>An integer tensor (I64, I32, I16, I8, U8) widened to long.</summary>
    public long[] ReadInt64(string name)
    {
        var t = GetInfo(name);
        var bytes = GetBytes(name);
        return t.DType switch
        {
            SafetensorsDType.I64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            SafetensorsDType.I32 => Array.ConvertAll(MemoryMarshal.Cast<byte, int>(bytes).ToArray(), x => (long)x),
            SafetensorsDType.I16 => Array.ConvertAll(MemoryMarshal.Cast<byte, short>(bytes).ToArray(), x => (long)x),
            SafetensorsDType.I8 => Array.ConvertAll(MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray(), x => (long)x),
            SafetensorsDType.U8 => Array.ConvertAll(bytes.ToArray(), x => (long)x),
            _ => throw new SafetensorsFormatException(Path, name, $"dtype {t.DType} is not an integer type"),
        };
    }

    public void Dispose()
    {
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
