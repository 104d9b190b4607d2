using System.Diagnostics;
using System.Globalization;
using LLama.Native;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using LoraAdapter = TransPeft.Engine.Lora.LoraAdapter;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.LlamaBench;

// Usage: TransPeft.LlamaBench [tiny|small] [threads] [init-std]: both engines get the same thread count (the
// engine through SessionOptions.Threads).
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
using var llama = new LlamaRunner(gguf, threads, promptLen + newTokens + 8);
var llamaTokens = llama.Greedy(prompt, newTokens);
int agree = 0;
while (agree < newTokens && engineTokens[agree] == llamaTokens[agree]) agree++;
Console.WriteLine($"greedy tokens agree: {agree}/{newTokens}{(agree < newTokens ? $" (first difference at {agree}: engine {engineTokens[agree]}, llama.cpp {llamaTokens[agree]})" : "")}");
if (agree < newTokens) { Console.Error.WriteLine("the engines disagree: no timing"); return 1; }

// 2. Batch 1: time to first token and per-token latency, the engine stepping its batcher on this thread.
var engineGen = new BatchedGenerator(session);
(double Ttft, double[] PerToken) EngineOnce()
{
    var stamps = new double[newTokens];
    var sw = Stopwatch.StartNew();
    var r = engineGen.Submit(prompt, null, greedy);
    for (int i = 0; engineGen.Batcher.Step(); i++) if (i < newTokens) stamps[i] = sw.Elapsed.TotalSeconds;
    if (!r.Completion.IsCompletedSuccessfully || r.Generated != newTokens) throw new InvalidOperationException("engine run did not complete");
    return (stamps[0], Diffs(stamps));
}
(double Ttft, double[] PerToken) LlamaOnce()
{
    var stamps = new double[newTokens];
    llama.Greedy(prompt, newTokens, stamps);
    return (stamps[0], Diffs(stamps));
}
static double[] Diffs(double[] s) => Enumerable.Range(1, s.Length - 1).Select(i => s[i] - s[i - 1]).ToArray();
static double Pct(IEnumerable<double> xs, double p)
{
    var a = xs.Order().ToArray();
    return a[(int)Math.Clamp(Math.Ceiling(p * a.Length) - 1, 0, a.Length - 1)];
}
void Latency(string name, Func<(double, double[])> once)
{
    once(); // warm-up
    var ttft = new List<double>();
    var per = new List<double>();
    for (int i = 0; i < runs; i++) { var (t, d) = once(); ttft.Add(t); per.AddRange(d); }
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {shape} | {name} | {threads} | {Pct(ttft, 0.5) * 1e3:0.00} | {Pct(per, 0.5) * 1e3:0.000} | {Pct(per, 0.99) * 1e3:0.000} | {1 / Pct(per, 0.5):0} |"));
}
Console.WriteLine("| shape | engine | threads | TTFT p50 ms (prompt 32) | per-token p50 ms | per-token p99 ms | tokens/s at p50 |");
Console.WriteLine("|---|---|---|---|---|---|---|");
Latency("TransPeft.Engine (BatchedGenerator, 1 request)", EngineOnce);
Latency("llama.cpp (LLamaSharp 0.30.0)", LlamaOnce);

// 3. Adapter load time: an r=16 all-linear adapter from its folder (files in the page cache), and a hot swap in place.
var loraConfig = new LoraConfig { R = 16, Alpha = 32, TargetModules = ["all-linear"] };
var adapterDirs = new List<string>();
for (int i = 0; i < 32; i++)
{
    var a = LoraAdapter.Create(config, loraConfig, seed: 100 + i);
    string d = Path.Combine(dir, $"adapter{i}");
    a.Save(d);
    adapterDirs.Add(d);
}
var loads = new List<double>();
var swaps = new List<double>();
for (int i = 0; i < 32; i++) loads.Add(engineGen.Adapters.Load($"a{i}", adapterDirs[i], replace: false).Elapsed.TotalMilliseconds);
for (int i = 0; i < 8; i++) swaps.Add(engineGen.Adapters.Load("a0", adapterDirs[i + 1], replace: true).Elapsed.TotalMilliseconds);
long adapterParams = LoraAdapter.Create(config, loraConfig, 0).ParameterCount;
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"adapter load ({shape}, r=16 all-linear, {adapterParams / 1e6:0.00}M parameters): p50 {Pct(loads, 0.5):0.0} ms, max {loads.Max():0.0} ms over 32 loads; hot swap in place p50 {Pct(swaps, 0.5):0.0} ms"));

// 4. Throughput of 32 concurrent requests on 1, 8 and 32 distinct adapters (mixed-adapter decode steps).
var batchGen = new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = 32, MaxBatchTokens = 32 * promptLen + 32 });
const int batchNew = 32;
double Throughput(int distinct)
{
    var reqs = Enumerable.Range(0, 32).Select(i => batchGen.Submit(prompt, $"a{i % distinct}", greedy with { MaxNewTokens = batchNew })).ToList();
    batchGen.Batcher.Step(); // prefill (and the first token of every request)
    var sw = Stopwatch.StartNew();
    while (batchGen.Batcher.Step()) { }
    double s = sw.Elapsed.TotalSeconds;
    if (reqs.Any(r => r.Generated != batchNew)) throw new InvalidOperationException("a batched request did not complete");
    return 32 * (batchNew - 1) / s;
}
Throughput(1); // warm-up
Console.WriteLine();
Console.WriteLine("| shape | distinct adapters in a batch of 32 | decode tokens/s | ratio to 1 adapter |");
Console.WriteLine("|---|---|---|---|");
double one = 0;
foreach (int distinct in new[] { 1, 8, 32 })
{
    double best = Enumerable.Range(0, 3).Max(_ => Throughput(distinct));
    if (distinct == 1) one = best;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {shape} | {distinct} | {best:0} | {best / one:0.00} |"));
}
return 0;
