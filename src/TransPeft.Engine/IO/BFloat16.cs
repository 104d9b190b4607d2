namespace TransPeft.Engine.IO;

/// <summary>bfloat16 <-> fp32: bf16 is the top 16 bits of an fp32; rounding to nearest even on the way down.</summary>
internal static class BFloat16
{
    /// <summary>Elements per block of <see cref="FromFloats"/>: large blocks convert in parallel.</summary>
    private const int Block = 1 << 16;

    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    public static ushort FromSingle(float value)
    {
        uint u = (uint)BitConverter.SingleToInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((u >> 16) | 0x40); // keep it a (quiet) NaN
        uint roundingBias = 0x7FFF + ((u >> 16) & 1);
        return (ushort)((u + roundingBias) >> 16);
    }

    /// <summary>True when a bf16 value is NaN or an infinity (all exponent bits set).</summary>
    public static bool IsNonFinite(ushort bits) => (bits & 0x7F80) == 0x7F80;

    /// <summary>
    /// Rounds <paramref name="n"/> values of a floating-point dtype to bf16: each is first the fp32 an eager load holds
    /// (<see cref="SafetensorsReader.ReadFloat32"/>: F16 and BF16 exactly, F64 rounded), then rounded to nearest even
    /// (<see cref="FromSingle"/>). Blocks of 64K elements convert in parallel. Returns the index of the first value
    /// that is not finite (its bf16 is written too), or -1.
    /// </summary>
    public static unsafe long FromFloats(byte* source, SafetensorsDType dtype, ushort* destination, int n)
    {
        int blocks = (n + Block - 1) / Block;
        bool anyNonFinite = false;
        if (blocks <= 1) anyNonFinite = !ConvertBlock(source, dtype, destination, 0, n);
        else
        {
            nint s = (nint)source, d = (nint)destination;
            Parallel.For(0, blocks, b =>
            {
                if (!ConvertBlock((byte*)s, dtype, (ushort*)d, b * Block, Math.Min(n, (b + 1) * Block))) Volatile.Write(ref anyNonFinite, true);
            });
        }
        if (!anyNonFinite) return -1;
        for (int i = 0; i < n; i++) if (!float.IsFinite(Load(source, dtype, i))) return i; // rare: find the first one
        return -1;
    }

    /// <summary>Element <paramref name="i"/> of a floating-point tensor as the fp32 an eager load holds.</summary>
    public static unsafe float Load(byte* source, SafetensorsDType dtype, long i) => dtype switch
    {
        SafetensorsDType.F32 => ((float*)source)[i],
        SafetensorsDType.F16 => (float)((Half*)source)[i],
        SafetensorsDType.F64 => (float)((double*)source)[i],
        SafetensorsDType.BF16 => ToSingle(((ushort*)source)[i]),
        _ => throw new ArgumentException($"{dtype} is not a floating-point type", nameof(dtype)),
    };

    private static unsafe bool ConvertBlock(byte* source, SafetensorsDType dtype, ushort* destination, int from, int to)
    {
        bool finite = true;
        for (int i = from; i < to; i++)
        {
            float v = Load(source, dtype, i);
            finite &= float.IsFinite(v);
            destination[i] = FromSingle(v);
        }
        return finite;
    }
}
