using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Sessions;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>The session API for sentence embeddings: the published MiniLM values, pooling and normalisation options,
/// padded batches bounded by the session, concurrent callers, and the device rule.</summary>
[Collection(BertPackagesCollection.Name)]
public sealed class EmbeddingSessionTests(BertPackages packages)
{
    [SkippableFact]
    public void TheSessionEmbedsLikeThePublishedModelAndIsSafeForConcurrentCallers()
    {
        string dir = packages.Import(BertPackages.MiniLm).Dir;
        using var session = EmbeddingSession.Load(dir, new SessionOptions { Threads = 1, MaxBatchSize = 4 });
        Assert.Equal(384, session.Dimension);
        var unit = session.Embed(BertPackages.Sentences[..3], new EmbeddingOptions { Normalize = true });
        Assert.Equal(0.7553, BertEmbedder.Cosine(unit[0], unit[1]), 4);
        Assert.Equal(1.0, Math.Sqrt(unit[0].Sum(x => (double)x * x)), 5);

        // Batches of 4 (the session's bound) give what one text at a time gives (padding changes only summation order).
        var texts = BertPackages.Sentences[..10];
        var batched = session.Embed(texts);
        for (int i = 0; i < texts.Length; i++)
        {
            var alone = session.Embed([texts[i]])[0];
            for (int j = 0; j < alone.Length; j++) Assert.True(Math.Abs(alone[j] - batched[i][j]) <= 1e-4, $"text {i} dim {j}: {alone[j]} alone vs {batched[i][j]} batched");
        }
        // CLS pooling differs from the folder's mean pooling; ids give what texts give.
        var cls = session.Embed([texts[0]], new EmbeddingOptions { Pooling = BertPooling.Cls })[0];
        Assert.NotEqual(batched[0], cls);
        var fromIds = session.EmbedIds([session.Model.Encode(texts[0], 256)])[0];
        for (int j = 0; j < fromIds.Length; j++) Assert.True(Math.Abs(batched[0][j] - fromIds[j]) <= 1e-4, $"dim {j}");

        // Four threads embedding at once get exactly the sequential vectors.
        var sequential = texts.Select(t => session.Embed([t])[0]).ToArray();
        var concurrent = new float[texts.Length][];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => concurrent[i] = session.Embed([texts[i]])[0]);
        for (int i = 0; i < texts.Length; i++) Assert.Equal(sequential[i], concurrent[i]);

        Assert.Throws<ArgumentException>(() => session.EmbedIds([[101, 999_999, 102]]));
    }

    [SkippableFact]
    public void AutoRunsOnTheCpuAndSaysWhileCudaIsRefused()
    {
        string dir = packages.Import(BertPackages.Arctic).Dir;
        using var auto = EmbeddingSession.Load(dir, new SessionOptions { Device = "auto" });
        Assert.NotNull(auto.DeviceFallbackReason);
        Assert.Equal(BertPooling.Cls, auto.Model.DefaultPooling);
        var e = Assert.Throws<DeviceUnavailableException>(() => EmbeddingSession.Load(dir, new SessionOptions { Device = "cuda" }));
        Assert.Contains("CPU backend", e.Message);
    }
}
