using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.IO;

/// <summary>Writing then reading F32, F16 and BF16 tensors: values, rounding, layout and metadata.</summary>
public sealed class SafetensorsRoundTripTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static float[] Values(int n, int seed)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-6, 6)));
        return v;
    }

    [Fact]
    public void F32_round_trip_is_bit_exact_and_keeps_shape_and_metadata()
    {
        var a = Values(6, 1);
        float[] b = [float.Epsilon, -0f, float.MaxValue, float.NegativeInfinity, 1e-42f];
        var path = _dir.File("f32.safetensors");
        new SafetensorsWriter().AddMetadata("format", "pt").AddMetadata("note", "ünïcode \"quoted\"")
            .AddFloat("z.a", a, [2, 3]).AddFloat("b", b, [5]).Save(path);

        using var r = SafetensorsReader.Open(path);
        Assert.Equal("pt", r.Metadata["format"]);
        Assert.Equal("ünïcode \"quoted\"", r.Metadata["note"]);
        Assert.Equal([2L, 3], r.GetInfo("z.a").Shape);
        Assert.Equal(SafetensorsDType.F32, r.GetInfo("z.a").DType);
        Assert.Equal(MemoryMarshal.AsBytes(a.AsSpan()).ToArray(), MemoryMarshal.AsBytes(r.ReadFloat32("z.a").AsSpan()).ToArray());
        Assert.Equal(MemoryMarshal.AsBytes(b.AsSpan()).ToArray(), MemoryMarshal.AsBytes(r.ReadFloat32("b").AsSpan()).ToArray());
    }

    [Fact]
    public void Writer_layout_matches_the_reference_format()
    {
        // Keys sorted byte-wise both in the header and the data section, header padded with spaces so the
        // data starts at a multiple of 8, compact JSON with fields in dtype, shape, data_offsets order.
        var path = _dir.File("layout.safetensors");
        new SafetensorsWriter().AddMetadata("format", "pt")
            .AddFloat("b", [2f], [1]).AddFloat("B", [3f, 4f], [2]).AddFloat("a", [1f], [1]).Save(path);
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + n) % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.Equal(
            "{\"__metadata__\":{\"format\":\"pt\"},\"B\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
            header.TrimEnd(' '));
        var data = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(8 + (int)n)).ToArray();
        Assert.Equal([3f, 4f, 1f, 2f], data);
    }

    [Fact]
    public void F16_round_trip_is_exact_for_representable_values_and_rounds_to_nearest_even()
    {
        float[] exact = [0f, 1f, -2.5f, 0.000061035156f /* smallest normal */, 65504f /* max */, 5.9604645e-8f /* smallest subnormal */];
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1). 1 + 3*2^-11 goes up to 1 + 2^-9.
        float[] rounded = [1f + MathF.Pow(2, -11), 1f + 3 * MathF.Pow(2, -11), 70000f];
        float[] expected = [1f, 1f + MathF.Pow(2, -9), float.PositiveInfinity];
        var path = _dir.File("f16.safetensors");
        new SafetensorsWriter().AddFloat("exact", exact, [6], SafetensorsDType.F16)
            .AddFloat("rounded", rounded, [3], SafetensorsDType.F16).Save(path);
        using var r = SafetensorsReader.Open(path);
        Assert.Equal(SafetensorsDType.F16, r.GetInfo("exact").DType);
        Assert.Equal(12, r.GetInfo("exact").ByteLength);
        Assert.Equal(exact, r.ReadFloat32("exact"));
        Assert.Equal(expected, r.ReadFloat32("rounded"));
    }

    [Fact]
    public void BF16_rounds_to_nearest_even_and_keeps_specials()
    {
        float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);
        // Each case: fp32 bits -> the bf16 bits torch's .bfloat16() produces (round to nearest, ties to even).
        (uint In, ushort Out)[] cases =
        [
            (0x3F800000, 0x3F80), // 1.0 exact
            (0x3F808000, 0x3F80), // 1 + 2^-8: tie, mantissa of 1.0 is even -> stays
            (0x3F818000, 0x3F82), // 1 + 3*2^-8: tie, 0x3F81 is odd -> rounds up to even
            (0x3F808001, 0x3F81), // just above the tie -> up
            (0x3F807FFF, 0x3F80), // just below the tie -> down
            (0xBF808000, 0xBF80), // negative tie -> even
            (0x7F7FFFFF, 0x7F80), // float.MaxValue rounds up to +inf
            (0xFF800000, 0xFF80), // -inf stays -inf
            (0x00000001, 0x0000), // smallest subnormal rounds to zero
            (0x80000000, 0x8000), // -0 keeps its sign
        ];
        var values = cases.Select(c => F(c.In)).ToArray();
        var path = _dir.File("bf16.safetensors");
        new SafetensorsWriter().AddFloat("w", values, [values.Length], SafetensorsDType.BF16)
            .AddFloat("nan", [float.NaN], [1], SafetensorsDType.BF16).Save(path);
        using var r = SafetensorsReader.Open(path);
        var raw = MemoryMarshal.Cast<byte, ushort>(r.GetBytes("w")).ToArray();
        for (int i = 0; i < cases.Length; i++)
            Assert.True(cases[i].Out == raw[i], $"fp32 0x{cases[i].In:X8}: expected bf16 0x{cases[i].Out:X4}, wrote 0x{raw[i]:X4}");
        // Reading back widens exactly: bf16 is the top half of an fp32.
        var back = r.ReadFloat32("w");
        for (int i = 0; i < cases.Length; i++)
            Assert.Equal((uint)cases[i].Out << 16, BitConverter.SingleToUInt32Bits(back[i]));
        Assert.True(float.IsNaN(r.ReadFloat32("nan")[0]));
    }

    [Fact]
    public void BF16_round_trip_error_is_within_half_an_ulp()
    {
        var v = Values(4096, 7);
        var path = _dir.File("bf16-random.safetensors");
        new SafetensorsWriter().AddFloat("w", v, [64, 64], SafetensorsDType.BF16).Save(path);
        using var r = SafetensorsReader.Open(path);
        var back = r.ReadFloat32("w");
        for (int i = 0; i < v.Length; i++)
        {
            // bf16 keeps 7 explicit mantissa bits: one ulp in the binade [2^e, 2^(e+1)) is 2^(e-7), and
            // round-to-nearest is off by at most half of that.
            float halfUlp = MathF.ScaleB(1f, MathF.ILogB(v[i]) - 8);
            Assert.True(MathF.Abs(back[i] - v[i]) <= halfUlp, $"value {v[i]} came back as {back[i]}");
        }
        // Writing the read-back values again is lossless (they are already bf16 values).
        var path2 = _dir.File("bf16-again.safetensors");
        new SafetensorsWriter().AddFloat("w", back, [64, 64], SafetensorsDType.BF16).Save(path2);
        using var r2 = SafetensorsReader.Open(path2);
        Assert.Equal(back, r2.ReadFloat32("w"));
    }

    [Fact]
    public void Writer_refuses_inconsistent_input()
    {
        var w = new SafetensorsWriter();
        Assert.Contains("needs 12 bytes, got 8", Assert.Throws<ArgumentException>(() => w.Add("x", SafetensorsDType.F32, [3], new byte[8])).Message);
        w.AddFloat("x", [1f], [1]);
        Assert.Contains("'x' added twice", Assert.Throws<ArgumentException>(() => w.AddFloat("x", [1f], [1])).Message);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => w.AddFloat("__metadata__", [1f], [1])).Message);
        Assert.Contains("cannot store floats as I8", Assert.Throws<ArgumentException>(() => w.AddFloat("y", [1f], [1], SafetensorsDType.I8)).Message);
    }

    [Fact]
    public void Save_replaces_the_file_atomically_and_leaves_no_temporary_files()
    {
        var path = _dir.File("atomic.safetensors");
        new SafetensorsWriter().AddFloat("w", [1f], [1]).Save(path);
        using (var first = SafetensorsReader.Open(path)) Assert.Equal([1f], first.ReadFloat32("w"));
        new SafetensorsWriter().AddFloat("w", [2f, 3f], [2]).Save(path);
        using (var second = SafetensorsReader.Open(path)) Assert.Equal([2f, 3f], second.ReadFloat32("w"));
        Assert.Equal(["atomic.safetensors"], Directory.GetFiles(_dir.Path).Select(f => Path.GetFileName(f)!));
    }
}
