using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft generate`: continue a prompt with a model (and optionally an adapter) on the KV-cached decoder.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var tokenizer = CommonOptions.Tokenizer();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Prompt text (encoded with the tokenizer; BOS first when the model's tokenizer expects it)", HelpName = "TEXT" };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids, used exactly as given (no tokenizer needed)", HelpName = "1,2,3" };
        var maxNew = new Option<int>("--max-new-tokens", "-n") { Description = "Most tokens to generate (stops earlier at EOS or a --stop string)", DefaultValueFactory = _ => 64 };
        var greedy = new Option<bool>("--greedy") { Description = "Always take the most likely token (deterministic; ignores temperature, top-k, top-p)" };
        var temperature = new Option<double>("--temperature", "-t") { Description = "Sampling temperature: below 1 sharpens the distribution, above 1 flattens it", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Sample only among the k most likely tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling: the smallest set of tokens whose probability reaches p (1 = all)", DefaultValueFactory = _ => 1.0 };
        var seed = CommonOptions.Seed();
        var stop = new Option<string[]>("--stop") { Description = "Stop when the continuation contains this string (cut there); repeatable", AllowMultipleArgumentsPerToken = false, HelpName = "STR" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("generate",
            "Generate a continuation of a prompt. Prints the text on stdout (statistics on stderr); --json adds the token ids and tokens/s.\n"
            + "Example: tpeft generate --model base --adapter run/final --prompt \"Define hack:\" --max-new-tokens 40 --greedy")
            { model, adapter, tokenizer, prompt, promptIds, maxNew, greedy, temperature, topK, topP, seed, stop, device, json };
        cmd.Validators.Add(r =>
        {
            bool hasText = r.GetResult(prompt) is not null, hasIds = r.GetResult(promptIds) is not null;
            if (hasText == hasIds) r.AddError("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
        });
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string modelDir = p.GetValue(model)!;
            string? text = p.GetValue(prompt);
            using var session = ModelInputs.OpenSession(modelDir, p.GetValue(tokenizer), required: text is not null, "--prompt needs to encode the text",
                DeviceChoice.ForCommand(p, device), p.GetValue(adapter));
            using var context = session.CreateContext(ModelInputs.AdapterOf(p.GetValue(adapter)));
            var config = session.Config;
            var tok = session.Tokenizer;
            int[] ids;
            if (text is not null)
            {
                ids = context.Encode(text);
                if (ids.Length == 0) throw new ArgumentException("--prompt: the text encodes to no token; give a non-empty prompt");
            }
            else ids = ParseIds(p.GetValue(promptIds)!, config.VocabSize);

            var options = new GenerationOptions
            {
                MaxNewTokens = p.GetValue(maxNew), Greedy = p.GetValue(greedy), Temperature = p.GetValue(temperature),
                TopK = p.GetValue(topK), TopP = p.GetValue(topP), Seed = p.GetValue(seed), EosTokenIds = session.EosTokenIds,
                StopStrings = p.GetValue(stop) ?? [],
            };
            if (options.StopStrings.Count > 0 && tok is null)
                throw new ArgumentException($"--stop needs a tokenizer to decode the continuation, and {modelDir} has none; pass --tokenizer");
            GenerationResult result;
            try { result = context.Generate(ids, options); }
            catch (ArgumentOutOfRangeException e) when (tok is not null && tok.VocabSize < config.VocabSize)
            {
                // An embedding table larger than the tokenizer (padded vocabularies, or an untrained model) can emit ids with no text.
                throw new ArgumentException($"the model emitted a token its tokenizer cannot decode ({e.Message.Split('(')[0].Trim()}): "
                    + $"{tok.Source} has {tok.VocabSize} ids, the model's vocab_size is {config.VocabSize}", e);
            }

            if (p.GetValue(json))
            {
                JsonOutput.Write(new JsonObject
                {
                    ["prompt_ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()),
                    ["ids"] = new JsonArray(result.TokenIds.Select(i => (JsonNode)i).ToArray()),
                    ["text"] = result.Text, ["new_tokens"] = result.TokenIds.Count, ["stop_reason"] = result.StopReason,
                    ["tokens_per_s"] = result.TokensPerSecond, ["device"] = session.DeviceDescription,
                });
                return 0;
            }
            Console.Out.WriteLine(result.Text ?? string.Join(",", result.TokenIds));
            Console.Error.WriteLine($"{result.TokenIds.Count} tokens, {result.TokensPerSecond.ToString("N1", CultureInfo.InvariantCulture)} tokens/s, stopped by {result.StopReason}");
            return 0;
        }));
        return cmd;
    }

    internal static int[] ParseIds(string s, int vocabSize)
    {
        var parts = s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("--prompt-ids: expected comma-separated token ids such as 1,2,3, got nothing");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]) || ids[i] >= vocabSize)
                throw new ArgumentException($"--prompt-ids: entry {i + 1} '{parts[i]}' is not a token id in [0, {vocabSize}) (the model's vocab_size)");
        }
        return ids;
    }
}
