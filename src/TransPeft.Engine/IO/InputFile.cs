namespace TransPeft.Engine.IO;

/// <summary>
/// Opening files a user named. Symlinks are followed (the Hugging Face cache stores a snapshot's files as links
/// into blobs/), and the size that counts is that of the open target. A device or pipe (/dev/zero, /dev/stdin)
/// reports size 0 yet never ends: such a file is refused with one line instead of being read forever.
/// </summary>
public static class InputFile
{
    /// <summary>The length of an open file, after checking that it is a regular file (a special file is refused).</summary>
    public static long RegularLength(FileStream fs, string path)
    {
        long length = fs.CanSeek ? fs.Length : 0;
        if (length == 0 && IsSpecial(fs))
            throw new InputFileException(path, "is not a regular file (a device, pipe or socket); give a file on disk");
        return length;
    }

    /// <summary>All bytes of a regular file, refusing special files and files over <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes = int.MaxValue)
    {
        using var fs = OpenRead(path);
        long length = RegularLength(fs, path);
        if (length > maxBytes) throw new InputFileException(path, $"is {length} bytes, more than the {maxBytes} this reader accepts");
        var bytes = new byte[length];
        fs.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>The text of a regular file (UTF-8, a BOM skipped).</summary>
    public static string ReadAllText(string path, long maxBytes = int.MaxValue)
    {
        var bytes = ReadAllBytes(path, maxBytes);
        var span = bytes.AsSpan();
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
        return System.Text.Encoding.UTF8.GetString(span);
    }

    /// <summary>Opens a file for reading, with the missing-file error naming it.</summary>
    public static FileStream OpenRead(string path)
    {
        if (Directory.Exists(path)) throw new InputFileException(path, "is a folder; a file was expected");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    /// <summary>
    /// A regular file of size 0 has nothing to read; a character device or pipe of "size 0" has. One byte tells them
    /// apart without a platform call (the stream is rewound when it can be).
    /// </summary>
    private static bool IsSpecial(FileStream fs)
    {
        if (!fs.CanSeek) return true;
        long at = fs.Position;
        int b = fs.ReadByte();
        fs.Position = at;
        return b >= 0;
    }
}
