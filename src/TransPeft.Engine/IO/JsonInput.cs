using System.Text.Json;

namespace TransPeft.Engine.IO;

/// <summary>
/// The rules every JSON file a user gives is read by (config.json, adapter_config.json, --config, JSONL records,
/// tokenizer files, checkpoint state): one source, so no reader is laxer than another.
/// </summary>
public static class JsonInput
{
    /// <summary>
    /// Repeated keys are refused at parse time: which of two values a Python loader would pick is not ours to guess,
    /// and JsonObject would otherwise fail later with "An item with the same key has already been added", naming
    /// no file. The depth cap keeps a hostile file from recursing deep.
    /// </summary>
    public static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false, MaxDepth = 64 };

    /// <summary><see cref="Strict"/> plus // comments and trailing commas, for files people write by hand (--config).</summary>
    public static readonly JsonDocumentOptions HandWritten = new()
    {
        AllowDuplicateProperties = false, MaxDepth = 64, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true,
    };

    /// <summary>Config-like JSON files are small; this bounds what a wrong path (a weights file, a device) can cost.</summary>
    public const long MaxConfigBytes = 256L << 20;

    /// <summary>The text of a JSON file a user named: a regular file (links followed), at most <see cref="MaxConfigBytes"/>.</summary>
    public static string ReadText(string path) => InputFile.ReadAllText(path, MaxConfigBytes);

    /// <summary>
    /// A model-folder JSON file (config.json, adapter_config.json, tokenizer_config.json, ...) as an object, read by
    /// <see cref="Strict"/>; anything else is a <see cref="Model.ModelConfigException"/> naming the file.
    /// </summary>
    public static System.Text.Json.Nodes.JsonObject ReadConfigObject(string path)
    {
        try
        {
            return Parse(ReadText(path), Strict) as System.Text.Json.Nodes.JsonObject
                ?? throw new Model.ModelConfigException(path, "(file)", "a JSON object");
        }
        catch (JsonException e) { throw new Model.ModelConfigException(path, "(file)", $"well-formed JSON without repeated keys: {Describe(e)}"); }
    }

    /// <summary>
    /// Parses <paramref name="text"/> and refuses (with a <see cref="JsonException"/>, which every reader already turns
    /// into its own one-line error) any string or key that holds an unpaired surrogate: otherwise the first code that
    /// reads or even prints that string throws an InvalidOperationException naming no file.
    /// </summary>
    public static System.Text.Json.Nodes.JsonNode? Parse(string text, JsonDocumentOptions options)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(text, documentOptions: options);
        string? where;
        try { where = UnpairedSurrogateAt(root, "$"); }
        catch (InvalidOperationException) { where = "a key"; } // a key that cannot be decoded
        if (where is not null)
            throw new JsonException($"the string at {where} holds an unpaired UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair), which is not text");
        return root;
    }

    private static string? UnpairedSurrogateAt(System.Text.Json.Nodes.JsonNode? node, string path)
    {
        switch (node)
        {
            case System.Text.Json.Nodes.JsonObject o:
                foreach (var (key, value) in o)
                {
                    if (HasUnpaired(key)) return $"{path} (a key)";
                    if (UnpairedSurrogateAt(value, $"{path}.{key}") is { } w) return w;
                }
                return null;
            case System.Text.Json.Nodes.JsonArray a:
                for (int i = 0; i < a.Count; i++)
                    if (UnpairedSurrogateAt(a[i], $"{path}[{i}]") is { } w) return w;
                return null;
            default:
                StringOf(node, out bool unpaired);
                return unpaired ? path : null;
        }
    }

    private static bool HasUnpaired(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(s[i])) return true;
        }
        return false;
    }

    /// <summary>
    /// A JSON syntax error as one line: System.Text.Json quotes the offending text, newlines included, and an error
    /// must stay one line whatever the input held.
    /// </summary>
    public static string Describe(JsonException e) => EngineErrors.OneLine(e.Message);

    /// <summary>
    /// The string held by <paramref name="node"/>, or null when it holds something else. <paramref name="unpairedSurrogate"/>
    /// is set when it is a string that is not text: JSON's "\uD800" escape encodes half a surrogate pair, which has no
    /// UTF-8 form, and System.Text.Json throws an InvalidOperationException naming no file when asked for it.
    /// </summary>
    public static string? StringOf(System.Text.Json.Nodes.JsonNode? node, out bool unpairedSurrogate)
    {
        unpairedSurrogate = false;
        if (node is not System.Text.Json.Nodes.JsonValue v || v.GetValueKind() != JsonValueKind.String) return null;
        try { return v.GetValue<string>(); }
        catch (InvalidOperationException) { unpairedSurrogate = true; return null; }
    }
}
