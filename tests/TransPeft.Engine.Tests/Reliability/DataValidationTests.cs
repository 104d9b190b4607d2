using System.Text.Json.Nodes;
using TransPeft.Engine.Tests.Cli;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>Data is validated completely before training or scoring starts; an error names the file and the line.</summary>
public class DataValidationTests
{
    /// <summary>Ten pre-tokenized records; record <paramref name="badLine"/> (1-based) has an id or a label of 99999.</summary>
    private static string Records(string path, int badLine, string field)
    {
        var rng = new Random(4);
        File.WriteAllLines(path, Enumerable.Range(1, 10).Select(line =>
        {
            var ids = Enumerable.Range(0, 6).Select(_ => rng.Next(CliFixtures.VocabSize)).ToArray();
            var labels = (int[])ids.Clone();
            if (line == badLine) (field == "input_ids" ? ids : labels)[4] = 99999;
            return new JsonObject
            {
                ["input_ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                ["labels"] = new JsonArray(labels.Select(i => (JsonNode)i).ToArray()),
            }.ToJsonString();
        }));
        return path;
    }

    [Theory]
    [InlineData("input_ids")]
    [InlineData("labels")]
    public void OutOfVocabularyIdsAreFoundBeforeTheFirstStepNamingFileAndLine(string field)
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = Records(Path.Combine(root, "tok.jsonl"), 9, field);
        var outDir = Path.Combine(root, "run");
        // Batches of 2: before the fix the bad record was met only at the step that drew it.
        var train = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), "train", "--model", model, "--data", data, "--out", outDir,
            "--steps", "6", "--batch-size", "2", "--seq-len", "16", "--device", "cpu");
        var error = CliAssert.OneErrorLine(train);
        Assert.Contains($"{data}:line 9", error);
        Assert.Contains($"'{field}'[4]", error);
        Assert.Contains("99999", error);
        Assert.False(File.Exists(Path.Combine(outDir, "metrics.jsonl")), "no step may run on invalid data");

        var score = TpeftProcess.Run("score", "--model", model, "--data", data);
        error = CliAssert.OneErrorLine(score);
        Assert.Contains($"{data}:line 9", error);
        Assert.Contains($"'{field}'[4]", error);
    }
}
