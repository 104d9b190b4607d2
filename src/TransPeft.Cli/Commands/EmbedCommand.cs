using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Sessions;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft embed`: sentence embeddings from a BERT folder.</summary>
internal static class EmbedCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var text = new Option<string[]>("--text", "-t") { Description = "A text to embed (repeatable)", AllowMultipleArgumentsPerToken = false };
        var file = new Option<string?>("--file", "-f") { Description = "A UTF-8 file with one text per line", HelpName = "FILE" };
        var pooling = new Option<string?>("--pooling") { Description = "mean | cls (default: the model's 1_Pooling/config.json, else mean)" };
        var normalize = new Option<bool>("--normalize") { Description = "L2-normalise each embedding" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Cut each text to this many tokens, [CLS] and [SEP] included", DefaultValueFactory = _ => 256 };
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var cmd = new Command("embed", "Sentence embeddings from a BERT encoder (mean or CLS pooling); prints cosine similarities of consecutive texts")
            { model, text, file, pooling, normalize, maxTokens, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            var texts = new List<string>(p.GetValue(text) ?? []);
            if (p.GetValue(file) is { } f)
            {
                if (!File.Exists(f)) throw new FileNotFoundException($"{f}: no such file (--file expects one text per line)");
                texts.AddRange(File.ReadLines(f).Where(l => l.Trim().Length > 0));
            }
            if (texts.Count == 0) throw new ArgumentException("give --text T (repeatable) or --file F");
            // The embedding session of the public API (docs/API.md): threads and device from the common options.
            using var session = EmbeddingSession.Load(p.GetValue(model)!, DeviceChoice.ForCommand(p, device));
            if (session.DeviceFallbackReason is { } why) Console.Error.WriteLine($"device: cpu ({why})");
            var m = session.Model;
            var mode = p.GetValue(pooling) is { } pm ? ParsePooling(pm) : m.DefaultPooling;
            var embeddings = session.Embed(texts, new EmbeddingOptions { Pooling = mode, Normalize = p.GetValue(normalize), MaxTokens = p.GetValue(maxTokens) });
            if (p.GetValue(json))
            {
                var arr = new JsonArray();
                for (int i = 0; i < texts.Count; i++)
                    arr.Add(new JsonObject { ["text"] = texts[i], ["embedding"] = new JsonArray(embeddings[i].Select(v => (JsonNode)JsonValue.Create(v)!).ToArray()) });
                JsonOutput.Write(new JsonObject { ["model"] = Path.GetFullPath(p.GetValue(model)!), ["pooling"] = mode.ToString().ToLowerInvariant(), ["normalized"] = p.GetValue(normalize), ["embeddings"] = arr });
                return 0;
            }
            var table = new Table().AddColumns("#", "text", "dims", "first values", "cos(prev)");
            for (int i = 0; i < texts.Count; i++)
                table.AddRow((i + 1).ToString(), Markup.Escape(texts[i].Length > 50 ? texts[i][..47] + "..." : texts[i]), embeddings[i].Length.ToString(),
                    string.Join(" ", embeddings[i].Take(4).Select(v => v.ToString("F4"))),
                    i == 0 ? "" : BertEmbedder.Cosine(embeddings[i - 1], embeddings[i]).ToString("F4"));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLineInterpolated($"[grey]{mode} pooling{(p.GetValue(normalize) ? ", normalised" : "")}, {m.Config.NumLayers}-layer BERT from {m.Directory}[/]");
            return 0;
        }));
        return cmd;
    }

    public static BertPooling ParsePooling(string s) => s.ToLowerInvariant() switch
    {
        "mean" => BertPooling.Mean,
        "cls" => BertPooling.Cls,
        _ => throw new ArgumentException($"--pooling: expected mean or cls, got '{s}'"),
    };
}
