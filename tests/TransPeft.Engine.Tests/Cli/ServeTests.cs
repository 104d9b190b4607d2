using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using TransPeft.Cli.Serve;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Cli;

/// <summary>
/// `tpeft serve` through a real HTTP client on loopback: concurrent mixed-adapter requests get the tokens they get
/// served alone, adapters come and go during traffic, streaming, every bad-input case, and SIGTERM.
/// </summary>
public sealed class ServeTests : IAsyncLifetime
{
    private readonly string _dir = TpeftProcess.TempDir();
    private TransformerModel _model = null!;
    private readonly List<string> _adapterDirs = [];
    private readonly CancellationTokenSource _stop = new();
    private Task<int>? _server;
    private HttpClient _http = null!;
    private const string Key = "sesame";

    public async Task InitializeAsync()
    {
        _model = TinyModels.Model(17);
        for (int i = 0; i < 4; i++)
        {
            string d = Path.Combine(_dir, $"adapter{i}");
            TinyModels.TrainedAdapter(_model.Config, 50 + i).Save(d);
            _adapterDirs.Add(d);
        }
        var metrics = new ServeMetrics();
        var engine = new BatchedServeEngine(InferenceSession.FromModel(_model), "base", null, new BatcherOptions { MaxBatchRequests = 6, MaxBatchTokens = 24 }, metrics);
        for (int i = 0; i < 3; i++) engine.LoadAdapter($"a{i}", _adapterDirs[i], replace: false);
        var app = new ServeApp(engine, new ServeSettings { Port = 0, ApiKey = Key, ShutdownGrace = TimeSpan.FromSeconds(5) }, metrics);
        var started = new TaskCompletionSource<string>();
        _server = app.RunAsync(_ => { }, a => started.SetResult(a.Urls.First()), _stop.Token);
        var url = await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        _http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(120) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_server is not null) Assert.Equal(0, await _server.WaitAsync(TimeSpan.FromSeconds(60)));
        _http.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<(HttpStatusCode Status, string Body)> Post(string path, string body)
    {
        using var r = await _http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        return (r.StatusCode, await r.Content.ReadAsStringAsync());
    }

    private async Task<int[]> Complete(string model, int[] prompt, int maxTokens)
    {
        var (status, body) = await Post("/v1/completions", new JsonObject
        {
            ["model"] = model, ["prompt"] = new JsonArray(prompt.Select(i => (JsonNode)i).ToArray()), ["max_tokens"] = maxTokens, ["temperature"] = 0,
        }.ToJsonString());
        Assert.True(status == HttpStatusCode.OK, body);
        var choice = JsonNode.Parse(body)!["choices"]![0]!;
        return choice["token_ids"]!.AsArray().Select(x => (int)x!).ToArray();
    }

    private static List<(string Model, int[] Prompt, int MaxTokens)> Jobs(int count) =>
        Enumerable.Range(0, count).Select(i => (i % 4 == 3 ? "base" : $"a{i % 4}", TinyModels.RandomIds(1 + i * 5 % 13, 61, 90 + i), 2 + i % 6)).ToList();

    [Fact]
    public async Task ConcurrentMixedAdapterRequestsGetTheTokensTheyGetServedAlone()
    {
        var jobs = Jobs(12);
        var alone = new List<int[]>();
        foreach (var (model, prompt, max) in jobs) alone.Add(await Complete(model, prompt, max));
        var together = await Task.WhenAll(jobs.Select(j => Task.Run(() => Complete(j.Model, j.Prompt, j.MaxTokens))));
        for (int i = 0; i < jobs.Count; i++) Assert.Equal(alone[i], together[i]);
        // Served alone equals the engine's single-request generator with that adapter.
        var adapter = LoraAdapter.Load(_adapterDirs[1], _model.Config);
        var reference = new Generator(_model, adapter).Generate(jobs[1].Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = jobs[1].MaxTokens, EosTokenIds = [] });
        Assert.Equal(reference.TokenIds, alone[1]);
        var metrics = await _http.GetStringAsync("/metrics");
        Assert.Contains("tpeft_time_to_first_token_seconds_count ", metrics);
        Assert.Contains("tpeft_batch_size_bucket{le=\"8\"}", metrics);
        Assert.Contains("tpeft_requests_total{endpoint=\"/v1/completions\",status=\"200\"}", metrics);
    }

    [Fact]
    public async Task AdaptersAreLoadedReplacedAndUnloadedDuringTraffic()
    {
        using var traffic = new CancellationTokenSource();
        var jobs = Jobs(8);
        var background = Task.Run(async () =>
        {
            int done = 0;
            while (!traffic.IsCancellationRequested)
                foreach (var (model, prompt, max) in jobs.Where(j => j.Model is "base" or "a0"))
                { await Complete(model, prompt, max); done++; }
            return done;
        });
        var prompt = TinyModels.RandomIds(4, 61, 5);
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 6, EosTokenIds = [] };
        int[] With(int i) => [.. new Generator(_model, LoraAdapter.Load(_adapterDirs[i], _model.Config)).Generate(prompt, greedy).TokenIds];

        var (status, body) = await Post("/v1/load_lora_adapter", $$"""{"lora_name":"late","lora_path":"{{_adapterDirs[3]}}"}""");
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Contains("Success", body);
        Assert.Equal(With(3), await Complete("late", prompt, 6));
        var models = JsonNode.Parse(await _http.GetStringAsync("/v1/models"))!["data"]!.AsArray().Select(m => (string)m!["id"]!).ToList();
        Assert.Equal(["base", "a0", "a1", "a2", "late"], models);

        (status, body) = await Post("/v1/load_lora_adapter", $$"""{"lora_name":"late","lora_path":"{{_adapterDirs[0]}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        (status, body) = await Post("/v1/load_lora_adapter", $$"""{"lora_name":"late","lora_path":"{{_adapterDirs[0]}}","load_inplace":true}""");
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Contains("replaced", body);
        Assert.Equal(With(0), await Complete("late", prompt, 6));

        (status, _) = await Post("/v1/unload_lora_adapter", """{"lora_name":"late"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        (status, body) = await Post("/v1/completions", """{"model":"late","prompt":[1,2],"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("model_not_found", (string)JsonNode.Parse(body)!["error"]!["code"]!);
        (status, _) = await Post("/v1/unload_lora_adapter", """{"lora_name":"late"}""");
        Assert.Equal(HttpStatusCode.NotFound, status);

        await traffic.CancelAsync();
        Assert.True(await background.WaitAsync(TimeSpan.FromSeconds(120)) > 0);
        Assert.Contains("tpeft_adapter_load_seconds_count 2", await _http.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task StreamingSendsEveryTokenAsAServerSentEventThenDone()
    {
        var prompt = TinyModels.RandomIds(6, 61, 8);
        var whole = await Complete("a2", prompt, 7);
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent(new JsonObject { ["model"] = "a2", ["prompt"] = new JsonArray(prompt.Select(i => (JsonNode)i).ToArray()), ["max_tokens"] = 7, ["temperature"] = 0, ["stream"] = true }.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        using var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        var ids = new List<int>();
        var events = new List<string>();
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            events.Add(line[6..]);
            if (line == "data: [DONE]") break;
            foreach (var t in JsonNode.Parse(line[6..])!["choices"]![0]!["token_ids"]!.AsArray()) ids.Add((int)t!);
        }
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(whole, ids);
        Assert.Equal(whole.Length + 2, events.Count); // one event per token, the finish event, [DONE]
        Assert.Equal("length", (string)JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]!);
    }

    public static IEnumerable<object[]> BadRequests() =>
    [
        ["/v1/completions", "{not json", 400, null!],
        ["/v1/completions", "[1,2]", 400, null!],
        ["/v1/completions", """{"prompt":[1]}""", 400, "model"],
        ["/v1/completions", """{"model":"base"}""", 400, "prompt"],
        ["/v1/completions", """{"model":"base","prompt":{"a":1}}""", 400, "prompt"],
        ["/v1/completions", """{"model":"base","prompt":[1,-2]}""", 400, "prompt"],
        ["/v1/completions", """{"model":"base","prompt":[1,61]}""", 400, "prompt"],
        ["/v1/completions", """{"model":"base","prompt":"text needs a tokenizer"}""", 400, "prompt"],
        ["/v1/completions", """{"model":"base","prompt":[1],"max_tokens":"many"}""", 400, "max_tokens"],
        ["/v1/completions", """{"model":"base","prompt":[1],"max_tokens":0}""", 400, "max_tokens"],
        ["/v1/completions", """{"model":"base","prompt":[1],"temperature":-1}""", 400, "temperature"],
        ["/v1/completions", """{"model":"base","prompt":[1],"top_p":0}""", 400, "top_p"],
        ["/v1/completions", """{"model":"base","prompt":[1],"stream":"yes"}""", 400, "stream"],
        ["/v1/completions", """{"model":"base","prompt":[1],"n":2}""", 400, "n"],
        ["/v1/completions", """{"model":"base","prompt":[1],"stop":[1]}""", 400, "stop"],
        ["/v1/completions", """{"model":"ghost","prompt":[1]}""", 404, "model"],
        ["/v1/completions", "{\"model\":\"base\",\"prompt\":[" + string.Join(",", Enumerable.Repeat(1, 64)) + "]}", 400, "prompt"],
        ["/v1/chat/completions", """{"model":"base","messages":[{"role":"user","content":"hi"}]}""", 404, null!],
        ["/v1/chat/completions", """{"model":"base","messages":[]}""", 400, "messages"],
        ["/v1/load_lora_adapter", """{"lora_name":"x"}""", 400, "lora_path"],
        ["/v1/load_lora_adapter", """{"lora_name":"x","lora_path":"/no/such/folder"}""", 404, "lora_path"],
        ["/v1/load_lora_adapter", """{"lora_name":"base","lora_path":"/tmp"}""", 400, "lora_name"],
        ["/v1/unload_lora_adapter", """{"lora_name":"ghost"}""", 404, "lora_name"],
        ["/v1/nothing", "{}", 404, null!],
    ];

    [Theory, MemberData(nameof(BadRequests))]
    public async Task BadInputGetsAnOpenAiErrorAndTheServerStaysUp(string path, string body, int status, string? param)
    {
        var (got, text) = await Post(path, body);
        Assert.True((int)got == status, $"{path} {body}: {(int)got} {text}");
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrWhiteSpace((string?)error["message"]));
        Assert.NotNull((string?)error["type"]);
        Assert.Equal(param, (string?)error["param"]);
        Assert.Equal("{\"status\":\"ok\"}", await _http.GetStringAsync("/health"));
    }

    [Fact]
    public async Task AFolderThatIsNoAdapterIsABadRequestNamingTheFile()
    {
        var (status, body) = await Post("/v1/load_lora_adapter", $$"""{"lora_name":"x","lora_path":"{{_dir}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("adapter_config.json", body);
    }

    [Fact]
    public async Task WithoutTheApiKeyEveryV1EndpointAnswers401()
    {
        using var anonymous = new HttpClient { BaseAddress = _http.BaseAddress };
        using var r = await anonymous.PostAsync("/v1/completions", new StringContent("""{"model":"base","prompt":[1]}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        Assert.Equal("invalid_api_key", (string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["error"]!["code"]!);
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "guess");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(wrong)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task SigtermFinishesTheRequestInFlightAndExitsZero()
    {
        string baseDir = Path.Combine(_dir, "served");
        _model.Save(baseDir);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "tpeft.dll"), "serve", "--model", baseDir, "--port", "0", "--device", "cpu", "--adapter", $"a0={_adapterDirs[0]}" })
            psi.ArgumentList.Add(a);
        psi.Environment["TPEFT_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string? url = null;
        var log = new StringBuilder();
        while (url is null && await p.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
        {
            log.AppendLine(line);
            int at = line.IndexOf(" on http://", StringComparison.Ordinal);
            if (at >= 0) url = line[(at + 4)..].Split(',')[0].Trim();
        }
        Assert.True(url is not null, log.ToString());
        var rest = p.StandardError.ReadToEndAsync();
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
        // A streamed request that has produced its first token is in flight when SIGTERM arrives.
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        { Content = new StringContent("""{"model":"a0","prompt":[1,2,3],"max_tokens":60,"temperature":0,"stream":true}""") };
        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        var ids = new List<int>();
        string? first;
        while ((first = await reader.ReadLineAsync()) is "") { }
        foreach (var t in JsonNode.Parse(first![6..])!["choices"]![0]!["token_ids"]!.AsArray()) ids.Add((int)t!);
        using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
        string? ev;
        bool doneSeen = false;
        while ((ev = await reader.ReadLineAsync()) is not null)
        {
            if (ev.Length == 0) continue;
            if (ev == "data: [DONE]") { doneSeen = true; break; }
            foreach (var t in JsonNode.Parse(ev[6..])!["choices"]![0]!["token_ids"]!.AsArray()) ids.Add((int)t!);
        }
        Assert.True(doneSeen, "the stream in flight was cut instead of finished");
        Assert.Equal(60, ids.Count);
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(p.ExitCode == 0, log + await rest);
        Assert.Contains("shutting down", await rest);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => http.GetAsync("/health"));
        _ = await stdout;
    }
}
