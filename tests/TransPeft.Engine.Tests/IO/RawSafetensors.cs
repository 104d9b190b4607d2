using System.Buffers.Binary;
using System.Text;

namespace TransPeft.Engine.Tests.IO;

/// <summary>
/// Builds safetensors files byte by byte, so tests can produce exactly the broken file they want:
/// u64 little-endian header length, the header text, then the data section.
/// </summary>
internal static class RawSafetensors
{
    /// <param name="header">JSON header text, written as UTF-8 without padding.</param>
    /// <param name="dataBytes">length of the data section (filled with a recognisable pattern).</param>
    /// <param name="declaredHeaderLength">the u64 prefix; defaults to the header's real length.</param>
    public static byte[] Build(string header, int dataBytes, ulong? declaredHeaderLength = null) =>
        Build(Encoding.UTF8.GetBytes(header), dataBytes, declaredHeaderLength);

    public static byte[] Build(byte[] header, int dataBytes, ulong? declaredHeaderLength = null)
    {
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + header.Length + i] = (byte)(i * 7 + 1);
        return bytes;
    }

    public static string Write(TempDir dir, string fileName, string header, int dataBytes, ulong? declaredHeaderLength = null)
    {
        var path = dir.File(fileName);
        File.WriteAllBytes(path, Build(header, dataBytes, declaredHeaderLength));
        return path;
    }

    /// <summary>A valid one-tensor F32 file holding <paramref name="values"/> under <paramref name="name"/>.</summary>
    public static byte[] SingleF32(string name, float[] values)
    {
        var header = $"{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{values.Length}],\"data_offsets\":[0,{values.Length * 4}]}}}}";
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = Build(h, values.Length * 4);
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(8 + h.Length + 4 * i), values[i]);
        return bytes;
    }
}
