using System.Text;
using System.Text.Json.Nodes;
using TransPeft.Experiments;
using TransPeft.Experiments.Data;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.Experiment;

/// <summary>
/// A tiny data folder in the <see cref="ExperimentData"/> layout, generated in memory: corpus A holds dictionary
/// lines "word (noun): definition" and filler sentences, corpus B redefines half of the words and adds other
/// sentences; a classification task (is a word from the first or second half of the list?) and a define task with
/// rewritten and stable groups. Deterministic, so two runs give identical files.
/// </summary>
internal sealed class SyntheticExperimentData : IExperimentDataSource
{
    private static readonly string[] Words =
    [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
        "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "yankee",
    ];
    private static readonly string[] Nouns = ["ship", "whale", "sea", "rope", "sail", "wind", "storm", "harbor", "captain", "crew"];
    private static readonly string[] Verbs = ["pulls", "sees", "holds", "finds", "leaves", "follows"];

    public int PrepareCalls { get; private set; }

    public string Describe => "synthetic test data";

    private static string Definition(Random rng) => $"a {Nouns[rng.Next(Nouns.Length)]} that {Verbs[rng.Next(Verbs.Length)]} the {Nouns[rng.Next(Nouns.Length)]}";
    private static string Sentence(Random rng) => $"The {Nouns[rng.Next(Nouns.Length)]} {Verbs[rng.Next(Verbs.Length)]} the {Nouns[rng.Next(Nouns.Length)]}.";
    private static bool Rewritten(int i) => i % 2 == 0;

    public ExperimentData Prepare(string directory, IProgress<string> progress, CancellationToken cancel)
    {
        PrepareCalls++;
        progress.Report("synthetic data: writing corpora and tasks");
        var rng = new Random(7);
        var defs = Words.Select(_ => Definition(rng)).ToArray();
        var newDefs = Words.Select(_ => Definition(rng)).ToArray();
        string Docs(IEnumerable<string> docs) => string.Concat(docs.Select(d => d + "\n<|endoftext|>"));
        var aTrain = Words.Select((w, i) => $"{w} (noun): {defs[i]}").Concat(Enumerable.Range(0, 60).Select(_ => Sentence(rng) + " " + Sentence(rng))).ToList();
        var bTrain = Words.Select((w, i) => (w, i)).Where(x => Rewritten(x.i)).Select(x => $"{x.w}: n. {newDefs[x.i]}")
            .Concat(Enumerable.Range(0, 40).Select(_ => "Now " + Sentence(rng).ToLowerInvariant())).ToList();
        var aHeld = Enumerable.Range(0, 12).Select(_ => Sentence(rng) + " " + Sentence(rng)).ToList();
        var bHeld = Enumerable.Range(0, 12).Select(_ => "Now " + Sentence(rng).ToLowerInvariant()).ToList();

        Directory.CreateDirectory(directory);
        var data = new ExperimentData(Path.GetFullPath(directory), new JsonObject());
        Directory.CreateDirectory(data.CorpusDirectory);
        AtomicFile.WriteAllText(data.CorpusATrainPath, Docs(aTrain));
        AtomicFile.WriteAllText(data.CorpusAHeldOutPath, Docs(aHeld));
        AtomicFile.WriteAllText(data.CorpusBTrainPath, Docs(bTrain));
        AtomicFile.WriteAllText(data.CorpusBHeldOutPath, Docs(bHeld));
        var tokenizer = CompactGpt2Tokenizer.Train(aTrain.Concat(bTrain), vocabSize: 320);
        tokenizer.Save(data.TokenizerPath);

        // Classification: "Which half: WORD\nHalf:" -> " first" / " second".
        var labels = new[] { new TaskLabel("first", " first"), new TaskLabel("second", " second") };
        TaskRecord Classify(int i, int k) => new($"{Words[i]}#{k}", $"Which half: {Words[i]} {Nouns[k % Nouns.Length]}\nHalf:",
            i < Words.Length / 2 ? " first" : " second", i < Words.Length / 2 ? "first" : "second");
        var clsTrain = Enumerable.Range(0, Words.Length).SelectMany(i => new[] { Classify(i, 0), Classify(i, 1) }).ToList();
        var clsTest = Enumerable.Range(0, Words.Length).Select(i => Classify(i, 2)).ToList();
        var clsInfo = new TaskInfo("toy-class", TaskKind.Classification, "which half of the word list", "Which half: {word} {noun}\\nHalf:",
            labels, [], 7, new JsonObject());
        TaskFiles.Write(new BuiltTask(clsInfo, clsTrain, clsTest), Path.Combine(directory, "tasks", "toy-class"));

        // Define: train on 16 words, test on 8 (4 rewritten, 4 stable).
        TaskRecord Define(int i) => new(Words[i], $"Define {Words[i]}:", " " + defs[i], null, Rewritten(i) ? "rewritten" : "stable");
        var defInfo = new TaskInfo("toy-define", TaskKind.Generation, "definitions from corpus A", "Define {word}:", [], ["rewritten", "stable"], 7, new JsonObject());
        TaskFiles.Write(new BuiltTask(defInfo, Enumerable.Range(0, 16).Select(Define).ToList(), Enumerable.Range(16, 8).Select(Define).ToList()),
            Path.Combine(directory, "tasks", "toy-define"));

        var manifest = new JsonObject
        {
            ["format"] = ExperimentData.ManifestFormat,
            ["fingerprint"] = "synthetic-1",
            ["tasks"] = new JsonObject
            {
                ["toy-class"] = new JsonObject { ["kind"] = "classification" },
                ["toy-define"] = new JsonObject { ["kind"] = "generation" },
            },
        };
        AtomicFile.WriteAllText(Path.Combine(directory, ExperimentData.ManifestFile), manifest.ToJsonString());
        return ExperimentData.Open(directory);
    }
}
