namespace TransPeft.Engine.Sessions;

/// <summary>
/// Finds the model folder a host points at: a folder with config.json, or a Hugging Face cache entry
/// (models--ORG--NAME, whose snapshots/REVISION/ folders hold symlinks into blobs/). Only the given path and
/// the folders under it are read.
/// </summary>
public static class ModelLocation
{
    public const string ConfigFileName = "config.json";

    /// <summary>The folder holding config.json: <paramref name="path"/> itself, or the snapshot refs/main (else the only
    /// snapshot) names. Throws <see cref="DirectoryNotFoundException"/> or <see cref="FileNotFoundException"/> naming the path.</summary>
    public static string Resolve(string path)
    {
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"{path}: model folder not found");
        if (File.Exists(Path.Combine(path, ConfigFileName))) return path;
        string snapshots = Path.Combine(path, "snapshots");
        if (Directory.Exists(snapshots))
        {
            string refMain = Path.Combine(path, "refs", "main");
            if (File.Exists(refMain))
            {
                string rev = File.ReadAllText(refMain).Trim();
                string dir = Path.Combine(snapshots, rev);
                if (rev.Length > 0 && rev.IndexOfAny(['/', '\\']) < 0 && File.Exists(Path.Combine(dir, ConfigFileName))) return dir;
                throw new FileNotFoundException($"{refMain}: names revision '{rev}', but {dir} has no {ConfigFileName}", Path.Combine(dir, ConfigFileName));
            }
            var candidates = Directory.GetDirectories(snapshots).Where(d => File.Exists(Path.Combine(d, ConfigFileName))).ToList();
            if (candidates.Count == 1) return candidates[0];
            if (candidates.Count > 1)
                throw new FileNotFoundException($"{path}: {candidates.Count} snapshots and no refs/main to choose one; pass the snapshot folder itself", snapshots);
        }
        throw new FileNotFoundException($"{path}: no {ConfigFileName} (expected a model folder, or a Hugging Face cache entry models--ORG--NAME with snapshots/)", Path.Combine(path, ConfigFileName));
    }
}
