namespace TransPeft.Engine.Text;

/// <summary>
/// GPT-2's reversible byte -> character map used by every byte-level BPE vocabulary (GPT-2, Llama-3,
/// Qwen2): printable bytes map to themselves, the other 68 (controls, space, 0x7F-0xA0, 0xAD) to
/// U+0100 upwards, so a space becomes 'Ġ' (U+0120) and a newline 'Ċ' (U+010A). Vocabulary entries in
/// tokenizer.json are written in these characters.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>The raw bytes a vocabulary entry stands for; false when it holds a character outside the alphabet.</summary>
    public static bool TryDecode(string token, out byte[] bytes)
    {
        bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            if (!CharToByte.TryGetValue(token[i], out bytes[i])) return false;
        }
        return true;
    }
}
