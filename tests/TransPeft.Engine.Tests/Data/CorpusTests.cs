using TransPeft.Experiments.Data.Corpora;
using TransPeft.Experiments.Data.Text;

namespace TransPeft.Engine.Tests.DataPipeline;

public class CorpusTests
{
    private static Dictionary<CorpusPart, IReadOnlyList<CorpusDocument>> Docs() => new()
    {
        [CorpusPart.MobyDick] = Enumerable.Range(0, 50).Select(i => new CorpusDocument($"m/{i}", CorpusPart.MobyDick, new string('m', 100) + i)).ToList(),
        [CorpusPart.WordNetDictionary] = Enumerable.Range(0, 50).Select(i => new CorpusDocument($"w/{i}", CorpusPart.WordNetDictionary, $"word{i} (noun): a thing", Required: i < 5)).ToList(),
    };

    private static readonly CorpusSpec Spec = new("corpus-a", [new(CorpusPart.MobyDick, 3), new(CorpusPart.WordNetDictionary, 1)], 2000, 400);

    [Fact]
    public void Budgets_shares_required_documents_and_disjoint_splits()
    {
        var split = CorpusBuilder.Build(Spec, Docs(), seed: 11);
        long Chars(IEnumerable<CorpusDocument> d, CorpusPart p) => d.Where(x => x.Part == p).Sum(x => (long)x.Text.Length);
        // Moby Dick gets 3/4 of the budgets, overshooting by less than one document (~103 chars).
        Assert.InRange(Chars(split.Train, CorpusPart.MobyDick), 1500, 1500 + 103);
        Assert.InRange(Chars(split.HeldOut, CorpusPart.MobyDick), 300, 300 + 103);
        Assert.InRange(Chars(split.Train, CorpusPart.WordNetDictionary), 500, 500 + 25);
        Assert.Empty(split.Train.Select(d => d.Key).Intersect(split.HeldOut.Select(d => d.Key)));
        var required = Docs()[CorpusPart.WordNetDictionary].Where(d => d.Required).Select(d => d.Key);
        Assert.All(required, k => Assert.Contains(split.Train, d => d.Key == k));
        Assert.DoesNotContain(split.HeldOut, d => d.Required);
        // Parts are interleaved, not in blocks.
        var firstHalf = split.Train.Take(split.Train.Count / 2).Select(d => d.Part).Distinct().Count();
        Assert.Equal(2, firstHalf);
    }

    [Fact]
    public void Same_seed_same_corpus_other_seed_other_corpus()
    {
        var a = CorpusBuilder.Build(Spec, Docs(), 11);
        var b = CorpusBuilder.Build(Spec, Docs(), 11);
        var c = CorpusBuilder.Build(Spec, Docs(), 12);
        Assert.Equal(a.Train.Select(d => d.Key), b.Train.Select(d => d.Key));
        Assert.Equal(a.HeldOut.Select(d => d.Key), b.HeldOut.Select(d => d.Key));
        Assert.NotEqual(a.HeldOut.Select(d => d.Key).ToHashSet(), c.HeldOut.Select(d => d.Key).ToHashSet());
    }

    [Fact]
    public void Text_files_separate_documents_with_endoftext_and_split_back()
    {
        using var tmp = new TempDir();
        var split = CorpusBuilder.Build(Spec, Docs(), 11);
        var (train, held) = split.Write(tmp.Path);
        var text = File.ReadAllText(train);
        Assert.EndsWith("\n<|endoftext|>", text);
        Assert.Equal(split.Train.Select(d => d.Text), CorpusSplit.SplitDocuments(text));
        Assert.Equal(split.HeldOut.Count, CorpusSplit.SplitDocuments(File.ReadAllText(held)).Count);
        Assert.Throws<ArgumentException>(() => CorpusBuilder.Build(Spec with { Parts = [new(CorpusPart.Sotu, 1)] }, Docs(), 1));
    }

    [Fact]
    public void Sentences_and_chunks()
    {
        var s = SentenceSplitter.Split("Mr. Speaker, the U.S. economy grew. John F. Kennedy spoke! Did it work? \"Yes,\" he said. 1990 was a year.");
        Assert.Equal(["Mr. Speaker, the U.S. economy grew.", "John F. Kennedy spoke!", "Did it work?", "\"Yes,\" he said.", "1990 was a year."], s);
        Assert.Equal(["a b", "c"], TextChunker.ChunkSentences(["a", "b", "c"], 3));
        Assert.Equal(["one\n\ntwo", "three"], TextChunker.ChunkParagraphs("one\n\ntwo\n\nthree", 10));
        var longPara = string.Join(' ', Enumerable.Repeat("This is a sentence.", 10));
        Assert.All(TextChunker.ChunkParagraphs(longPara, 50), p => Assert.True(p.Length <= 50));
    }
}
