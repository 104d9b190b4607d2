using TransPeft.Engine.IO;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training.Bert;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>LoRA + head training on a small random BERT folder: it learns, saves as PEFT lays it out, reloads to the same predictions, and `tpeft eval` reads it.</summary>
public sealed class BertClassifierTests
{
    private static readonly string[] Words = ["good", "great", "fine", "nice", "bad", "awful", "poor", "sad", "the", "movie", "food", "was", "day", "very", "a"];

    /// <summary>A 2-layer random BERT with a 20-word vocabulary, written as an HF folder.</summary>
    internal static string TinyBertFolder(int seed = 1)
    {
        var dir = TpeftProcess.TempDir();
        var config = new BertConfig { VocabSize = 5 + Words.Length, HiddenSize = 16, NumLayers = 2, NumHeads = 2, IntermediateSize = 32, MaxPositionEmbeddings = 16, LayerNormEps = 1e-12 };
        var rng = new Random(seed);
        var st = new SafetensorsWriter();
        foreach (var (name, shape) in BertWeights.ExpectedShapes(config))
        {
            var v = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < v.Length; i++) v[i] = name.Contains("LayerNorm.weight") ? 1f : name.EndsWith(".bias") ? 0f : (float)((rng.NextDouble() * 2 - 1) * 0.2);
            st.AddFloat(name, v, shape);
        }
        st.Save(Path.Combine(dir, "model.safetensors"));
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJson());
        File.WriteAllLines(Path.Combine(dir, "vocab.txt"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", .. Words]);
        return dir;
    }

    private static List<LabelledText> Sentiment(int n, int seed)
    {
        var rng = new Random(seed);
        string[] pos = ["good", "great", "fine", "nice"], neg = ["bad", "awful", "poor", "sad"], filler = ["the", "movie", "food", "was", "day", "very", "a"];
        return Enumerable.Range(0, n).Select(i =>
        {
            int label = i % 2;
            var words = Enumerable.Range(0, rng.Next(2, 6)).Select(_ => filler[rng.Next(filler.Length)]).ToList();
            words.Insert(rng.Next(words.Count + 1), (label == 1 ? pos : neg)[rng.Next(4)]);
            return new LabelledText(string.Join(' ', words), label);
        }).ToList();
    }

    [Fact]
    public void LearnsATokenTaskThenSavesAndReloadsToTheSamePredictions()
    {
        var model = BertModel.Load(TinyBertFolder());
        Assert.Equal(BertPooling.Mean, model.DefaultPooling);
        var train = Sentiment(128, 1);
        var test = Sentiment(64, 2);
        var o = new BertClassifierOptions { Rank = 4, Alpha = 8, Steps = 120, BatchSize = 16, LearningRate = 1e-2, MaxTokens = 12, PMask = 0.1, PDrop = 0.1, Seed = 3 };
        var losses = new List<double>();
        var clf = BertSequenceClassifier.Train(model, train, ["negative", "positive"], o, (_, loss) => losses.Add(loss));
        Assert.Equal(120, losses.Count);
        Assert.True(losses.TakeLast(10).Average() < losses.Take(10).Average() / 2, $"loss did not fall: first {losses.Take(10).Average():F3}, last {losses.TakeLast(10).Average():F3}");
        var (correct, total, ci) = clf.Evaluate(model, test);
        Assert.True(correct >= 0.9 * total, $"accuracy {correct}/{total}");
        Assert.InRange((double)correct / total, ci.Low, ci.High);

        var dir = Path.Combine(TpeftProcess.TempDir(), "adapter");
        clf.Save(dir, model.Directory);
        using (var st = SafetensorsReader.Open(Path.Combine(dir, "adapter_model.safetensors")))
        {
            Assert.Equal([4L, 16L], st.GetInfo("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight").Shape);
            Assert.Equal([32L, 4L], st.GetInfo("base_model.model.bert.encoder.layer.1.intermediate.dense.lora_B.weight").Shape);
            Assert.Equal([2L, 16L], st.GetInfo("base_model.model.classifier.weight").Shape);
            Assert.Equal(6 * 2 * 2 + 2, st.Names.Count);
        }
        Assert.Contains("\"modules_to_save\"", File.ReadAllText(Path.Combine(dir, "adapter_config.json")));
        var back = BertSequenceClassifier.Load(dir);
        Assert.Equal(new TransPeftSettings { PMask = 0.1, PDrop = 0.1, Seed = 3 }, back.TransPeft);
        var a = clf.Predict(model, test.Select(x => x.Text).ToList());
        var b = back.Predict(model, test.Select(x => x.Text).ToList());
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i]);
    }

    [Fact]
    public void TrainingIsDeterministicForASeedAndTransPeftChangesIt()
    {
        var model = BertModel.Load(TinyBertFolder());
        var train = Sentiment(32, 1);
        var o = new BertClassifierOptions { Rank = 2, Alpha = 4, Steps = 5, BatchSize = 8, LearningRate = 1e-2, MaxTokens = 12, Seed = 9 };
        float[] Weights(BertClassifierOptions opt) => BertSequenceClassifier.Train(model, train, ["n", "p"], opt).Predict(model, ["the food was good"])[0];
        Assert.Equal(Weights(o), Weights(o));
        Assert.NotEqual(Weights(o), Weights(o with { PMask = 0.5 }));
    }

    [Fact]
    public void TpeftEvalReportsAccuracyWithAnIntervalAndNamesBadLines()
    {
        var modelDir = TinyBertFolder();
        var model = BertModel.Load(modelDir);
        var clf = BertSequenceClassifier.Train(model, Sentiment(64, 1), ["negative", "positive"],
            new BertClassifierOptions { Rank = 2, Alpha = 4, Steps = 30, BatchSize = 16, LearningRate = 1e-2, MaxTokens = 12, Seed = 1 });
        var dir = TpeftProcess.TempDir();
        clf.Save(Path.Combine(dir, "adapter"), modelDir);
        var task = Path.Combine(dir, "test.jsonl");
        File.WriteAllLines(task, Sentiment(20, 5).Select(x => $"{{\"text\": \"{x.Text}\", \"label\": \"{(x.Label == 1 ? "positive" : "negative")}\"}}"));
        var r = TpeftProcess.Run("eval", "--model", modelDir, "--adapter", Path.Combine(dir, "adapter"), "--task", task, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!;
        Assert.Equal(20, o["total"]!.GetValue<int>());
        Assert.Equal(2, o["ci95"]!.AsArray().Count);
        File.AppendAllText(task, "{\"text\": \"x\", \"label\": \"neutral\"}\n");
        var bad = TpeftProcess.Run("eval", "--model", modelDir, "--adapter", Path.Combine(dir, "adapter"), "--task", task);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("test.jsonl:21: field 'label'", bad.Stderr + bad.Stdout);
    }
}
