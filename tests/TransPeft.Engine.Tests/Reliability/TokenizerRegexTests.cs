using System.Diagnostics;
using System.Text.Json.Nodes;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Text;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>
/// A tokenizer.json's Split regex is untrusted input: a pattern that matches empty must not loop, a pattern that
/// backtracks catastrophically must stop with a named error, and text the regex does not match is kept as its own
/// pieces (Hugging Face's "Isolated" behaviour), never dropped.
/// </summary>
public sealed class TokenizerRegexTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private Microsoft.ML.Tokenizers.Tokenizer WithSplit(string pattern)
    {
        var json = TinyTokenizerFiles.ByteLevelBpe();
        json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"] = new JsonObject { ["Regex"] = pattern };
        var dir = _dir.Sub(Guid.NewGuid().ToString("N"));
        TinyTokenizerFiles.Write(dir, json);
        return HfTokenizerJson.Load(Path.Combine(dir, TokenizerLoader.TokenizerJsonFileName)).Tokenizer;
    }

    /// <summary>Runs <paramref name="work"/> on a worker with a deadline, so a hang fails the test instead of the run.</summary>
    private static T Within<T>(TimeSpan limit, Func<T> work)
    {
        var task = Task.Run(work);
        Assert.True(task.Wait(limit), $"did not finish in {limit.TotalSeconds} s");
        return task.Result;
    }

    [Fact]
    public void APatternThatMatchesEmptyTerminatesAndKeepsEveryCharacter()
    {
        var tok = WithSplit("(?=b)"); // a lookahead: every match is empty
        var ids = Within(TimeSpan.FromSeconds(20), () => tok.EncodeToIds("abcd abcd"));
        Assert.Equal("abcd abcd", tok.Decode(ids));
    }

    [Fact]
    public void TextTheRegexDoesNotMatchIsKeptAsPieces()
    {
        var tok = WithSplit("\\p{L}+");
        foreach (var text in new[] { "ab 12 cd", "  leading", "trailing!!", "12" })
            Assert.Equal(text, tok.Decode(tok.EncodeToIds(text)));
        // "ab" and "cd" are pieces of their own, the gap " 12 " another: BPE never merges across them.
        Assert.Equal(tok.EncodeToIds("ab").Concat(tok.EncodeToIds(" 12 ")).Concat(tok.EncodeToIds("cd")), tok.EncodeToIds("ab 12 cd"));
    }

    [Fact]
    public void ACatastrophicPatternStopsWithANamedErrorInsteadOfHanging()
    {
        var tok = WithSplit("(a+)+b");
        var clock = Stopwatch.StartNew();
        var e = Within(TimeSpan.FromSeconds(60), () => Assert.Throws<TokenizerFormatException>(() => tok.EncodeToIds(new string('a', 40) + "c")));
        Assert.Contains("pre_tokenizer", e.Message);
        Assert.Contains("time", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }
}
