namespace TransPeft.Experiments.Data.Fetch;

/// <summary>
/// A source that is present, verified and unpacked in the cache.
/// </summary>
/// <param name="Source">The pinned source.</param>
/// <param name="Directory">Root of the unpacked files: the <c>package/</c> folder of an npm tarball, the filesystem root of a .deb.</param>
/// <param name="ArchivePath">The verified archive in the cache.</param>
/// <param name="FromCache">True when nothing had to be downloaded or unpacked.</param>
public sealed record FetchedSource(DataSource Source, string Directory, string ArchivePath, bool FromCache)
{
    /// <summary>A path below <see cref="Directory"/>; throws naming the source when it does not exist.</summary>
    public string Require(string relativePath)
    {
        var p = Path.Combine(Directory, relativePath);
        if (!File.Exists(p) && !System.IO.Directory.Exists(p))
            throw new DataFetchException($"{Source}: expected '{relativePath}' inside the unpacked package at {Directory}, but it is missing " +
                                         "(the package layout changed, or the cache is damaged: delete the folder and fetch again)");
        return p;
    }
}
