using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Evaluation;

public class TaskEvaluatorTests
{
    /// <summary>log softmax of one logits row, in double, written out independently of the engine.</summary>
    private static double LogProb(float[] logits, int row, int v, int y)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < v; j++) max = Math.Max(max, logits[row * v + j]);
        double sum = 0;
        for (int j = 0; j < v; j++) sum += Math.Exp(logits[row * v + j] - max);
        return logits[row * v + y] - max - Math.Log(sum);
    }

    /// <summary>Σ log p(label | prompt) from one full forward over prompt + label (no KV cache).</summary>
    private static double ExpectedLogLikelihood(CpuTransformer cpu, string prompt, string label)
    {
        int[] p = CharTokenizer.Ids(prompt), c = CharTokenizer.Ids(label);
        int[] ids = [.. p, .. c];
        var logits = cpu.ForwardLogits(ids, 1, ids.Length);
        double ll = 0;
        for (int j = 0; j < c.Length; j++) ll += LogProb(logits, p.Length - 1 + j, cpu.Config.VocabSize, c[j]);
        return ll;
    }

    private static readonly EvalRecord[] Records =
    [
        new("is it spam: buy now\nlabel:", " spam", null, 1),
        new("is it spam: hello friend\nlabel:", " ham", null, 2),
        new("is it spam: win cash\nlabel:", " spam", null, 3),
        new("is it spam: meeting at noon\nlabel:", " ham", null, 4),
        new("review: great film\nsentiment:", " good", [" good", " bad", " so so"], 5),
        new("review: dull\nsentiment:", " bad", [" good", " bad", " so so"], 6),
    ];

    [Fact]
    public void ClassificationRanksLabelsBySummedLogLikelihood()
    {
        var model = TinyModels.Model(7);
        var adapter = TinyModels.TrainedAdapter(model.Config, seed: 3);
        var ev = new TaskEvaluator(model, adapter, CharTokenizer.Create(), new EvalOptions { Labels = [" spam", " ham"], KeepPredictions = true });
        var result = ev.Classify(Records);
        var cpu = new CpuTransformer(model, adapter);

        Assert.Equal(Records.Length, result.Count);
        Assert.Equal("records, else task labels", result.LabelSource);
        Assert.Equal([" spam", " ham", " good", " bad", " so so"], result.Labels);
        var preds = result.Predictions!;
        int correct = 0;
        for (int i = 0; i < Records.Length; i++)
        {
            var r = Records[i];
            var candidates = r.Labels ?? [" spam", " ham"];
            Assert.Equal(candidates, preds[i].Candidates);
            var expected = candidates.Select(c => ExpectedLogLikelihood(cpu, r.Prompt, c)).ToArray();
            for (int k = 0; k < expected.Length; k++)
                Assert.True(Math.Abs(expected[k] - preds[i].LogLikelihoods[k]) < 1e-4,
                    $"record {r.Line}, label '{candidates[k]}': got {preds[i].LogLikelihoods[k]}, want {expected[k]}");
            string best = candidates[Array.IndexOf(expected, expected.Max())];
            Assert.Equal(best, preds[i].Predicted);
            Assert.Equal(r.Completion, preds[i].Gold);
            if (best == r.Completion) correct++;
        }
        Assert.Equal(correct, result.Correct);
        Assert.Equal((double)correct / Records.Length, result.Accuracy);
        Assert.Equal(Statistics.Wilson(correct, Records.Length), result.Ci95);

        // Confusion [gold][predicted] and per-class counts agree with the predictions.
        for (int g = 0; g < result.Labels.Count; g++)
            for (int p = 0; p < result.Labels.Count; p++)
                Assert.Equal(preds.Count(x => x.Gold == result.Labels[g] && x.Predicted == result.Labels[p]), result.Confusion[g][p]);
        Assert.Equal(2, result.PerClass[" spam"].Gold);
        Assert.Equal(0, result.PerClass[" so so"].Gold);
        Assert.Equal(preds.Count(x => x.Predicted == " ham"), result.PerClass[" ham"].Predicted);
        Assert.Equal(preds.Count(x => x.Correct && x.Gold == " good"), result.PerClass[" good"].Correct);

        var json = result.ToJson();
        Assert.Contains("\"per_class\"", json);
        Assert.Contains("\"ci95\"", json);
    }

    [Fact]
    public void LabelsDefaultToTheDistinctGoldCompletions()
    {
        var model = TinyModels.Model(8);
        var records = Records.Take(4).ToArray();
        var result = new TaskEvaluator(model, null, CharTokenizer.Create()).Classify(records);
        Assert.Equal("distinct gold completions", result.LabelSource);
        Assert.Equal([" spam", " ham"], result.Labels);
        Assert.Equal(4, result.PerClass.Values.Sum(c => c.Gold));
        Assert.Null(result.Predictions);
    }

    [Fact]
    public void RecordLabelsAloneAndGoldMatchedOnceTrimmed()
    {
        var model = TinyModels.Model(8);
        EvalRecord[] records =
        [
            new("is the sky blue?", "yes", [" yes", " no"], 1),
            new("is fire cold?", " no", [" yes", " no"], 2),
        ];
        var result = new TaskEvaluator(model, null, CharTokenizer.Create(), new EvalOptions { KeepPredictions = true }).Classify(records);
        Assert.Equal("records", result.LabelSource);
        Assert.Equal([" yes", " no"], result.Labels);
        Assert.Equal(" yes", result.Predictions![0].Gold);
        Assert.Equal(1, result.PerClass[" yes"].Gold);
    }

    [Fact]
    public void GoldLabelOutsideTheCandidatesIsAnErrorNamingTheLine()
    {
        var model = TinyModels.Model(8);
        var ev = new TaskEvaluator(model, null, CharTokenizer.Create(), new EvalOptions { Labels = [" spam", " ham"] }, source: "spam.jsonl");
        var e = Assert.Throws<EvalDataException>(() => ev.Classify([Records[0], new EvalRecord("x:", " eggs", null, 2)]));
        Assert.Contains("spam.jsonl:2", e.Message);
        Assert.Contains("'completion'", e.Message);
        Assert.Contains("\" eggs\"", e.Message);
    }

    [Fact]
    public void CompletionLossIsTheMeanOverAllCompletionTokens()
    {
        var model = TinyModels.Model(9);
        var adapter = TinyModels.TrainedAdapter(model.Config, seed: 4);
        EvalRecord[] records =
        [
            new("define cat:", " a small animal", null, 1),
            new("define sun:", " star", null, 2),
            new("define rain forest:", " a dense wet forest.", null, 3),
        ];
        var result = new TaskEvaluator(model, adapter, CharTokenizer.Create(), new EvalOptions { LossBatchSize = 2 }).CompletionLoss(records);

        var cpu = new CpuTransformer(model, adapter);
        double nll = 0;
        long tokens = 0;
        foreach (var r in records)
        {
            nll -= ExpectedLogLikelihood(cpu, r.Prompt, r.Completion);
            tokens += r.Completion.Length;
        }
        Assert.Equal(tokens, result.Tokens);
        Assert.Equal(3, result.Records);
        Tolerance.Relative("mean loss", nll / tokens, result.MeanLoss, 1e-5);
        Tolerance.Relative("perplexity", Math.Exp(nll / tokens), result.Perplexity, 1e-5);
    }

    [Fact]
    public void ExactMatchComparesTheFirstLineOfGreedyGenerations()
    {
        var model = TinyModels.Model(10);
        var tok = CharTokenizer.Create();
        string[] prompts = ["q: 2 plus 2\na:", "q: capital of france\na:", "q: colour of sky\na:"];
        // Gold = the model's own greedy first line (so it must match), except the last record, whose gold is altered.
        var gen = new Generator(model, null, tok);
        var firstLines = prompts.Select(p => gen.Generate(CharTokenizer.Ids(p), new GenerationOptions { Greedy = true, MaxNewTokens = 12, StopStrings = ["\n"] }).Text!.Trim()).ToArray();
        EvalRecord[] records =
        [
            new(prompts[0], firstLines[0] + "\nanything after the first line", null, 1),
            new(prompts[1], "  " + firstLines[1] + "  ", null, 2),
            new(prompts[2], firstLines[2] + "zz9", null, 3),
        ];
        var result = new TaskEvaluator(model, null, tok, new EvalOptions { MaxNewTokens = 12, KeepPredictions = true }).ExactMatch(records);
        Assert.Equal(3, result.Count);
        Assert.Equal(2, result.Correct);
        Assert.Equal([true, true, false], result.Predictions!.Select(p => p.Correct));
        Assert.Equal(firstLines, result.Predictions!.Select(p => p.Answer));
        Assert.Equal("first line, trimmed", result.Extractor);
        Assert.Equal(Statistics.Wilson(2, 3), result.Ci95);
    }

    [Fact]
    public void GoldWithoutAnExtractableAnswerIsAnError()
    {
        var model = TinyModels.Model(10);
        var ev = new TaskEvaluator(model, null, CharTokenizer.Create(), new EvalOptions { AnswerPattern = AnswerExtractor.GsmAnswerPattern, MaxNewTokens = 4 }, "gsm.jsonl");
        var e = Assert.Throws<EvalDataException>(() => ev.ExactMatch([new EvalRecord("q: 1 plus 1\na:", "two", null, 7)]));
        Assert.Contains("gsm.jsonl:7", e.Message);
        // With GoldIsAnswer the completion is the answer itself.
        var r = new TaskEvaluator(model, null, CharTokenizer.Create(), new EvalOptions { AnswerPattern = AnswerExtractor.GsmAnswerPattern, MaxNewTokens = 4, GoldIsAnswer = true })
            .ExactMatch([new EvalRecord("q: 1 plus 1\na:", " 2 ", null, 7)]);
        Assert.Equal(1, r.Count);
    }

    [Fact]
    public void JsonlLoaderReadsRecordsAndNamesBadLines()
    {
        var dir = Directory.CreateTempSubdirectory("tpeft-eval-");
        try
        {
            var path = Path.Combine(dir.FullName, "task.jsonl");
            File.WriteAllText(path, "{\"prompt\": \"a:\", \"completion\": \" x\", \"labels\": [\" x\", \" y\"], \"id\": 4}\n\n{\"prompt\": \"b:\", \"completion\": \" y\"}\n");
            var records = EvalDataset.LoadJsonl(path);
            Assert.Equal(2, records.Count);
            Assert.Equal([" x", " y"], records[0].Labels);
            Assert.Equal(3, records[1].Line);
            Assert.Null(records[1].Labels);

            File.WriteAllText(path, "{\"prompt\": \"a:\", \"completion\": \" x\"}\n{\"prompt\": \"b:\", \"completion\": 3}\n");
            var e = Assert.Throws<EvalDataException>(() => EvalDataset.LoadJsonl(path));
            Assert.Contains($"{path}:2", e.Message);
            Assert.Contains("'completion'", e.Message);
            File.WriteAllText(path, "{\"prompt\": \"a:\", \"completion\": \" x\", \"labels\": [\" x\", \" x\"]}\n");
            Assert.Contains("'labels'", Assert.Throws<EvalDataException>(() => EvalDataset.LoadJsonl(path)).Message);
        }
        finally { dir.Delete(true); }
    }
}
