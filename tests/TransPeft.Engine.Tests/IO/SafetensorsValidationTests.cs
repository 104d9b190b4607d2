using System.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.IO;

/// <summary>
/// Hand-written broken safetensors files: each must be refused on open with an error that names the
/// file, the tensor (where one is involved) and the rule it breaks.
/// </summary>
public sealed class SafetensorsValidationTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>One broken header: the JSON, the data-section size, the tensor to blame (or null) and a phrase of the rule.</summary>
    public static TheoryData<string, string, int, string?, string> BrokenHeaders => new()
    {
        { "not-json", "{\"a\": {\"dtype\": ", 0, null, "header is not well-formed JSON" },
        { "not-object", "[1, 2, 3]", 0, null, "header must be a JSON object, found Array" },
        { "entry-not-object", "{\"a\": 5}", 0, "a", "entry must be an object with dtype, shape and data_offsets" },
        { "unknown-dtype", "{\"w\": {\"dtype\": \"F8_E9M9\", \"shape\": [1], \"data_offsets\": [0, 1]}}", 1, "w", "unknown dtype 'F8_E9M9'" },
        { "missing-dtype", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "w", "missing string field 'dtype'" },
        { "shape-not-array", "{\"w\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16, "w", "missing array field 'shape'" },
        { "negative-dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "w", "shape entry -1 is not a non-negative integer" },
        { "fractional-dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, "w", "shape entry 1.5 is not a non-negative integer" },
        { "offsets-arity", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "w", "missing field 'data_offsets' of two integers" },
        { "offsets-strings", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", \"4\"]}}", 4, "w", "must be integers with 0 <= begin <= end" },
        { "offsets-reversed", "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 0]}}", 4, "w", "must be integers with 0 <= begin <= end" },
        { "size-mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4, "w", "= 8 bytes, but data_offsets span 4 bytes" },
        { "bf16-size-mismatch", "{\"w\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", 16, "w", "x BF16 (2 bytes) = 8 bytes, but data_offsets span 16 bytes" },
        { "count-overflow", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 4, "w", "element count overflows" },
        { "out-of-bounds", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8, "w", "data_offsets end 16 is past the end of the 8-byte data section" },
        { "gap", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12, "b", "leaving a gap after offset 4" },
        { "not-from-zero", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "a", "leaving a gap after offset 0" },
        { "overlap", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, "b", "overlaps the previous tensor, which ends at 8" },
        { "trailing-bytes", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8, null, "tensors cover 4 bytes of a 8-byte data section" },
        { "duplicate-name", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "a", "duplicate tensor name" },
        { "duplicate-metadata", "{\"__metadata__\": {\"format\": \"pt\"}, \"__metadata__\": {\"format\": \"pt\"}}", 0, null, "duplicate '__metadata__' entry" },
        { "metadata-not-object", "{\"__metadata__\": [\"pt\"]}", 0, null, "'__metadata__' must be an object of string values" },
        { "metadata-non-string", "{\"__metadata__\": {\"step\": 5}}", 0, null, "'__metadata__' value of 'step' must be a string, found Number" },
        { "metadata-repeated-key", "{\"__metadata__\": {\"format\": \"pt\", \"format\": \"np\"}}", 0, null, "'__metadata__' key 'format' appears twice" },
    };

    [Theory]
    [MemberData(nameof(BrokenHeaders))]
    public void Broken_header_is_rejected_naming_file_tensor_and_rule(string caseName, string header, int dataBytes, string? tensor, string rule)
    {
        var path = RawSafetensors.Write(_dir, caseName + ".safetensors", header, dataBytes);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(path));
        Assert.Contains(caseName + ".safetensors", e.Message);
        Assert.Contains(rule, e.Message);
        Assert.Equal(path, e.FilePath);
        Assert.Equal(tensor, e.Tensor);
        if (tensor is not null) Assert.Contains($"tensor '{tensor}'", e.Message);
    }

    [Fact]
    public void Every_broken_header_gets_its_own_message()
    {
        var messages = new HashSet<string>();
        foreach (var row in BrokenHeaders)
        {
            var (name, header, data) = ((string)row[0], (string)row[1], (int)row[2]);
            var path = RawSafetensors.Write(_dir, "same.safetensors", header, data);
            var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(path));
            Assert.True(messages.Add(e.Rule), $"case '{name}' repeats the message of another case: {e.Rule}");
        }
        Assert.True(messages.Count >= 20);
    }

    [Fact]
    public void File_shorter_than_the_length_prefix_is_rejected()
    {
        var path = _dir.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(path));
        Assert.Contains("short.safetensors", e.Message);
        Assert.Contains("file is 3 bytes, shorter than the 8-byte header length prefix", e.Message);
    }

    [Fact]
    public void Header_length_past_end_of_file_is_rejected()
    {
        var path = RawSafetensors.Write(_dir, "truncated.safetensors", "{}", 0, declaredHeaderLength: 4096);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(path));
        Assert.Contains("truncated.safetensors", e.Message);
        Assert.Contains("header length 4096 runs past the end of the file (10 bytes)", e.Message);
    }

    [Fact]
    public void Header_length_above_the_cap_is_rejected_before_reading_it()
    {
        // The prefix claims a 200 MB header; the file is tiny. The cap check must come first (no allocation).
        var path = RawSafetensors.Write(_dir, "huge-header.safetensors", "{}", 0, declaredHeaderLength: 200_000_000);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(path));
        Assert.Contains("huge-header.safetensors", e.Message);
        Assert.Contains($"header length 200000000 exceeds the cap of {SafetensorsReader.MaxHeaderBytes} bytes", e.Message);
    }

    [Fact]
    public void Header_that_is_not_utf8_is_rejected()
    {
        var header = Encoding.UTF8.GetBytes("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}");
        header[2] = 0xFF; // the name "w" becomes a byte that never occurs in UTF-8
        var path = _dir.File("latin1.safetensors");
        File.WriteAllBytes(path, RawSafetensors.Build(header, 4));
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(path));
        Assert.Contains("latin1.safetensors", e.Message);
        Assert.Contains("header is not valid UTF-8 text", e.Message);
    }

    [Fact]
    public void Missing_file_names_the_path()
    {
        var path = _dir.File("absent.safetensors");
        var e = Assert.Throws<FileNotFoundException>(() => SafetensorsReader.Open(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Integer_tensor_read_as_float_is_refused_with_tensor_name()
    {
        var path = _dir.File("ids.safetensors");
        new SafetensorsWriter().AddInt64("ids", [1, 2, 3], [3]).Save(path);
        using var r = SafetensorsReader.Open(path);
        var e = Assert.Throws<SafetensorsFormatException>(() => r.ReadFloat32("ids"));
        Assert.Contains("tensor 'ids'", e.Message);
        Assert.Contains("dtype I64 is not a floating-point type", e.Message);
        Assert.Equal([1L, 2, 3], r.ReadInt64("ids"));
    }

    [Fact]
    public void Well_formed_edge_cases_are_accepted()
    {
        // Empty file (no tensors), a zero-sized tensor sharing its offset with the next one, a scalar
        // (shape []), metadata, and a header padded with trailing spaces: all legal.
        var header = "{\"__metadata__\": {\"format\": \"pt\"}, \"empty\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [0, 0]}, "
                   + "\"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}      ";
        var path = RawSafetensors.Write(_dir, "edge.safetensors", header, 4);
        using var r = SafetensorsReader.Open(path);
        Assert.Equal("pt", r.Metadata["format"]);
        Assert.Empty(r.ReadFloat32("empty"));
        Assert.Single(r.ReadFloat32("s"));
        Assert.Equal(["empty", "s"], r.Names);

        var none = RawSafetensors.Write(_dir, "none.safetensors", "{}", 0);
        using var r2 = SafetensorsReader.Open(none);
        Assert.Empty(r2.Names);
    }
}
