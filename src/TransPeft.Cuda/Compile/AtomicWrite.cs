namespace TransPeft.Cuda.Compile;

/// <summary>
/// Temp file beside the target, flushed, then renamed over it: readers see the old file or the whole new one.
/// (The engine's IO.AtomicFile does the same; this assembly sits below the engine and cannot use it.)
/// </summary>
internal static class AtomicWrite
{
    public static void AllBytes(string path, byte[] bytes)
    {
        var full = Path.GetFullPath(path);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
