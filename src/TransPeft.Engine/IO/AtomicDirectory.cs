namespace TransPeft.Engine.IO;

/// <summary>
/// Creates a folder so that readers see it complete or not at all: its contents are written into a
/// hidden sibling ".partial-NAME-GUID", which is renamed to NAME only when everything is in it (a
/// rename within one file system is atomic). A crash mid-write leaves a ".partial-" folder that
/// <see cref="CleanPartials"/> removes and nothing else ever reads. The folder counterpart of
/// <see cref="AtomicFile"/>: checkpoints and final weights are written this way, and a host writing a model folder
/// (weights, config, tokenizer) that other processes may read mid-write can use it too.
/// </summary>
public static class AtomicDirectory
{
    /// <summary>Name prefix of the temporary siblings (readers skip names that start with it).</summary>
    public const string PartialPrefix = ".partial-";

    /// <summary>
    /// Creates (or replaces) the folder <paramref name="path"/>: <paramref name="fill"/> gets a temporary sibling
    /// folder to write into, which becomes <paramref name="path"/> when it returns. When it throws, the temporary
    /// folder is deleted and <paramref name="path"/> is left as it was.
    /// </summary>
    public static void Write(string path, Action<string> fill)
    {
        var full = Path.GetFullPath(path);
        var parent = Path.GetDirectoryName(full)!;
        var name = Path.GetFileName(full);
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, $"{PartialPrefix}{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            fill(tmp);
            if (Directory.Exists(full))
            {
                // Replacing: move the old folder aside first, so the name always holds a complete folder
                // except for the instant between the two renames.
                var old = Path.Combine(parent, $"{PartialPrefix}{name}-old-{Guid.NewGuid():N}");
                Directory.Move(full, old);
                Directory.Move(tmp, full);
                Directory.Delete(old, recursive: true);
            }
            else Directory.Move(tmp, full);
        }
        catch
        {
            try { if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Deletes leftovers of interrupted writes in <paramref name="parent"/>.</summary>
    public static void CleanPartials(string parent)
    {
        if (!Directory.Exists(parent)) return;
        foreach (var d in Directory.GetDirectories(parent, PartialPrefix + "*"))
            try { Directory.Delete(d, recursive: true); } catch (IOException) { }
    }
}
