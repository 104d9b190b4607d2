namespace TransPeft.Engine.Tests.Text;

/// <summary>
/// Data the tests read from the repository's ignored cache (.cache/testdata/, filled by
/// tools/fetch-test-data.sh). The repository root is found by walking up from the test binaries
/// to the folder holding TransPeft.Engine.sln.
/// </summary>
internal static class TestData
{
    public const string FetchHint = "run tools/fetch-test-data.sh to fetch it";

    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "TransPeft.Engine.sln"))) return dir.FullName;
            return null;
        }
    }

    /// <summary>The full path of .cache/testdata/<paramref name="relativePath"/>, or null when that file is not there.</summary>
    public static string? Find(string relativePath)
    {
        if (RepoRoot is not { } root) return null;
        var path = Path.Combine(root, ".cache", "testdata", relativePath);
        return File.Exists(path) ? path : null;
    }

    /// <summary>The folder holding .cache/testdata/<paramref name="relativePath"/>, or a failure that says how
    /// to get it (reached only in CI, or by a test whose attribute did not name the file).</summary>
    public static string RequireDir(string relativePath) =>
        Path.GetDirectoryName(Find(relativePath) ?? throw new Xunit.Sdk.XunitException(
            $"test data .cache/testdata/{relativePath} is missing (repository root: {RepoRoot ?? "not found"}); {FetchHint}"))!;

    internal static string? SkipReason(string[] relativePaths)
    {
        var missing = relativePaths.Where(p => Find(p) is null).ToArray();
        if (missing.Length == 0 || InCi) return null;
        return $"test data missing: {string.Join(", ", missing.Select(m => ".cache/testdata/" + m))}; {FetchHint}";
    }
}

/// <summary>
/// A fact that needs cached test data: skipped with the reason when a file is absent on a developer
/// machine, but run (and so failing with <see cref="TestData.RequireDir"/>'s message) when CI=true, so CI
/// never passes by silently skipping.
/// </summary>
public sealed class TestDataFactAttribute : FactAttribute
{
    public TestDataFactAttribute(params string[] relativePaths) => Skip = TestData.SkipReason(relativePaths);
}

/// <summary>The theory counterpart of <see cref="TestDataFactAttribute"/>.</summary>
public sealed class TestDataTheoryAttribute : TheoryAttribute
{
    public TestDataTheoryAttribute(params string[] relativePaths) => Skip = TestData.SkipReason(relativePaths);
}
