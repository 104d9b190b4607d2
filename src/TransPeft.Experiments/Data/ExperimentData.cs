using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.Text;

namespace TransPeft.Experiments.Data;

/// <summary>
/// A built data folder of the evolving-base experiment:
/// <code>
///   OUT/manifest.json                    sources (package, version, sha256), options, sizes, tokenizer coverage
///   OUT/tokenizer.json                   the compact GPT-2 tokenizer
///   OUT/corpus/corpus-a.train.txt        v1 pre-training text (documents end with "\n&lt;|endoftext|&gt;")
///   OUT/corpus/corpus-a.heldout.txt      v1 held-out text
///   OUT/corpus/corpus-b.train.txt        the update's text
///   OUT/corpus/corpus-b.heldout.txt
///   OUT/tasks/NAME/train.jsonl, test.jsonl, task.json   for NAME in spam, sotu-party, wordnet-define
/// </code>
/// </summary>
public sealed record ExperimentData(string OutputDirectory, JsonObject Manifest)
{
    public const string ManifestFile = "manifest.json";
    public const string ManifestFormat = "tpeft.experiment-data";

    public string TokenizerPath => Path.Combine(OutputDirectory, "tokenizer.json");
    public string CorpusDirectory => Path.Combine(OutputDirectory, "corpus");
    public string CorpusATrainPath => Path.Combine(CorpusDirectory, "corpus-a.train.txt");
    public string CorpusAHeldOutPath => Path.Combine(CorpusDirectory, "corpus-a.heldout.txt");
    public string CorpusBTrainPath => Path.Combine(CorpusDirectory, "corpus-b.train.txt");
    public string CorpusBHeldOutPath => Path.Combine(CorpusDirectory, "corpus-b.heldout.txt");

    /// <summary>The tasks in this folder, by name.</summary>
    public IReadOnlyDictionary<string, TaskPaths> Tasks =>
        (Manifest["tasks"] as JsonObject ?? []).ToDictionary(kv => kv.Key, kv => new TaskPaths(kv.Key, Path.Combine(OutputDirectory, "tasks", kv.Key)));

    public CompactGpt2Tokenizer LoadTokenizer() => CompactGpt2Tokenizer.Load(TokenizerPath);

    /// <summary>Opens a folder written by <see cref="ExperimentDataBuilder"/>; throws naming what is missing.</summary>
    public static ExperimentData Open(string outputDirectory)
    {
        var path = Path.Combine(outputDirectory, ManifestFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no experiment data here (build it first)", path);
        JsonObject manifest;
        try { manifest = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a valid manifest ({e.Message})", e); }
        if (manifest["format"]?.GetValue<string>() != ManifestFormat)
            throw new InvalidDataException($"{path}: field 'format': expected \"{ManifestFormat}\"");
        var data = new ExperimentData(Path.GetFullPath(outputDirectory), manifest);
        foreach (var f in data.RequiredFiles())
            if (!File.Exists(f)) throw new FileNotFoundException($"{path}: the manifest lists {f}, which is missing", f);
        return data;
    }

    internal IEnumerable<string> RequiredFiles()
    {
        yield return TokenizerPath;
        yield return CorpusATrainPath;
        yield return CorpusAHeldOutPath;
        yield return CorpusBTrainPath;
        yield return CorpusBHeldOutPath;
        foreach (var t in Tasks.Values) { yield return t.TrainPath; yield return t.TestPath; yield return t.InfoPath; }
    }
}
