using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft init`: a randomly initialised model in the Hugging Face layout.</summary>
internal static class InitCommand
{
    public static Command Create()
    {
        var outOpt = new Option<string>("--out", "-o") { Description = "Folder to write config.json and model.safetensors into", Required = true };
        var preset = new Option<string>("--preset") { Description = $"Named size: {string.Join(", ", ModelPresets.All.Keys)}", DefaultValueFactory = _ => "micro" };
        var type = new Option<string?>("--model-type") { Description = "llama | qwen2 | mistral (overrides the preset's)" };
        var hidden = new Option<int?>("--hidden-size") { Description = "Hidden size (overrides the preset)" };
        var inter = new Option<int?>("--intermediate-size") { Description = "FFN intermediate size" };
        var layers = new Option<int?>("--layers") { Description = "Number of decoder layers" };
        var heads = new Option<int?>("--heads") { Description = "Attention heads" };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Key/value heads (GQA)" };
        var headDim = new Option<int?>("--head-dim") { Description = "Head dimension (default hidden/heads)" };
        var vocab = new Option<int?>("--vocab-size") { Description = "Vocabulary size" };
        var tied = new Option<bool?>("--tie-embeddings") { Description = "Tie the LM head to the embedding" };
        var dtype = new Option<string>("--dtype") { Description = "Storage dtype: f32 | bf16 | f16", DefaultValueFactory = _ => "f32" };
        var seed = CommonOptions.Seed();
        var json = CommonOptions.Json();
        var overwrite = CommonOptions.Overwrite();
        var cmd = new Command("init", "Write a randomly initialised Llama-family model (N(0, 0.02) weights, unit norms) in the Hugging Face layout")
            { outOpt, preset, type, hidden, inter, layers, heads, kvHeads, headDim, vocab, tied, dtype, seed, json, overwrite };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            OutputFolder.Claim(p.GetValue(outOpt)!, p.GetValue(overwrite));
            var c = ModelPresets.Get(p.GetValue(preset)!);
            int h = p.GetValue(hidden) ?? c.HiddenSize, nh = p.GetValue(heads) ?? c.NumHeads;
            bool dimsChanged = p.GetValue(hidden) is not null || p.GetValue(heads) is not null;
            c = c with
            {
                ModelType = p.GetValue(type) ?? c.ModelType,
                HiddenSize = h,
                IntermediateSize = p.GetValue(inter) ?? c.IntermediateSize,
                NumLayers = p.GetValue(layers) ?? c.NumLayers,
                NumHeads = nh,
                NumKvHeads = p.GetValue(kvHeads) ?? (p.GetValue(heads) is not null ? nh : c.NumKvHeads),
                HeadDim = p.GetValue(headDim) ?? (dimsChanged ? h / nh : c.HeadDim),
                VocabSize = p.GetValue(vocab) ?? c.VocabSize,
                TieWordEmbeddings = p.GetValue(tied) ?? c.TieWordEmbeddings,
            };
            c = c with { AttentionBias = c.ModelType == "qwen2" };
            c.Validate("(command line)");
            var st = ParseDType(p.GetValue(dtype)!);
            var model = TransformerModel.CreateRandom(c, p.GetValue(seed), memoryLimit: CommonOptions.MaxMemoryOf(p));
            string dir = p.GetValue(outOpt)!;
            model.Save(dir, st);
            if (p.GetValue(json))
                JsonOutput.Write(new JsonObject { ["out"] = Path.GetFullPath(dir), ["parameters"] = model.ParameterCount, ["dtype"] = st.ToString(), ["config"] = c.ToJson() });
            else
                AnsiConsole.MarkupLineInterpolated($"Wrote a [bold]{c.ModelType}[/] model with [bold]{model.ParameterCount:N0}[/] parameters ({st}) to [green]{dir}[/]");
            return 0;
        }));
        return cmd;
    }

    internal static SafetensorsDType ParseDType(string s) => s.ToLowerInvariant() switch
    {
        "f32" or "fp32" or "float32" => SafetensorsDType.F32,
        "bf16" or "bfloat16" => SafetensorsDType.BF16,
        "f16" or "fp16" or "float16" => SafetensorsDType.F16,
        _ => throw new ArgumentException($"--dtype: expected f32, bf16 or f16, got '{s}'"),
    };
}
