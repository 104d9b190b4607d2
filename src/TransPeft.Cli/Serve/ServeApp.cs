using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace TransPeft.Cli.Serve;

/// <summary>Settings of <c>tpeft serve</c> that the HTTP layer uses.</summary>
internal sealed record ServeSettings
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests); the chosen one is printed.</summary>
    public int Port { get; init; } = 8000;
    public string? ApiKey { get; init; }
    /// <summary>How long SIGTERM waits for requests in flight before cancelling them.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Largest request body accepted.</summary>
    public long MaxBodyBytes { get; init; } = 4 << 20;
}

/// <summary>
/// The HTTP side of <c>tpeft serve</c> on ASP.NET Core (Kestrel, from the shared framework): the OpenAI-compatible
/// completion endpoints (plain and server-sent events), vLLM's adapter load/unload endpoints, models, health and
/// Prometheus metrics. Every failure a request can cause is an OpenAI-style error object with a 4xx status; an
/// unexpected exception in one request is a 500 for that request only.
/// <para>Shutdown (SIGTERM or SIGINT, through the generic host): /health turns 503, new completions get 503, the
/// batcher finishes what is in flight within <see cref="ServeSettings.ShutdownGrace"/> and cancels the rest; the
/// process then exits 0.</para>
/// </summary>
internal sealed class ServeApp
{
    private readonly IServeEngine _engine;
    private readonly ServeSettings _settings;
    private readonly ServeMetrics _metrics;
    private readonly JsonSerializerOptions _json = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private volatile bool _stopping;

    public ServeApp(IServeEngine engine, ServeSettings settings, ServeMetrics metrics)
    {
        _engine = engine;
        _settings = settings;
        _metrics = metrics;
    }

    /// <summary>Builds the web application (not started). <paramref name="log"/> gets the lifecycle lines.</summary>
    public WebApplication Build(Action<string> log)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = _settings.MaxBodyBytes;
            k.AddServerHeader = false;
        });
        builder.WebHost.UseUrls($"http://{(_settings.Host.Contains(':') ? $"[{_settings.Host}]" : _settings.Host)}:{_settings.Port}");
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = _settings.ShutdownGrace + TimeSpan.FromSeconds(5));
        var app = builder.Build();

        app.MapGet("/health", (HttpContext c) => Handle(c, "/health", false, () =>
            _stopping ? Json(c, 503, new JsonObject { ["status"] = "shutting down" }) : Json(c, 200, new JsonObject { ["status"] = "ok" })));
        app.MapGet("/metrics", (HttpContext c) => Handle(c, "/metrics", false, () =>
        {
            var (running, waiting) = _engine.Load;
            _metrics.Queue(running, waiting);
            c.Response.StatusCode = 200;
            c.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return c.Response.WriteAsync(_metrics.Render());
        }));
        app.MapGet("/v1/models", (HttpContext c) => Handle(c, "/v1/models", true, () => Json(c, 200, Models())));
        app.MapPost("/v1/completions", (HttpContext c) => Handle(c, "/v1/completions", true, () => Complete(c, chat: false)));
        app.MapPost("/v1/chat/completions", (HttpContext c) => Handle(c, "/v1/chat/completions", true, () => Complete(c, chat: true)));
        app.MapPost("/v1/load_lora_adapter", (HttpContext c) => Handle(c, "/v1/load_lora_adapter", true, () => LoadAdapter(c)));
        app.MapPost("/v1/unload_lora_adapter", (HttpContext c) => Handle(c, "/v1/unload_lora_adapter", true, () => UnloadAdapter(c)));
        app.MapFallback((HttpContext c) => Handle(c, "other", false, () => throw new ServeError(404, $"no endpoint {c.Request.Method} {c.Request.Path}")));

        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStopping.Register(() =>
        {
            _stopping = true;
            _engine.Close();
            log("shutting down: no new requests; finishing the ones in flight");
        });
        return app;
    }

    /// <summary>Runs the server and the batcher until SIGTERM/SIGINT (or <paramref name="stop"/>); returns 0.</summary>
    public async Task<int> RunAsync(Action<string> log, Action<WebApplication>? started = null, CancellationToken stop = default)
    {
        await using var app = Build(log);
        using var batcherStop = new CancellationTokenSource();
        var batcher = Task.Run(() => _engine.RunAsync(batcherStop.Token), CancellationToken.None);
        await app.StartAsync(stop).ConfigureAwait(false);
        log($"serving {_engine.BaseModelName} ({_engine.Adapters.Count} adapters) on {string.Join(", ", app.Urls)}");
        started?.Invoke(app);
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopped = new TaskCompletionSource();
        using (lifetime.ApplicationStopping.Register(() => stopped.TrySetResult()))
        using (stop.Register(() => stopped.TrySetResult()))
            await stopped.Task.ConfigureAwait(false);
        _stopping = true;
        _engine.Close();
        // In-flight requests get the grace period, then whatever is left is cancelled.
        if (await Task.WhenAny(batcher, Task.Delay(_settings.ShutdownGrace, CancellationToken.None)).ConfigureAwait(false) != batcher)
        {
            log($"shutdown: requests still running after {_settings.ShutdownGrace.TotalSeconds:0.#} s are cancelled");
            await batcherStop.CancelAsync().ConfigureAwait(false);
        }
        await batcher.ConfigureAwait(false);
        await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        log("stopped");
        return 0;
    }

    private async Task Handle(HttpContext c, string endpoint, bool authenticated, Func<Task> body)
    {
        try
        {
            if (authenticated && _settings.ApiKey is { } key && c.Request.Headers.Authorization.ToString() != $"Bearer {key}")
                throw new ServeError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code: "invalid_api_key");
            await body().ConfigureAwait(false);
        }
        catch (ServeError e) when (!c.Response.HasStarted)
        {
            await Json(c, e.Status, e.ToJson()).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (c.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its request was cancelled in the batcher.
        }
        catch (BadHttpRequestException e) when (!c.Response.HasStarted)
        {
            await Json(c, e.StatusCode, new ServeError(e.StatusCode, e.Message).ToJson()).ConfigureAwait(false);
        }
        catch (Exception e) when (!c.Response.HasStarted)
        {
            await Json(c, 500, new ServeError(500, $"internal error: {e.Message}").ToJson()).ConfigureAwait(false);
        }
        finally
        {
            _metrics.Request(endpoint, c.Response.StatusCode);
        }
    }

    private Task Json(HttpContext c, int status, JsonNode body)
    {
        c.Response.StatusCode = status;
        c.Response.ContentType = "application/json";
        return c.Response.WriteAsync(body.ToJsonString(_json));
    }

    private static async Task<byte[]> Body(HttpContext c)
    {
        using var ms = new MemoryStream();
        await c.Request.Body.CopyToAsync(ms, c.RequestAborted).ConfigureAwait(false);
        return ms.ToArray();
    }

    private JsonObject Models()
    {
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var data = new JsonArray
        {
            new JsonObject { ["id"] = _engine.BaseModelName, ["object"] = "model", ["created"] = created, ["owned_by"] = "tpeft", ["root"] = _engine.BaseModelName, ["parent"] = null, ["max_model_len"] = _engine.MaxSequenceLength },
        };
        foreach (var (name, source) in _engine.Adapters)
            data.Add(new JsonObject { ["id"] = name, ["object"] = "model", ["created"] = created, ["owned_by"] = "tpeft", ["root"] = source ?? name, ["parent"] = _engine.BaseModelName, ["max_model_len"] = _engine.MaxSequenceLength });
        return new JsonObject { ["object"] = "list", ["data"] = data };
    }

    private async Task LoadAdapter(HttpContext c)
    {
        var o = JsonObjectBody(await Body(c).ConfigureAwait(false));
        string name = RequiredString(o, "lora_name"), path = RequiredString(o, "lora_path");
        bool replace = o["load_inplace"] is JsonValue v && v.TryGetValue(out bool b) && b;
        if (name == _engine.BaseModelName) throw ServeError.BadRequest($"'lora_name' {name} is the base model's name", "lora_name");
        if (!Directory.Exists(path)) throw new ServeError(404, $"'lora_path' {path}: no such folder on the server", "lora_path");
        if (!replace && _engine.HasAdapter(name))
            throw ServeError.BadRequest($"The lora adapter '{name}' has already been loaded; unload it first or pass \"load_inplace\": true", "lora_name");
        TimeSpan took;
        try { took = _engine.LoadAdapter(name, path, replace); }
        catch (Exception e) when (e is not ServeError && CliErrors.IsUserError(e)) { throw ServeError.BadRequest($"'lora_path' {path}: {e.Message}", "lora_path"); }
        _metrics.AdapterLoadSeconds.Observe(took.TotalSeconds);
        c.Response.StatusCode = 200;
        c.Response.ContentType = "text/plain; charset=utf-8";
        await c.Response.WriteAsync(string.Create(CultureInfo.InvariantCulture, $"Success: LoRA adapter '{name}' {(replace ? "replaced" : "added")} successfully in {took.TotalMilliseconds:0.0} ms.")).ConfigureAwait(false);
    }

    private async Task UnloadAdapter(HttpContext c)
    {
        var o = JsonObjectBody(await Body(c).ConfigureAwait(false));
        string name = RequiredString(o, "lora_name");
        if (!_engine.UnloadAdapter(name)) throw new ServeError(404, $"The lora adapter '{name}' cannot be found.", "lora_name", "adapter_not_found");
        c.Response.StatusCode = 200;
        c.Response.ContentType = "text/plain; charset=utf-8";
        await c.Response.WriteAsync($"Success: LoRA adapter '{name}' removed successfully.").ConfigureAwait(false);
    }

    private static JsonObject JsonObjectBody(byte[] body)
    {
        try { return JsonNode.Parse(body) as JsonObject ?? throw ServeError.BadRequest("request body must be a JSON object"); }
        catch (JsonException e) { throw ServeError.BadRequest($"request body is not valid JSON: {e.Message}"); }
    }

    private static string RequiredString(JsonObject o, string name) =>
        o[name] is JsonValue v && v.TryGetValue(out string? s) && s.Length > 0 ? s : throw ServeError.BadRequest($"'{name}' is required: a non-empty string", name);

    private async Task Complete(HttpContext c, bool chat)
    {
        var arrived = Stopwatch.StartNew();
        if (_stopping) throw new ServeError(503, "the server is shutting down");
        var req = CompletionRequest.Parse(await Body(c).ConfigureAwait(false), chat);
        string? adapter = req.Model == _engine.BaseModelName ? null : req.Model;
        if (adapter is not null && !_engine.HasAdapter(adapter))
            throw new ServeError(404, $"The model '{req.Model}' does not exist (serving {string.Join(", ", new[] { _engine.BaseModelName }.Concat(_engine.Adapters.Select(a => a.Name)))})", "model", "model_not_found");
        var prompt = PromptIds(req, chat);
        if (req.Stop.Count > 0 && !_engine.HasTokenizer) throw ServeError.BadRequest("'stop' strings need the model's tokenizer, and the model has none", "stop");
        if (prompt.Length >= _engine.MaxSequenceLength)
            throw new ServeError(400, $"This model's maximum context length is {_engine.MaxSequenceLength} tokens; the prompt has {prompt.Length}, leaving no room to generate", "prompt", "context_length_exceeded");
        int maxTokens = Math.Min(req.MaxTokens, _engine.MaxSequenceLength - prompt.Length);
        var job = new GenerationJob(prompt, adapter, maxTokens, req.Temperature, req.TopP, req.Seed ?? Random.Shared.Next());
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(c.RequestAborted);
        var stream = _engine.Submit(job, cancel.Token);
        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var output = new List<int>();
        var stops = new StopMatcher(req.Stop);
        string text = "";
        int sent = 0;
        string? finish = null;
        double last = 0;
        // The text is needed per token only to stream it or to look for stop strings; otherwise once, at the end.
        bool incremental = _engine.HasTokenizer && (req.Stream || req.Stop.Count > 0);
        if (req.Stream)
        {
            c.Response.StatusCode = 200;
            c.Response.ContentType = "text/event-stream";
            c.Response.Headers.CacheControl = "no-cache";
        }
        await foreach (int token in stream.Tokens(cancel.Token).ConfigureAwait(false))
        {
            double now = arrived.Elapsed.TotalSeconds;
            if (output.Count == 0) _metrics.TimeToFirstToken.Observe(now);
            else _metrics.TimePerOutputToken.Observe(now - last);
            last = now;
            output.Add(token);
            if (incremental) text = _engine.Decode(output);
            if (stops.Cut(text) is { } cut)
            {
                text = cut;
                finish = "stop";
                await cancel.CancelAsync().ConfigureAwait(false); // leaves the batch at the next step
                break;
            }
            if (req.Stream)
            {
                // Hold back text that could still become a stop string, and an incomplete UTF-8 sequence (U+FFFD).
                int safe = Math.Max(sent, text.Length - stops.HoldBack);
                while (safe > sent && text[safe - 1] == '\uFFFD') safe--;
                await Event(c, Chunk(id, created, req, chat, text[sent..safe], [token], null)).ConfigureAwait(false);
                sent = safe;
            }
        }
        finish ??= stream.FinishReason;
        if (_engine.HasTokenizer && !incremental) text = _engine.Decode(output);
        _metrics.Tokens(prompt.Length, output.Count);
        if (req.Stream)
        {
            await Event(c, Chunk(id, created, req, chat, text.Length > sent ? text[sent..] : "", [], finish)).ConfigureAwait(false);
            await c.Response.WriteAsync("data: [DONE]\n\n", CancellationToken.None).ConfigureAwait(false);
            return;
        }
        var choice = new JsonObject { ["index"] = 0, ["finish_reason"] = finish, ["token_ids"] = Ids(output) };
        if (chat) choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
        else { choice["text"] = text; choice["logprobs"] = null; }
        await Json(c, 200, new JsonObject
        {
            ["id"] = id, ["object"] = chat ? "chat.completion" : "text_completion", ["created"] = created, ["model"] = req.Model,
            ["choices"] = new JsonArray(choice),
            ["usage"] = new JsonObject { ["prompt_tokens"] = prompt.Length, ["completion_tokens"] = output.Count, ["total_tokens"] = prompt.Length + output.Count },
        }).ConfigureAwait(false);
    }

    private static JsonArray Ids(IEnumerable<int> ids) => new(ids.Select(i => (JsonNode)i).ToArray());

    private static JsonObject Chunk(string id, long created, CompletionRequest req, bool chat, string delta, int[] tokens, string? finish)
    {
        var choice = new JsonObject { ["index"] = 0, ["finish_reason"] = finish, ["token_ids"] = Ids(tokens) };
        if (chat) choice["delta"] = new JsonObject { ["content"] = delta };
        else choice["text"] = delta;
        return new JsonObject
        {
            ["id"] = id, ["object"] = chat ? "chat.completion.chunk" : "text_completion", ["created"] = created, ["model"] = req.Model,
            ["choices"] = new JsonArray(choice),
        };
    }

    private async Task Event(HttpContext c, JsonObject chunk)
    {
        await c.Response.WriteAsync($"data: {chunk.ToJsonString(_json)}\n\n", c.RequestAborted).ConfigureAwait(false);
        await c.Response.Body.FlushAsync(c.RequestAborted).ConfigureAwait(false);
    }

    private int[] PromptIds(CompletionRequest req, bool chat)
    {
        int[] ids;
        if (chat)
        {
            var format = _engine.Chat ?? throw new ServeError(404, "this model's tokenizer has no chat template tpeft can render (ChatML or Llama-3); use /v1/completions", code: "chat_template_missing");
            ids = _engine.Encode(format.Render(req.Messages!));
        }
        else if (req.Prompt.Ids is { } given)
        {
            ids = given;
            for (int i = 0; i < ids.Length; i++)
                if (ids[i] >= _engine.VocabSize) throw ServeError.BadRequest($"'prompt'[{i}] = {ids[i]} is outside the model's vocabulary [0, {_engine.VocabSize})", "prompt");
        }
        else
        {
            if (!_engine.HasTokenizer) throw ServeError.BadRequest("this model has no tokenizer: send 'prompt' as an array of token ids", "prompt");
            ids = _engine.Encode(req.Prompt.Text!);
        }
        if (ids.Length == 0) throw ServeError.BadRequest("the prompt encodes to no token", "prompt");
        return ids;
    }

    /// <summary>Finds the earliest stop string in the decoded text (OpenAI: the stop string itself is not returned).</summary>
    private sealed class StopMatcher(IReadOnlyList<string> stops)
    {
        /// <summary>Characters a stream holds back: a stop string may still be completing at the end of the text.</summary>
        public int HoldBack { get; } = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;

        public string? Cut(string text)
        {
            int best = -1;
            foreach (var s in stops)
            {
                int i = text.IndexOf(s, StringComparison.Ordinal);
                if (i >= 0 && (best < 0 || i < best)) best = i;
            }
            return best < 0 ? null : text[..best];
        }
    }
}
