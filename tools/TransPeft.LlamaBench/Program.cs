using System.Globalization;
using LLama.Native;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.LlamaBench;
using TransPeft.ServeBench;

// Usage: TransPeft.LlamaBench [tiny|small] [threads] [init-std] [--latency-only]: both engines get the same thread
// count (the engine through SessionOptions.Threads). --latency-only stops after the batch-1 comparison.
bool latencyOnly = args.Contains("--latency-only");
args = args.Where(a => a != "--latency-only").ToArray();
string shape = args.Length > 0 ? args[0] : "tiny";
int threads = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1;
double initStd = args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 0.1;
NativeLibraryConfig.All.WithLogCallback((_, _) => { });

var config = ModelPresets.Get(shape);
string dir = Path.Combine(Path.GetTempPath(), $"tpeft-llamabench-{shape}");
Directory.CreateDirectory(dir);
// initStd 0.1 (default): logits with clear winners, so greedy tokens do not hinge on last-bit rounding differences.
var model = TransformerModel.CreateRandom(config, seed: 1, initStd: initStd);
model.Save(dir);
string gguf = Path.Combine(dir, "model-f32.gguf");
GgufExport.Write(dir, gguf);
Console.WriteLine($"# {shape}: {model.ParameterCount / 1e6:0.0}M parameters, {threads} thread(s), F32 weights; GGUF {new FileInfo(gguf).Length / 1e6:0.0} MB");

const int promptLen = 32, newTokens = 32, runs = 8;
int[] prompt = Enumerable.Range(0, promptLen).Select(i => (i * 37 + 5) % config.VocabSize).ToArray();
var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = newTokens, EosTokenIds = [] };

// 1. Same greedy tokens before timing anything.
using var session = InferenceSession.FromModel(model, new SessionOptions { Threads = threads });
using var context = session.CreateContext();
var engineTokens = context.Generate(prompt, greedy).TokenIds.ToArray();
var llama = new LlamaRunner(gguf, threads, promptLen + newTokens + 8);
var llamaTokens = llama.Greedy(prompt, newTokens);
int agree = 0;
while (agree < newTokens && engineTokens[agree] == llamaTokens[agree]) agree++;
Console.WriteLine($"greedy tokens agree: {agree}/{newTokens}{(agree < newTokens ? $" (first difference at {agree}: engine {engineTokens[agree]}, llama.cpp {llamaTokens[agree]})" : "")}");
if (agree < newTokens) { Console.Error.WriteLine("the engines disagree: no timing"); return 1; }

// 2. Batch 1: time to first token and per-token latency, the engine stepping its batcher on this thread (the serving
// path); engine and llama.cpp alternate run by run, so the machine's load (shared, noisy) hits both alike.
var engineGen = new BatchedGenerator(session);
(double Ttft, double[] PerToken) LlamaOnce()
{
    var stamps = new double[newTokens];
    llama.Greedy(prompt, newTokens, stamps);
    return (stamps[0], EngineBench.Diffs(stamps));
}
var samples = new Dictionary<string, (List<double> Ttft, List<double> PerToken)>();
(string Name, Func<(double, double[])> Once)[] engines =
[
    ("TransPeft.Engine (BatchedGenerator, 1 request)", () => EngineBench.BatcherOnce(engineGen, prompt, greedy)),
    ("llama.cpp (LLamaSharp 0.30.0)", LlamaOnce),
];
foreach (var (name, once) in engines) { once(); samples[name] = ([], []); } // warm-up
for (int i = 0; i < runs; i++)
    foreach (var (name, once) in i % 2 == 0 ? engines : Enumerable.Reverse(engines))
    {
        var (t, d) = once();
        samples[name].Ttft.Add(t);
        samples[name].PerToken.AddRange(d);
    }
Console.WriteLine($"load: {File.ReadAllText("/proc/loadavg").Trim()}");
Console.WriteLine("| shape | engine | threads | TTFT p50 ms (prompt 32) | per-token p50 ms | per-token p99 ms | tokens/s at p50 |");
Console.WriteLine("|---|---|---|---|---|---|---|");
foreach (var (name, _) in engines)
{
    var (ttft, per) = samples[name];
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {shape} | {name} | {threads} | {EngineBench.Pct(ttft, 0.5) * 1e3:0.00} | {EngineBench.Pct(per, 0.5) * 1e3:0.000} | {EngineBench.Pct(per, 0.99) * 1e3:0.000} | {1 / EngineBench.Pct(per, 0.5):0} |"));
}
// llama.cpp is done: release its context and threads before the engine-only parts below.
llama.Dispose();
if (latencyOnly) return 0;

// 3. Adapter load time: r=16 all-linear adapters from their folders (files in the page cache), and hot swaps in place.
var adapterDirs = EngineBench.SaveAdapters(config, dir, 32);
var (loads, swaps) = EngineBench.AdapterLoads(engineGen.Adapters, adapterDirs);
long adapterParams = engineGen.Adapters["a0"].ParameterCount;
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"adapter load ({shape}, r=16 all-linear, {adapterParams / 1e6:0.00}M parameters): p50 {EngineBench.Pct(loads, 0.5):0.0} ms, max {loads.Max():0.0} ms over {loads.Count} loads; hot swap in place p50 {EngineBench.Pct(swaps, 0.5):0.0} ms"));

// 4. Throughput of 32 concurrent requests on 1, 8 and 32 distinct adapters (mixed-adapter decode steps).
var batchGen = new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = 32, MaxBatchTokens = 32 * promptLen + 32 });
int[] distincts = [1, 8, 32];
var best = EngineBench.ThroughputTable(batchGen, prompt, greedy, 32, distincts);
Console.WriteLine();
Console.WriteLine("| shape | distinct adapters in a batch of 32 | decode tokens/s (best of 3, interleaved) | ratio to 1 adapter |");
Console.WriteLine("|---|---|---|---|");
for (int i = 0; i < distincts.Length; i++)
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {shape} | {distincts[i]} | {best[i]:0} | {best[i] / best[0]:0.00} |"));
return 0;
