using System.Text.Json;
using TransPeft.Experiments.Data.Readers;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.DataPipeline;

public class TaskFileAndBuilderTests
{
    private static readonly CompactGpt2Tokenizer Tok = CompactGpt2Tokenizer.Train(
        ["Buy cheap meds now! Click here to win money. Hi Bob, the meeting is at noon; see the attached notes.",
         "We the people of the United States, the Congress and the nation. Our economy, our taxes and our defense."], 400);

    [Fact]
    public void Jsonl_has_one_object_per_line_with_the_documented_fields_and_reads_back()
    {
        using var tmp = new TempDir();
        var records = new List<TaskRecord>
        {
            new("a/1", "Hi \"Bob\"\nsee ü 😀\nLabel:", " ham", "ham"),
            new("w", "Define hack:", " a mediocre writer", null, "rewritten"),
        };
        var path = Path.Combine(tmp.Path, "train.jsonl");
        TaskFiles.WriteJsonl(path, records);
        var lines = File.ReadAllLines(path);
        Assert.Equal(2, lines.Length);
        using (var doc = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal(["id", "prompt", "completion", "label"], doc.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Equal("Hi \"Bob\"\nsee ü 😀\nLabel:", doc.RootElement.GetProperty("prompt").GetString());
        }
        using (var doc = JsonDocument.Parse(lines[1]))
            Assert.Equal(["id", "prompt", "completion", "group"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(records, TaskFiles.ReadJsonl(path));

        File.WriteAllText(path, lines[0] + "\n{\"id\": \"x\", \"prompt\": 3, \"completion\": \" y\"}\n");
        var e = Assert.Throws<TaskFormatException>(() => TaskFiles.ReadJsonl(path));
        Assert.Equal(2, e.Line);
        Assert.Equal("prompt", e.Field);
        File.WriteAllText(path, "{\"id\": \"x\", \"prompt\": \"p\"}\n");
        Assert.Equal("completion", Assert.Throws<TaskFormatException>(() => TaskFiles.ReadJsonl(path)).Field);
    }

    private static SpamAssassinMessage Mail(string group, string id, string body) =>
        new(id, group, group.StartsWith("spam"), "", body, body);

    [Fact]
    public void Spam_task_truncates_bodies_dedupes_and_balances()
    {
        var messages = new List<SpamAssassinMessage>();
        for (int i = 0; i < 40; i++) messages.Add(Mail("easy-ham-1", $"{i:D5}", $"Hi Bob, meeting number {i} is at noon; see the attached notes. " + new string('x', 300)));
        for (int i = 0; i < 20; i++) messages.Add(Mail("spam-1", $"{i:D5}", $"Buy cheap meds now! Offer {i}. Click here to win money!!!"));
        messages.Add(Mail("spam-2", "00001", "Buy cheap meds now! Offer 3. Click here to win money!!!")); // same text as spam-1/00003
        messages.Add(Mail("spam-2", "00002", "   \n "));
        var task = SpamTaskBuilder.Build(messages, Tok, new SamplingOptions(Seed: 5, TrainCount: 20, TestCount: 10), bodyTokens: 16);

        Assert.Equal(TaskKind.Classification, task.Info.Kind);
        Assert.Equal([" ham", " spam"], task.Info.Labels.Select(l => l.Completion));
        Assert.Equal(1, task.Info.Details["dropped_duplicate_prompt"]!.GetValue<int>());
        Assert.Equal(1, task.Info.Details["dropped_empty_body"]!.GetValue<int>());
        Assert.Equal(10, task.Test.Count);
        Assert.Equal(5, task.Test.Count(r => r.Label == "spam"));
        Assert.Equal(20, task.Train.Count);
        Assert.Equal(10, task.Train.Count(r => r.Label == "spam"));
        Assert.Empty(task.Train.Select(r => r.Id).Intersect(task.Test.Select(r => r.Id)));
        foreach (var r in task.Train.Concat(task.Test))
        {
            Assert.EndsWith("\nLabel:", r.Prompt);
            Assert.True(Tok.CountTokens(r.Prompt[..^"\nLabel:".Length]) <= 16);
            Assert.Equal(r.Label == "spam" ? " spam" : " ham", r.Completion);
        }
    }

    [Fact]
    public void Sotu_party_task_splits_by_speech_and_only_uses_democrats_and_republicans()
    {
        string Speech(int n) => string.Join(' ', Enumerable.Range(0, 30).Select(i => $"Sentence {i} of speech {n} is about the economy and our taxes."));
        var speeches = Enumerable.Range(0, 12).Select(n => new SotuSpeech($"{1900 + n}_someone_{(n % 2 == 0 ? "d" : "r")}", 1900 + n, "Someone",
            n % 2 == 0 ? "d" : "r", n % 2 == 0 ? "Democratic" : "Republican", Speech(n))).ToList();
        speeches.Add(new SotuSpeech("1850_whig_w", 1850, "Whig", "w", "Whig", Speech(99)));
        var task = SotuPartyTaskBuilder.Build(speeches, Tok, new SamplingOptions(Seed: 2, TrainCount: 40, TestCount: 10), chunkTokens: 40, minChunkChars: 50);

        string SpeechOf(TaskRecord r) => r.Id[..r.Id.LastIndexOf('#')];
        Assert.Empty(task.Train.Select(SpeechOf).Intersect(task.Test.Select(SpeechOf)));
        Assert.DoesNotContain(task.Train.Concat(task.Test), r => r.Id.StartsWith("1850"));
        Assert.Equal(5, task.Test.Count(r => r.Label == "democratic"));
        Assert.Equal(5, task.Test.Count(r => r.Label == "republican"));
        foreach (var r in task.Train.Concat(task.Test))
        {
            Assert.EndsWith("\nParty:", r.Prompt);
            Assert.True(Tok.CountTokens(r.Prompt[..^"\nParty:".Length]) <= 40);
            Assert.Equal(r.Label == "democratic" ? " Democratic" : " Republican", r.Completion);
        }

        // With at most 2 chunks per speech, the 10 test chunks must come from at least 5 speeches.
        var spread = SotuPartyTaskBuilder.Build(speeches, Tok, new SamplingOptions(Seed: 2, TrainCount: 10, TestCount: 10), chunkTokens: 40, minChunkChars: 50, maxChunksPerSpeech: 2);
        Assert.Equal(10, spread.Test.Count);
        Assert.True(spread.Test.Select(SpeechOf).Distinct().Count() >= 5);
        Assert.All(spread.Train.Concat(spread.Test).GroupBy(SpeechOf), g => Assert.True(g.Count() <= 2));
    }

    [Fact]
    public void Define_task_balances_test_groups_and_writes_a_task_folder()
    {
        var pool = Enumerable.Range(0, 60).Select(i => new DefinitionItem(
            new WordNetDefinition($"word{i}", "noun", $"the meaning number {i} of a word", 1), i < 15 ? "rewritten" : "stable")).ToList();
        var task = WordNetDefineTaskBuilder.Build(pool, Tok,
            new SamplingOptions(Seed: 9, TrainCount: 30, TestCount: 10, TrainMode: SamplingMode.Stratified), definitionTokens: 4);
        Assert.Equal(TaskKind.Generation, task.Info.Kind);
        Assert.Equal(5, task.Test.Count(r => r.Group == "rewritten"));
        Assert.Equal(5, task.Test.Count(r => r.Group == "stable"));
        Assert.All(task.Train.Concat(task.Test), r =>
        {
            Assert.Equal($"Define {r.Id}:", r.Prompt);
            Assert.StartsWith(" the", r.Completion);
            Assert.True(Tok.CountTokens(r.Completion) <= 5);
        });

        using var tmp = new TempDir();
        TaskFiles.Write(task, tmp.Path);
        Assert.Equal(task.Train, TaskFiles.ReadJsonl(Path.Combine(tmp.Path, TaskFiles.TrainFile)));
        var info = TaskFiles.ReadInfo(Path.Combine(tmp.Path, TaskFiles.InfoFile));
        Assert.Equal("wordnet-define", info.Name);
        Assert.Equal(["rewritten", "stable"], info.Groups);
        Assert.Equal(9UL, info.Seed);
    }
}
