namespace TransPeft.Engine.IO;

/// <summary>bfloat16 <-> fp32: bf16 is the top 16 bits of an fp32; rounding to nearest even on the way down.</summary>
internal static class BFloat16
{
    public static float ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    public static ushort FromSingle(float value)
    {
        uint u = (uint)BitConverter.SingleToInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((u >> 16) | 0x40); // keep it a (quiet) NaN
        uint roundingBias = 0x7FFF + ((u >> 16) & 1);
        return (ushort)((u + roundingBias) >> 16);
    }
}
