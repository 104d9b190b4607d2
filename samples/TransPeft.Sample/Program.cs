// A small host embedding TransPeft.Engine from its NuGet package: one model loaded once, two LoRA adapters served
// by name, requests with per-request adapters from several threads, p50/p99 latency at the end.
//
//   dotnet run --project samples/TransPeft.Sample -- [MODEL_DIR ADAPTER_A ADAPTER_B] [--threads N] [--requests N]
//
// Without folders it writes a tiny random Llama-style model and two random adapters to a temp folder first, so it
// runs anywhere (`./build.sh test` does exactly that).
using System.Diagnostics;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;

var positional = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
int Flag(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out int v) ? v : fallback;
}
int workers = Flag("--threads", 4), requests = Flag("--requests", 48);
positional = positional.Where(a => !int.TryParse(a, out _)).ToArray();

string modelDir, adapterA, adapterB;
string? scratch = null;
if (positional.Length >= 3) (modelDir, adapterA, adapterB) = (positional[0], positional[1], positional[2]);
else
{
    string root = scratch = Directory.CreateTempSubdirectory("transpeft-sample-").FullName;
    (modelDir, adapterA, adapterB) = (Path.Combine(root, "model"), Path.Combine(root, "adapter-a"), Path.Combine(root, "adapter-b"));
    var config = new ModelConfig
    {
        ModelType = "llama", HiddenSize = 64, IntermediateSize = 172, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16,
        VocabSize = 256, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 128,
    };
    TransformerModel.CreateRandom(config, seed: 1).Save(modelDir);
    foreach (var (dir, seed) in new[] { (adapterA, 2), (adapterB, 3) })
    {
        var adapter = LoraAdapter.Create(config, new LoraConfig { R = 8, Alpha = 16, TargetModules = ["all-linear"] }, seed);
        var rng = new Random(seed);
        foreach (var (_, values) in adapter.Tensors()) foreach (ref var x in values.Span) x = (float)(rng.NextDouble() - 0.5) * 0.1f;
        adapter.Save(dir);
    }
    Console.WriteLine($"wrote a tiny model and two adapters under {root}");
}

// One session: the weights are loaded once and shared by every thread. Each worker CPU call uses one thread here,
// the workers give the parallelism (a latency-bound host would rather give one request several threads).
using var session = InferenceSession.Load(modelDir, new SessionOptions { Device = "cpu", Threads = 1, MaxSequenceLength = 96 });
session.Adapters.Load("a", adapterA);
session.Adapters.Load("b", adapterB);
Console.WriteLine($"model {modelDir}: {session.Config.ModelType}, {session.Model.ParameterCount:N0} parameters, adapters {string.Join(", ", session.Adapters.Names)}, on {session.DeviceDescription}");

string?[] adapterOf = [null, "a", "b"];
var latencies = new double[requests];
var outputs = new IReadOnlyList<int>[requests];
int next = -1;
var wall = Stopwatch.StartNew();
var threads = Enumerable.Range(0, workers).Select(_ => new Thread(() =>
{
    using var context = session.CreateContext(); // one request at a time per context; its KV cache is reused
    int i;
    while ((i = Interlocked.Increment(ref next)) < requests)
    {
        context.UseAdapter(adapterOf[i % 3]);      // per-request adapter: base, a or b
        var rng = new Random(i);
        var prompt = Enumerable.Range(0, 8 + i % 8).Select(_ => rng.Next(session.Config.VocabSize)).ToArray();
        var sw = Stopwatch.StartNew();
        var result = context.Generate(prompt, new GenerationOptions { MaxNewTokens = 24, Temperature = 0.8, TopK = 40, Seed = i, EosTokenIds = [] });
        latencies[i] = sw.Elapsed.TotalMilliseconds;
        outputs[i] = result.TokenIds;
    }
})).ToList();
threads.ForEach(t => t.Start());
threads.ForEach(t => t.Join());
wall.Stop();

// Checks a host would rely on: a request run again alone gives the same tokens it got under concurrency.
using (var check = session.CreateContext("b"))
{
    var rng = new Random(2);
    var prompt = Enumerable.Range(0, 8 + 2 % 8).Select(_ => rng.Next(session.Config.VocabSize)).ToArray();
    var again = check.Generate(prompt, new GenerationOptions { MaxNewTokens = 24, Temperature = 0.8, TopK = 40, Seed = 2, EosTokenIds = [] });
    if (!again.TokenIds.SequenceEqual(outputs[2])) throw new InvalidOperationException("request 2 gave a different continuation alone than under concurrency");
}

int generated = outputs.Sum(o => o.Count);
var sorted = latencies.Order().ToArray();
double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
Console.WriteLine($"{requests} requests on {workers} threads (base, a, b in turn): {generated} tokens in {wall.Elapsed.TotalSeconds:F2} s, " +
                  $"{generated / wall.Elapsed.TotalSeconds:F0} tokens/s");
Console.WriteLine($"latency per request: p50 {P(0.50):F1} ms, p99 {P(0.99):F1} ms");
if (scratch is not null) Directory.Delete(scratch, recursive: true);
