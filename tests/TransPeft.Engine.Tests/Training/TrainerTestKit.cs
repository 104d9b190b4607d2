using System.Text.Json.Nodes;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Training;

/// <summary>Synthetic datasets, a synchronous progress sink and metrics readers for the trainer tests.</summary>
internal static class TrainerTestKit
{
    public const int Vocab = 12;

    /// <summary>n examples of 3..9 tokens over a small vocabulary; some start with an unlabelled "prompt".</summary>
    public static TokenizedDataset Dataset(int n, int seed, string name = "synthetic")
    {
        var rng = new Random(seed);
        var ids = new List<int>(); var labels = new List<int>(); var offsets = new List<long> { 0 };
        for (int i = 0; i < n; i++)
        {
            int len = rng.Next(3, 10), prompt = i % 3 == 0 ? rng.Next(0, 2) : 0;
            int tok = rng.Next(Vocab);
            for (int t = 0; t < len; t++)
            {
                tok = (tok * 5 + 3 + (rng.Next(4) == 0 ? rng.Next(Vocab) : 0)) % Vocab; // mostly predictable bigrams
                ids.Add(tok);
                labels.Add(t < prompt ? TokenBatch.IgnoreIndex : tok);
            }
            offsets.Add(ids.Count);
        }
        return new TokenizedDataset(name, $"{name}:{n}:{seed}", 0, [.. ids], [.. labels], [.. offsets]);
    }

    public static TrainingData MakeData(bool validation = true) =>
        new(Dataset(24, 1, "train"), validation ? Dataset(6, 2, "val") : null);

    public static string TempDir() => TempDirs.Create("tpeft-train");

    public sealed class SyncProgress(Action<TrainingProgress> onReport) : IProgress<TrainingProgress>
    {
        public List<TrainingProgress> Reports { get; } = [];
        public void Report(TrainingProgress value) { Reports.Add(value); onReport(value); }
    }

    public static List<JsonObject> Metrics(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, MetricsLog.FileName)).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    public static long[] LossBits(string outDir) =>
        Metrics(outDir).Where(o => o.ContainsKey("loss")).Select(o => BitConverter.DoubleToInt64Bits(o["loss"]!.GetValue<double>())).ToArray();

    public static long[] ValLossBits(string outDir) =>
        Metrics(outDir).Where(o => o.ContainsKey("val_loss")).Select(o => BitConverter.DoubleToInt64Bits(o["val_loss"]!.GetValue<double>())).ToArray();
}
