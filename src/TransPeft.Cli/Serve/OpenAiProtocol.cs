using System.Text.Json;
using System.Text.Json.Nodes;

namespace TransPeft.Cli.Serve;

/// <summary>An error the server answers with an HTTP status and an OpenAI-style error object
/// (<c>{"error": {"message", "type", "param", "code"}}</c>); never takes the server down.</summary>
internal sealed class ServeError(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public string Type => Status switch
    {
        401 => "authentication_error",
        404 => "not_found_error",
        503 => "service_unavailable",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code ?? Status.ToString(System.Globalization.CultureInfo.InvariantCulture) },
    };

    public static ServeError BadRequest(string message, string? param = null) => new(400, message, param);
}

/// <summary>A prompt as the client sent it: text to encode, or token ids used as given.</summary>
internal readonly record struct PromptInput(string? Text, int[]? Ids);

/// <summary>One chat message.</summary>
internal readonly record struct ChatMessage(string Role, string Content);

/// <summary>
/// A validated completion request (<c>/v1/completions</c>, or <c>/v1/chat/completions</c> with
/// <see cref="Messages"/>). Fields follow OpenAI's API; unknown fields are ignored as OpenAI clients send many.
/// </summary>
internal sealed record CompletionRequest
{
    public required string Model { get; init; }
    public PromptInput Prompt { get; init; }
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    public int MaxTokens { get; init; } = 16;
    /// <summary>0 is greedy decoding (argmax), as in vLLM.</summary>
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public bool Stream { get; init; }

    public const int MaxStopStrings = 4;

    /// <summary>Parses and checks a request body; throws <see cref="ServeError"/> (400) naming the field.</summary>
    public static CompletionRequest Parse(ReadOnlySpan<byte> body, bool chat)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(body); }
        catch (JsonException e) { throw ServeError.BadRequest($"request body is not valid JSON: {e.Message}"); }
        if (node is not JsonObject o) throw ServeError.BadRequest("request body must be a JSON object");

        var model = String(o, "model") ?? throw ServeError.BadRequest("'model' is required: the base model's name or an adapter name (GET /v1/models lists them)", "model");
        PromptInput prompt = default;
        IReadOnlyList<ChatMessage>? messages = null;
        if (chat) messages = ParseMessages(o);
        else prompt = ParsePrompt(o);
        int maxTokens = Int(o, "max_tokens") ?? Int(o, "max_completion_tokens") ?? 16;
        if (maxTokens < 1) throw ServeError.BadRequest($"'max_tokens' must be at least 1, got {maxTokens}", "max_tokens");
        double temperature = Number(o, "temperature") ?? 1.0;
        if (temperature is < 0 or > 100 || double.IsNaN(temperature)) throw ServeError.BadRequest($"'temperature' must be between 0 and 100 (0 = greedy), got {temperature}", "temperature");
        double topP = Number(o, "top_p") ?? 1.0;
        if (topP is <= 0 or > 1 || double.IsNaN(topP)) throw ServeError.BadRequest($"'top_p' must be in (0, 1], got {topP}", "top_p");
        int? n = Int(o, "n");
        if (n is not null and not 1) throw ServeError.BadRequest($"'n' must be 1 (one choice per request), got {n}", "n");
        return new CompletionRequest
        {
            Model = model, Prompt = prompt, Messages = messages, MaxTokens = maxTokens, Temperature = temperature, TopP = topP,
            Seed = Int(o, "seed"), Stop = Stops(o), Stream = Bool(o, "stream") ?? false,
        };
    }

    private static JsonNode? Field(JsonObject o, string name) => o.TryGetPropertyValue(name, out var v) ? v : null;

    private static string? String(JsonObject o, string name) => Field(o, name) switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => throw ServeError.BadRequest($"'{name}' must be a string", name),
    };

    private static bool? Bool(JsonObject o, string name) => Field(o, name) switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        _ => throw ServeError.BadRequest($"'{name}' must be true or false", name),
    };

    private static double? Number(JsonObject o, string name) => Field(o, name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
        _ => throw ServeError.BadRequest($"'{name}' must be a number", name),
    };

    private static int? Int(JsonObject o, string name) => Field(o, name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int i) => i,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue => (int)d,
        _ => throw ServeError.BadRequest($"'{name}' must be an integer", name),
    };

    private static PromptInput ParsePrompt(JsonObject o)
    {
        switch (Field(o, "prompt"))
        {
            case null: throw ServeError.BadRequest("'prompt' is required: a string, or an array of token ids", "prompt");
            case JsonValue v when v.TryGetValue(out string? s):
                if (s.Length == 0) throw ServeError.BadRequest("'prompt' is empty", "prompt");
                return new PromptInput(s, null);
            case JsonArray a when a.Count == 1 && a[0] is JsonValue one && one.TryGetValue(out string? only):
                return new PromptInput(only, null); // ["text"]: a batch of one
            case JsonArray a:
                if (a.Count == 0) throw ServeError.BadRequest("'prompt' is an empty array", "prompt");
                var ids = new int[a.Count];
                for (int i = 0; i < a.Count; i++)
                    if (a[i] is not JsonValue t || t.GetValueKind() != JsonValueKind.Number || !t.TryGetValue(out ids[i]) || ids[i] < 0)
                        throw ServeError.BadRequest($"'prompt'[{i}] must be a token id (a non-negative integer); batches of prompts are not supported, send one request per prompt", "prompt");
                return new PromptInput(null, ids);
            default: throw ServeError.BadRequest("'prompt' must be a string or an array of token ids", "prompt");
        }
    }

    private static List<ChatMessage> ParseMessages(JsonObject o)
    {
        if (Field(o, "messages") is not JsonArray a || a.Count == 0)
            throw ServeError.BadRequest("'messages' is required: a non-empty array of {\"role\", \"content\"} objects", "messages");
        var list = new List<ChatMessage>();
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonObject m) throw ServeError.BadRequest($"'messages'[{i}] must be an object", "messages");
            string? role = String(m, "role"), content = String(m, "content");
            if (role is not ("system" or "user" or "assistant")) throw ServeError.BadRequest($"'messages'[{i}].role must be system, user or assistant, got '{role}'", "messages");
            list.Add(new ChatMessage(role, content ?? throw ServeError.BadRequest($"'messages'[{i}].content must be a string", "messages")));
        }
        return list;
    }

    private static List<string> Stops(JsonObject o)
    {
        switch (Field(o, "stop"))
        {
            case null: return [];
            case JsonValue v when v.TryGetValue(out string? s): return s.Length == 0 ? [] : [s];
            case JsonArray a:
                if (a.Count > MaxStopStrings) throw ServeError.BadRequest($"'stop' holds at most {MaxStopStrings} strings, got {a.Count}", "stop");
                var list = new List<string>();
                foreach (var x in a)
                {
                    if (x is not JsonValue sv || !sv.TryGetValue(out string? s)) throw ServeError.BadRequest("'stop' must be a string or an array of strings", "stop");
                    if (s.Length > 0) list.Add(s);
                }
                return list;
            default: throw ServeError.BadRequest("'stop' must be a string or an array of strings", "stop");
        }
    }
}
