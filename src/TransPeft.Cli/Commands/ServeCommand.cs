using System.CommandLine;
using TransPeft.Cli.Serve;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Sessions;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft serve`: one base model and many adapters over HTTP (OpenAI-compatible), with continuous batching.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var adapters = new Option<string[]>("--adapter", "-a")
        {
            Description = "An adapter to serve at start, as NAME=DIR (PEFT LoRA folder); repeatable. More can be loaded with POST /v1/load_lora_adapter",
            HelpName = "NAME=DIR", AllowMultipleArgumentsPerToken = false,
        };
        var tokenizer = CommonOptions.Tokenizer();
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: any free port, printed at start)", DefaultValueFactory = _ => 8000 };
        var device = CommonOptions.Device();
        var maxBatch = new Option<int>("--max-batch") { Description = "Most requests in one batch step (decoding and prefilling together)", DefaultValueFactory = _ => 32 };
        var maxBatchTokens = new Option<int>("--max-batch-tokens") { Description = "Most tokens in one batch step; longer prompts are prefilled in chunks", DefaultValueFactory = _ => 512 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1/* (401 otherwise)", HelpName = "KEY" };
        var grace = new Option<double>("--shutdown-grace") { Description = "Seconds SIGTERM waits for requests in flight before cancelling them", DefaultValueFactory = _ => 10 };
        var precision = new Option<AdapterPrecision>("--adapter-precision")
        {
            Description = "Adapter weights as served: auto (float32 on the CPU; bf16 in the CUDA adapter pool), float32 (CPU only) or bfloat16 "
                + "(each adapter rounded at load: half the bytes per step when many distinct adapters share a batch, each weight moved by at most 0.2%)",
            DefaultValueFactory = _ => AdapterPrecision.Auto,
        };
        var name = new Option<string?>("--served-model-name") { Description = "Name of the base model in requests and /v1/models (default: the model folder's name)" };
        var cmd = new Command("serve",
            "Serve a base model and LoRA adapters over HTTP: POST /v1/completions and /v1/chat/completions (OpenAI-compatible, streaming),\n"
            + "POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's), GET /v1/models, /health and /metrics (Prometheus).\n"
            + "Requests join and leave the running batch at every step; each names its adapter as \"model\". SIGTERM drains and exits 0.\n"
            + "Example: tpeft serve --model base --adapter support=runs/support/final --port 8000")
            { model, adapters, tokenizer, host, port, device, maxBatch, maxBatchTokens, precision, apiKey, grace, name };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            var batcher = new BatcherOptions { MaxBatchRequests = p.GetValue(maxBatch), MaxBatchTokens = p.GetValue(maxBatchTokens) };
            var sessionOptions = DeviceChoice.ForCommand(p, device);
            // On CUDA every running request holds a device KV slot: the session gets at least one per batch request.
            sessionOptions = sessionOptions with { MaxBatchSize = Math.Max(sessionOptions.MaxBatchSize, batcher.MaxBatchRequests), AdapterPrecision = p.GetValue(precision) };
            string modelDir = p.GetValue(model)!;
            try { batcher.Validate(); }
            catch (ArgumentOutOfRangeException e) { throw new ArgumentException($"--max-batch/--max-batch-tokens: {e.Message.Split(" (Parameter")[0]}"); }
            int listenPort = p.GetValue(port);
            if (listenPort is < 0 or > 65535) throw new ArgumentException($"--port: expected 0..65535, got {listenPort}");
            double graceSeconds = p.GetValue(grace);
            if (!(graceSeconds >= 0)) throw new ArgumentException($"--shutdown-grace: expected seconds >= 0, got {graceSeconds}");
            var starting = ParseAdapters(p.GetValue(adapters) ?? []);

            var session = ModelInputs.OpenSession(modelDir, p.GetValue(tokenizer), required: false, "serving text prompts needs", sessionOptions);
            var metrics = new ServeMetrics();
            string baseName = p.GetValue(name) ?? Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd(Path.DirectorySeparatorChar));
            var engine = new BatchedServeEngine(session, baseName, ChatFormat.Detect(ChatFormat.ReadTemplate(session.ModelPath ?? modelDir)), batcher, metrics);
            foreach (var (adapterName, dir) in starting)
            {
                if (adapterName == baseName) throw new ArgumentException($"--adapter {adapterName}={dir}: the name is the base model's; pick another");
                var took = engine.LoadAdapter(adapterName, dir, replace: false);
                metrics.AdapterLoadSeconds.Observe(took.TotalSeconds);
                Console.Error.WriteLine($"adapter {adapterName}: {dir} loaded in {took.TotalMilliseconds:0.0} ms");
            }
            var settings = new ServeSettings
            {
                Host = p.GetValue(host)!, Port = listenPort, ApiKey = p.GetValue(apiKey), ShutdownGrace = TimeSpan.FromSeconds(graceSeconds),
            };
            Console.Error.WriteLine($"device: {session.DeviceDescription}");
            var app = new ServeApp(engine, settings, metrics);
            try { return app.RunAsync(line => Console.Error.WriteLine(line)).GetAwaiter().GetResult(); }
            finally { engine.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }));
        return cmd;
    }

    /// <summary>NAME=DIR pairs; one line naming the bad entry otherwise.</summary>
    internal static List<(string Name, string Dir)> ParseAdapters(IEnumerable<string> values)
    {
        var list = new List<(string, string)>();
        foreach (var v in values)
        {
            int eq = v.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == v.Length - 1) throw new ArgumentException($"--adapter '{v}': expected NAME=DIR (a name, '=', the adapter folder)");
            string n = v[..eq], d = v[(eq + 1)..];
            if (list.Any(x => x.Item1 == n)) throw new ArgumentException($"--adapter '{v}': the name {n} is given twice");
            list.Add((n, d));
        }
        return list;
    }
}
