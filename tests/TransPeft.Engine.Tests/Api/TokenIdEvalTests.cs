using System.Text.Json.Nodes;
using TransPeft.Engine.Evaluation;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.Support;
using TempDir = TransPeft.Engine.Tests.IO.TempDir;

namespace TransPeft.Engine.Tests.Api;

/// <summary>Evaluation on pre-tokenized records (prompt_ids, completion_ids, label_ids) with a model folder of only config.json and weights.</summary>
public sealed class TokenIdEvalTests
{
    [Fact]
    public void Loss_and_classification_on_token_ids_need_no_tokenizer_and_match_the_session_scores()
    {
        using var tmp = new TempDir();
        var model = TinyModels.Model(4);
        string dir = Path.Combine(tmp.Path, "bare");
        model.Save(dir);
        var rng = new Random(2);
        int[] Ids(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        int[] yes = [5, 9], no = [17];
        var rows = Enumerable.Range(0, 6).Select(i => (Prompt: Ids(3 + i), Gold: i % 2 == 0 ? yes : no)).ToList();
        string task = Path.Combine(tmp.Path, "task.jsonl");
        JsonArray A(int[] x) => new(x.Select(v => (JsonNode)v).ToArray());
        File.WriteAllLines(task, rows.Select(r => new JsonObject
        {
            ["prompt_ids"] = A(r.Prompt), ["completion_ids"] = A(r.Gold), ["label_ids"] = new JsonArray(A(yes), A(no)),
        }.ToJsonString()));
        var records = EvalDataset.LoadJsonl(task);
        Assert.All(records, r => Assert.True(r.Tokenized));

        using var session = InferenceSession.Load(dir);
        Assert.Null(session.Tokenizer);
        var evaluator = new TaskEvaluator(session, null, new EvalOptions { KeepPredictions = true }, task);
        using var ctx = session.CreateContext();

        // Loss: the completion tokens' mean NLL given the prompt, as Score reports them.
        var loss = evaluator.CompletionLoss(records);
        double sum = 0; int n = 0;
        foreach (var r in rows)
        {
            var s = ctx.Score([.. r.Prompt, .. r.Gold]);
            sum -= s.LogProbs.TakeLast(r.Gold.Length).Sum(x => (double)x);
            n += r.Gold.Length;
        }
        Assert.Equal(n, loss.Tokens);
        Assert.Equal(sum / n, loss.MeanLoss, 4);

        // Classification: each record's prediction is the candidate with the higher Σ log p.
        var c = evaluator.Classify(records);
        Assert.Equal(6, c.Count);
        foreach (var (p, r) in c.Predictions!.Zip(rows))
        {
            double Ll(int[] cand) => ctx.Score([.. r.Prompt, .. cand]).LogProbs.TakeLast(cand.Length).Sum(x => (double)x);
            Assert.Equal(EvalRecord.SpellIds(Ll(yes) >= Ll(no) ? yes : no), p.Predicted);
            Assert.Equal(EvalRecord.SpellIds(r.Gold), p.Gold);
        }

        // Exact match compares generated text: refused with the reason.
        Assert.Contains("pre-tokenized records support loss and classification", Assert.Throws<ArgumentException>(() => evaluator.ExactMatch(records)).Message);

        // The CLI takes the same path on the bare folder.
        var cli = TpeftProcess.Run("eval", "--model", dir, "--task", task, "--mode", "loss", "--device", "cpu", "--json");
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        Assert.Equal(loss.MeanLoss, (double)JsonNode.Parse(cli.Stdout)!["result"]!["mean_loss"]!, 6);
    }

    [Fact]
    public void A_malformed_tokenized_record_names_the_line_and_field()
    {
        using var tmp = new TempDir();
        string task = Path.Combine(tmp.Path, "bad.jsonl");
        File.WriteAllText(task, "{\"prompt_ids\": [1, 2], \"completion_ids\": [3, -1]}\n");
        var e = Assert.Throws<EvalDataException>(() => EvalDataset.LoadJsonl(task));
        Assert.Contains($"{task}:1", e.Message);
        Assert.Contains("completion_ids", e.Message);
    }
}
