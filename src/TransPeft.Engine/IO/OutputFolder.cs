namespace TransPeft.Engine.IO;

/// <summary>
/// The rule that keeps existing work safe: a command writes into a folder only when the folder does not exist,
/// is empty, or the caller passed <c>overwrite</c> (the CLI's <c>--overwrite</c>). Training's own run folder is
/// the one exception, and only through <c>--resume</c>; it is guarded by <see cref="Training.RunLock"/> besides.
/// </summary>
public static class OutputFolder
{
    /// <summary>
    /// Checks that <paramref name="dir"/> may be written, before any work is done. <paramref name="inputs"/> are
    /// folders the command reads: writing the output into one of them (merge --model X --out X) needs
    /// <paramref name="overwrite"/> too, even though it is "its own" folder in a sense, because the input is destroyed.
    /// </summary>
    /// <param name="option">How the user named the folder, for the message (e.g. "--out").</param>
    public static void Claim(string dir, bool overwrite, string option = "--out", params string?[] inputs)
    {
        if (File.Exists(dir)) throw new OutputFolderException(dir, $"{option} {dir}: is a file; give a folder");
        if (overwrite) return;
        var full = Normalize(dir);
        foreach (var input in inputs)
            if (input is not null && Normalize(input) == full)
                throw new OutputFolderException(dir, $"{option} {dir}: is also an input of this command, and writing would replace it; give another folder, or pass --overwrite");
        if (!IsEmpty(dir))
            throw new OutputFolderException(dir, $"{option} {dir}: the folder is not empty ({Describe(dir)}); give a new folder, or pass --overwrite to replace what is there");
    }

    /// <summary>True when the folder is missing or holds nothing but the names in <paramref name="ignore"/>.</summary>
    public static bool IsEmpty(string dir, params string[] ignore)
    {
        if (!Directory.Exists(dir)) return true;
        return !Directory.EnumerateFileSystemEntries(dir).Any(e => !ignore.Contains(Path.GetFileName(e), StringComparer.Ordinal));
    }

    /// <summary>A few of the folder's entries, so the user sees what would have been lost.</summary>
    internal static string Describe(string dir, params string[] ignore)
    {
        var names = Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName)
            .Where(n => !ignore.Contains(n, StringComparer.Ordinal)).Order(StringComparer.Ordinal).ToList();
        return $"holds {string.Join(", ", names.Take(4))}{(names.Count > 4 ? $" and {names.Count - 4} more" : "")}";
    }

    /// <summary>A folder's identity for comparison: absolute, links resolved, no trailing separator.</summary>
    private static string Normalize(string dir)
    {
        var full = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar);
        try
        {
            if (Directory.Exists(full) && new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target)
                return target.FullName.TrimEnd(Path.DirectorySeparatorChar);
        }
        catch (IOException) { }
        return full;
    }
}
