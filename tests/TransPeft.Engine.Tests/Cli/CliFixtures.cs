using System.Text.Json.Nodes;
using TransPeft.Engine.Text;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Cli;

/// <summary>
/// Inputs for the end-to-end CLI tests: a micro model made by `tpeft init` with a compact tokenizer trained on the
/// test's own words beside it (so text commands work), and small JSONL files in every record form.
/// </summary>
internal static class CliFixtures
{
    public static readonly string[] Words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];

    private static readonly Lazy<CompactGpt2Tokenizer> SharedTokenizer = new(() => CompactGpt2Tokenizer.Train([string.Join("\n", Words) + " . yes no"], vocabSize: 300));

    public static CompactGpt2Tokenizer Tokenizer => SharedTokenizer.Value;

    public static int VocabSize => Tokenizer.VocabSize;

    /// <summary>
    /// `tpeft init` a micro model into ROOT/NAME with the tokenizer beside it: vocab_size = the tokenizer's (so every
    /// id the model can emit decodes), 64 positions.
    /// </summary>
    public static string ModelWithTokenizer(string root, string name = "base", int seed = 1, params string[] extraInitArgs)
    {
        var dir = Path.Combine(root, name);
        var r = TpeftProcess.Run(["init", "--out", dir, "--preset", "micro", "--vocab-size", VocabSize.ToString(), "--seed", seed.ToString(), .. extraInitArgs]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        // Short contexts keep every test fast; the CLI reads max_position_embeddings from config.json.
        var cfgPath = Path.Combine(dir, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        cfg["max_position_embeddings"] = 64;
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        Tokenizer.Save(Path.Combine(dir, TokenizerLoader.CompactFileName));
        return dir;
    }

    /// <summary>Counting sentences ("three four five six."), the same kind the micro model can learn in a few steps.</summary>
    public static string TextRecords(string path, int count, int seed)
    {
        var rng = new Random(seed);
        File.WriteAllLines(path, Enumerable.Range(0, count).Select(_ => new JsonObject { ["text"] = Sentence(rng) }.ToJsonString()));
        return path;
    }

    public static string Sentence(Random rng)
    {
        int s = rng.Next(0, 6);
        return string.Join(" ", Words.Skip(s).Take(rng.Next(3, 7))) + ".";
    }

    public static Dictionary<string, string> CacheEnv(string root) => new() { ["TPEFT_CACHE_DIR"] = Path.Combine(root, "cache") };
}
