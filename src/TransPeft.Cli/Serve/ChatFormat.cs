using System.Text;
using System.Text.Json.Nodes;

namespace TransPeft.Cli.Serve;

/// <summary>
/// The chat prompt formats <c>tpeft serve</c> renders. A Hugging Face tokenizer_config.json carries its chat template
/// as Jinja; the server runs no Jinja, so it recognises the two families whose markers it knows (ChatML, used by Qwen2,
/// and the Llama-3 header format) and renders them in code. Any other template leaves the chat endpoint off (404
/// with that reason), rather than guessing a format the model was not trained on.
/// </summary>
internal sealed record ChatFormat(string Name, string Begin, string MessageStart, string RoleEnd, string MessageEnd, string AssistantStart)
{
    public static readonly ChatFormat ChatMl = new("chatml", "", "<|im_start|>", "\n", "<|im_end|>\n", "<|im_start|>assistant\n");
    public static readonly ChatFormat Llama3 = new("llama3", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n");

    /// <summary>The format of a chat template, or null when it is none of the known ones.</summary>
    public static ChatFormat? Detect(string? template) =>
        template is null ? null
        : template.Contains("<|im_start|>", StringComparison.Ordinal) ? ChatMl
        : template.Contains("<|start_header_id|>", StringComparison.Ordinal) ? Llama3
        : null;

    /// <summary>The chat_template of a model folder's tokenizer_config.json (null when absent or not a string).</summary>
    public static string? ReadTemplate(string modelDir)
    {
        string path = Path.Combine(modelDir, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) is JsonObject o && o["chat_template"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new FormatException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>The prompt text for <paramref name="messages"/>, ending where the assistant's answer starts.
    /// <see cref="Begin"/> is part of the text: the caller encodes it without adding its own BOS.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder(Begin);
        foreach (var m in messages) sb.Append(MessageStart).Append(m.Role).Append(RoleEnd).Append(m.Content).Append(MessageEnd);
        return sb.Append(AssistantStart).ToString();
    }
}
