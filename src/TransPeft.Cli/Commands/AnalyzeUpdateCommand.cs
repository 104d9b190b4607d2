using System.CommandLine;
using System.Text.Json.Nodes;
using TransPeft.Experiments.Plots;
using TransPeft.Engine.Analysis;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft analyze-update`: what an update did to a base model, through <see cref="UpdateAnalyzer"/>: relative weight
/// change of every module of every layer, and with --data, how the sub-layer outputs and top FFN neurons moved on
/// real text. Writes the JSON and a heatmap PNG when --out is given.
/// </summary>
internal static class AnalyzeUpdateCommand
{
    public const string JsonFile = "update_analysis.json";
    public const string HeatmapFile = "update_heatmap.png";

    public static Command Create()
    {
        var oldOpt = new Option<string>("--old") { Description = "The base model before the update", Required = true, HelpName = "DIR" };
        var newOpt = new Option<string>("--new") { Description = "The updated base model (same architecture)", Required = true, HelpName = "DIR" };
        var data = new Option<string?>("--data") { Description = "Text to run both models on (.txt or JSONL, any training format) for the activation comparison", HelpName = "FILE" };
        var tokenizer = CommonOptions.Tokenizer();
        var outOpt = new Option<string?>("--out", "-o") { Description = $"Folder for {JsonFile} and {HeatmapFile}", HelpName = "DIR" };
        var seqLen = new Option<int>("--seq-len") { Description = "--data: tokens per sequence (text is packed into sequences of this length)", DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch-size") { Description = "--data: sequences per forward pass", DefaultValueFactory = _ => 8 };
        var maxBatches = new Option<int>("--max-batches") { Description = "--data: use at most this many batches (0 = all the data)", DefaultValueFactory = _ => 16 };
        var topK = new Option<int?>("--top-k") { Description = "--data: FFN neurons per layer in the top-k overlap (default: 10% of intermediate_size)" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("analyze-update",
            "Measure how an update moved a base model: ||W_new - W_old|| / ||W_old|| per layer and module (Trans-PEFT's observation: FFN moves more than attention), "
            + "and with --data the cosine of each sub-layer's outputs and the overlap of the most active FFN neurons.\n"
            + "Example: tpeft analyze-update --old base-v1 --new base-v2 --data heldout.txt --out analysis")
            { oldOpt, newOpt, data, tokenizer, outOpt, seqLen, batch, maxBatches, topK, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            var options = DeviceChoice.ForCommand(p, device, cpuOnly: "the activation observer runs on the CPU backend");
            string oldDir = p.GetValue(oldOpt)!, newDir = p.GetValue(newOpt)!;
            var oldModel = TransformerModel.Load(oldDir);
            var newModel = TransformerModel.Load(newDir);
            IEnumerable<TokenBatch>? batches = null;
            if (p.GetValue(data) is { } dataPath)
            {
                var tok = p.GetValue(tokenizer) is { } tf ? TokenizerLoader.Load(tf) : TokenizerLoader.HasTokenizer(oldDir) ? TokenizerLoader.Load(oldDir) : null;
                int t = p.GetValue(seqLen), b = p.GetValue(batch), max = p.GetValue(maxBatches);
                if (t < 2 || t > oldModel.Config.MaxPositionEmbeddings)
                    throw new ArgumentException($"--seq-len: expected 2..{oldModel.Config.MaxPositionEmbeddings} (max_position_embeddings), got {t}");
                if (b <= 0) throw new ArgumentException($"--batch-size: expected a positive number, got {b}");
                if (max < 0) throw new ArgumentException($"--max-batches: expected 0 (all) or a positive number, got {max}");
                batches = UpdateAnalyzer.ReadBatches(dataPath, tok, oldModel.Config, oldDir, t, b, max);
            }
            var analysis = UpdateAnalyzer.Analyze(oldModel, newModel, batches,
                new AnalysisOptions { OldName = oldDir, NewName = newDir, TopK = p.GetValue(topK) });

            string? jsonPath = null, pngPath = null;
            if (p.GetValue(outOpt) is { } outDir)
            {
                Directory.CreateDirectory(outDir);
                jsonPath = Path.Combine(outDir, JsonFile);
                pngPath = Path.Combine(outDir, HeatmapFile);
                AtomicFile.WriteAllText(jsonPath, analysis.ToJson());
                UpdateHeatmap.SavePng(analysis, pngPath);
            }
            if (p.GetValue(json))
            {
                var doc = JsonNode.Parse(analysis.ToJson())!.AsObject();
                doc["files"] = new JsonObject { ["json"] = jsonPath is null ? null : Path.GetFullPath(jsonPath), ["heatmap"] = pngPath is null ? null : Path.GetFullPath(pngPath) };
                doc["device"] = options.Device;
                JsonOutput.Write(doc);
                return 0;
            }
            Console.Out.Write(UpdateAnalysisTable.Render(analysis));
            if (jsonPath is not null) Console.Out.WriteLine($"wrote {jsonPath} and {pngPath}");
            return 0;
        }));
        return cmd;
    }
}
