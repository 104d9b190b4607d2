using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Cli;

/// <summary>`tpeft generate`, `score` and `eval` against the same computations done in-process.</summary>
public class CliInferenceCommandsTests
{
    [Fact]
    public void GenerateFromIdsAndFromTextMatchesTheInProcessGenerator()
    {
        var root = TpeftProcess.TempDir();
        // A model from `tpeft init` has no tokenizer: ids in, ids out.
        var bare = Path.Combine(root, "bare");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", bare, "--preset", "micro", "--seed", "4").ExitCode);
        var r = TpeftProcess.Run("generate", "--model", bare, "--prompt-ids", "5,17,42", "--max-new-tokens", "6", "--greedy", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var doc = JsonNode.Parse(r.Stdout)!;
        var want = new Generator(TransformerModel.Load(bare)).Generate([5, 17, 42], new GenerationOptions { MaxNewTokens = 6, Greedy = true });
        Assert.Equal(want.TokenIds, doc["ids"]!.AsArray().Select(x => (int)x!));
        Assert.Equal(want.StopReason, (string?)doc["stop_reason"]);
        Assert.True((double)doc["tokens_per_s"]! > 0);

        var model = CliFixtures.ModelWithTokenizer(root);
        var tok = TokenizerLoader.Load(model);
        var text = TpeftProcess.Run("generate", "--model", model, "--prompt", "three four five", "--max-new-tokens", "8", "--greedy", "--json");
        Assert.True(text.ExitCode == 0, text.Stderr);
        var td = JsonNode.Parse(text.Stdout)!;
        var promptIds = tok.Tokenizer.EncodeToIds("three four five").ToArray();
        Assert.Equal(promptIds, td["prompt_ids"]!.AsArray().Select(x => (int)x!));
        var wantText = new Generator(TransformerModel.Load(model), null, tok.Tokenizer).Generate(promptIds, new GenerationOptions { MaxNewTokens = 8, Greedy = true });
        Assert.Equal(wantText.TokenIds, td["ids"]!.AsArray().Select(x => (int)x!));
        Assert.Equal(tok.Tokenizer.Decode(wantText.TokenIds), (string?)td["text"]);
        // Plain mode prints just the continuation on stdout.
        var plain = TpeftProcess.Run("generate", "--model", model, "--prompt", "three four five", "--max-new-tokens", "8", "--greedy");
        Assert.Equal(wantText.Text, plain.Stdout.TrimEnd('\n'));
        // Sampling is reproducible from the seed.
        string[] sample = ["generate", "--model", model, "--prompt", "one", "-n", "10", "--temperature", "1.5", "--top-k", "50", "--seed", "9", "--json"];
        Assert.Equal(JsonNode.Parse(TpeftProcess.Run(sample).Stdout)!["ids"]!.ToJsonString(), JsonNode.Parse(TpeftProcess.Run(sample).Stdout)!["ids"]!.ToJsonString());

        var bad = TpeftProcess.Run("generate", "--model", bare, "--prompt", "hello");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("no tokenizer", bad.Stderr);
        var both = TpeftProcess.Run("generate", "--model", bare, "--prompt", "x", "--prompt-ids", "1");
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("exactly one of --prompt", both.Stderr);
        var outOfVocab = TpeftProcess.Run("generate", "--model", bare, "--prompt-ids", "1,99999");
        Assert.Equal(1, outOfVocab.ExitCode);
        Assert.Contains("vocab_size", outOfVocab.Stderr);
    }

    /// <summary>Σ -log p(ids[t] | ids[..t]) over positions t ≥ 1 whose label is counted, computed one record at a time.</summary>
    private static (double Sum, long Count) ReferenceLoss(CpuTransformer m, int[] ids, int[] labels)
    {
        int t = ids.Length, v = m.Config.VocabSize;
        var logits = m.ForwardLogits(ids, 1, t);
        double sum = 0; long n = 0;
        for (int i = 1; i < t; i++)
        {
            if (labels[i] == -100) continue;
            var row = logits.AsSpan((i - 1) * v, v);
            double max = double.NegativeInfinity;
            foreach (var x in row) max = Math.Max(max, x);
            double z = 0;
            foreach (var x in row) z += Math.Exp(x - max);
            sum -= row[labels[i]] - max - Math.Log(z);
            n++;
        }
        return (sum, n);
    }

    [Fact]
    public void ScoreIsTheMeanOverEveryCountedTokenForAllThreeRecordForms()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var tok = TokenizerLoader.Load(model).Tokenizer;
        var cpu = CpuTransformer.ForInference(TransformerModel.Load(model));
        const int Eos = 0;
        var rng = new Random(3);

        void Check(string file, List<(int[] Ids, int[] Labels)> expected, string modelDir, string format)
        {
            double sum = 0; long n = 0;
            foreach (var (ids, labels) in expected) { var (s, c) = ReferenceLoss(cpu, ids, labels); sum += s; n += c; }
            var r = TpeftProcess.Run("score", "--model", modelDir, "--data", file, "--batch-size", "3", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            var doc = JsonNode.Parse(r.Stdout)!;
            Assert.Equal(format, (string?)doc["format"]);
            Assert.Equal(expected.Count, (int)doc["records"]!);
            Assert.Equal(n, (long)doc["tokens"]!);
            double mean = (double)doc["mean_loss"]!;
            Assert.True(Math.Abs(mean - sum / n) < 1e-5 * (sum / n), $"{format}: {mean} vs {sum / n}");
            Assert.True(Math.Abs((double)doc["perplexity"]! - Math.Exp(mean)) < 1e-9 * Math.Exp(mean));
        }

        // {"text"}: every token is a target, EOS appended.
        var texts = Enumerable.Range(0, 7).Select(_ => CliFixtures.Sentence(rng)).ToList();
        File.WriteAllLines(Path.Combine(root, "text.jsonl"), texts.Select(t => new JsonObject { ["text"] = t }.ToJsonString()));
        Check(Path.Combine(root, "text.jsonl"), texts.Select(t => { int[] ids = [.. tok.EncodeToIds(t), Eos]; return (ids, ids); }).ToList(), model, "text-records");

        // {"prompt","completion"}: only the completion and its EOS count.
        var pcs = Enumerable.Range(0, 6).Select(_ => (P: CliFixtures.Sentence(rng), C: " " + CliFixtures.Words[rng.Next(13)])).ToList();
        File.WriteAllLines(Path.Combine(root, "pc.jsonl"), pcs.Select(x => new JsonObject { ["prompt"] = x.P, ["completion"] = x.C }.ToJsonString()));
        Check(Path.Combine(root, "pc.jsonl"), pcs.Select(x =>
        {
            int[] p = [.. tok.EncodeToIds(x.P)], ids = [.. p, .. tok.EncodeToIds(x.C), Eos];
            var labels = ids.Select((id, i) => i < p.Length ? -100 : id).ToArray();
            return (ids, labels);
        }).ToList(), model, "prompt-completion");

        // Pre-tokenized with HF labels (-100 not counted; one record without labels counts everything), on a
        // model without a tokenizer: none is needed.
        var bare = Path.Combine(root, "bare");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", bare, "--preset", "micro", "--vocab-size", CliFixtures.VocabSize.ToString(), "--seed", "1").ExitCode);
        var records = new List<(int[] Ids, int[] Labels)>();
        var lines = new List<string>();
        for (int k = 0; k < 5; k++)
        {
            var ids = Enumerable.Range(0, 4 + k * 3).Select(_ => rng.Next(CliFixtures.VocabSize)).ToArray();
            var labels = ids.Select((id, i) => i < 2 + k ? -100 : id).ToArray();
            if (k == 3) labels[^1] = -100; // a hole at the end
            records.Add((ids, k == 4 ? ids : labels));
            var o = new JsonObject { ["input_ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) };
            if (k != 4) o["labels"] = new JsonArray(labels.Select(i => (JsonNode)i).ToArray());
            lines.Add(o.ToJsonString());
        }
        File.WriteAllLines(Path.Combine(root, "tok.jsonl"), lines);
        // The bare model and the tokenizer fixture share seed 1 and shapes, so the reference model is the same.
        Check(Path.Combine(root, "tok.jsonl"), records, bare, "tokenized");

        var text = TpeftProcess.Run("score", "--model", bare, "--data", Path.Combine(root, "text.jsonl"));
        Assert.Equal(1, text.ExitCode);
        Assert.Contains("no tokenizer", text.Stderr);
        File.WriteAllText(Path.Combine(root, "badlabels.jsonl"), """{"input_ids":[1,2,3],"labels":[1,2]}""");
        var badLabels = TpeftProcess.Run("score", "--model", bare, "--data", Path.Combine(root, "badlabels.jsonl"));
        Assert.Equal(1, badLabels.ExitCode);
        Assert.Contains("badlabels.jsonl", badLabels.Stderr);
        Assert.Contains("labels", badLabels.Stderr);
    }

    [Fact]
    public void EvalClassifyReportsTheEvaluatorsAccuracyWithAConfidenceInterval()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var rng = new Random(5);
        var lines = Enumerable.Range(0, 12).Select(i =>
        {
            bool yes = i % 2 == 0;
            return new JsonObject { ["prompt"] = CliFixtures.Sentence(rng) + " even?", ["completion"] = yes ? " yes" : " no", ["labels"] = new JsonArray(" yes", " no") }.ToJsonString();
        });
        var task = Path.Combine(root, "task.jsonl");
        File.WriteAllLines(task, lines);

        // No --mode: records with "labels" are a classification task.
        var r = TpeftProcess.Run("eval", "--model", model, "--task", task, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("classify", (string?)doc["mode"]);
        var result = doc["result"]!;
        var want = new TaskEvaluator(TransformerModel.Load(model), null, TokenizerLoader.Load(model).Tokenizer).Classify(EvalDataset.LoadJsonl(task));
        Assert.Equal(12, (int)result["count"]!);
        Assert.Equal(want.Correct, (int)result["correct"]!);
        double acc = (double)result["accuracy"]!, lo = (double)result["ci95"]!["low"]!, hi = (double)result["ci95"]!["high"]!;
        Assert.Equal(want.Accuracy, acc, 12);
        Assert.True(lo <= acc && acc <= hi && hi - lo > 0.1, $"CI [{lo}, {hi}] around {acc}");
        Assert.Equal([" yes", " no"], result["labels"]!.AsArray().Select(x => (string)x!));

        // The table view and the loss mode run on the same file.
        var table = TpeftProcess.Run("eval", "--model", model, "--task", task, "--mode", "classify");
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains("95% CI", table.Stdout);
        var loss = TpeftProcess.Run("eval", "--model", model, "--task", task, "--mode", "loss", "--json");
        Assert.True(loss.ExitCode == 0, loss.Stderr);
        Assert.Equal(12, (int)JsonNode.Parse(loss.Stdout)!["result"]!["records"]!);

        // Generation: greedy answers, first line, exact match against the gold completion itself.
        var gen = TpeftProcess.Run("eval", "--model", model, "--task", task, "--mode", "generate", "--gold-is-answer", "--max-new-tokens", "3", "--predictions", "--json");
        Assert.True(gen.ExitCode == 0, gen.Stderr);
        var gr = JsonNode.Parse(gen.Stdout)!["result"]!;
        var wantGen = new TaskEvaluator(TransformerModel.Load(model), null, TokenizerLoader.Load(model).Tokenizer,
            new EvalOptions { GoldIsAnswer = true, MaxNewTokens = 3 }).ExactMatch(EvalDataset.LoadJsonl(task));
        Assert.Equal(wantGen.Correct, (int)gr["correct"]!);
        Assert.Equal(12, gr["predictions"]!.AsArray().Count);

        var badMode = TpeftProcess.Run("eval", "--model", model, "--task", task, "--mode", "rank");
        Assert.Equal(1, badMode.ExitCode);
        Assert.Contains("--mode", badMode.Stderr);
        File.WriteAllText(Path.Combine(root, "broken.jsonl"), """{"prompt": "one", "completion": 3}""");
        var broken = TpeftProcess.Run("eval", "--model", model, "--task", Path.Combine(root, "broken.jsonl"), "--mode", "loss");
        Assert.Equal(1, broken.ExitCode);
        Assert.Contains("broken.jsonl:1", broken.Stderr);
        Assert.Contains("completion", broken.Stderr);
    }
}
