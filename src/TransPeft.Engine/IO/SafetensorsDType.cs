namespace TransPeft.Engine.IO;

/// <summary>Element types a safetensors file may hold. The names are the file format's spellings.</summary>
public enum SafetensorsDType
{
    F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL,
}

internal static class SafetensorsDTypeExtensions
{
    public static int ByteSize(this SafetensorsDType t) => t switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 => 2,
        _ => 1,
    };

    public static bool TryParse(string s, out SafetensorsDType t)
    {
        switch (s)
        {
            case "F64": t = SafetensorsDType.F64; return true;
            case "F32": t = SafetensorsDType.F32; return true;
            case "F16": t = SafetensorsDType.F16; return true;
            case "BF16": t = SafetensorsDType.BF16; return true;
            case "I64": t = SafetensorsDType.I64; return true;
            case "I32": t = SafetensorsDType.I32; return true;
            case "I16": t = SafetensorsDType.I16; return true;
            case "I8": t = SafetensorsDType.I8; return true;
            case "U8": t = SafetensorsDType.U8; return true;
            case "BOOL": t = SafetensorsDType.BOOL; return true;
            default: t = default; return false;
        }
    }
}
