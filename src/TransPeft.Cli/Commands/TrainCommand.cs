using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Experiments.Plots;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft train`: one training run (LoRA, Trans-PEFT LoRA, or full fine-tuning) through <see cref="TrainingRun"/>.
/// Options come from defaults, then --config FILE, then flags; --resume continues a run bit-identically from its
/// latest checkpoint (with its recorded options unless --config is given). Ctrl-C or SIGTERM stops after the current
/// step and writes a checkpoint, then exits with 1; a second signal aborts at once.
/// </summary>
internal static class TrainCommand
{
    public const string LossPlotFile = "loss.png";
    public const string MetricsFile = TrainingRunFolder.MetricsFileName;

    public static Command Create()
    {
        var config = new Option<string?>("--config", "-c")
        {
            Description = "JSON file of training options (snake_case names as listed in [config: ...] below); flags given on the command line override it",
            HelpName = "FILE",
        };
        var full = new Option<bool>("--full") { Description = "Full fine-tuning: the same as --method full" };
        var resume = new Option<string?>("--resume")
        {
            Description = "Continue a run: an output folder (its latest checkpoint) or one checkpoint folder. Uses the run's recorded options "
                + "unless --config is given; trajectory options must match, --steps may grow",
            HelpName = "DIR",
        };
        var logEvery = new Option<int>("--log-every") { Description = "Plain-text mode (not a terminal, or --json): print a progress line every N steps (0 = about 20 lines per run)", DefaultValueFactory = _ => 0 };
        var noPlot = new Option<bool>("--no-plot") { Description = $"Do not draw OUT/{LossPlotFile} at the end" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var overwrite = CommonOptions.Overwrite();
        var flags = TrainingFlags.Create();

        var cmd = new Command("train",
            "Train a LoRA adapter (optionally with Trans-PEFT FFN masking/dropping so it survives base-model updates) or fine-tune all weights.\n"
            + "Writes OUT/final/ (a PEFT adapter, or a full model folder with its tokenizer), resumable OUT/checkpoints/step-N/, "
            + $"OUT/{MetricsFile} (one JSON line per step and evaluation), OUT/training_options.json and OUT/{LossPlotFile}.\n"
            + "Example: tpeft train --model base --data train.jsonl --val-data val.jsonl --out run --lora-r 16 --lora-targets all-linear --p-mask 0.2 --p-drop 0.2 --steps 500")
        { config, full, resume };
        foreach (var (_, option) in flags) cmd.Options.Add(option);
        cmd.Options.Add(logEvery);
        cmd.Options.Add(noPlot);
        cmd.Options.Add(device);
        cmd.Options.Add(json);
        cmd.Options.Add(overwrite);

        cmd.SetAction(p => CliErrors.Run(() =>
        {
            var sessionOptions = DeviceChoice.ForCommand(p, device);
            var overrides = TrainingFlags.Overrides(p, flags);
            if (p.GetValue(full))
            {
                if (overrides.FirstOrDefault(o => o.Key == "method") is { Key: not null } m && m.Value.Trim().ToLowerInvariant() != "full")
                    throw new ArgumentException($"--full contradicts --method {m.Value}");
                overrides.Insert(0, KeyValuePair.Create("method", "full"));
            }
            string? resumeFrom = p.GetValue(resume);
            string? configPath = p.GetValue(config);
            if (resumeFrom is not null)
            {
                string outDir = OutputOf(resumeFrom);
                configPath ??= RecordedOptions(resumeFrom, outDir);
                if (!overrides.Any(o => o.Key == "output")) overrides.Add(KeyValuePair.Create("output", outDir));
            }
            var options = Absolute(TrainingOptionsJson.Load(configPath, overrides));
            if (options.Model is null) throw new TrainingConfigException("training options", "model", "a base model folder (--model, or \"model\" in --config)");
            if (options.Data is null) throw new TrainingConfigException("training options", "data", "a training data file (--data, or \"data\" in --config)");
            if (options.Output is null) throw new TrainingConfigException("training options", "output", "an output folder (--out, or \"output\" in --config)");
            options = options with { CacheDir = options.CacheDir ?? DefaultTokenCache() };

            bool asJson = p.GetValue(json);
            bool liveBar = !asJson && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive
                && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
            var text = asJson ? Console.Error : Console.Out;
            void Log(string line) { if (liveBar) AnsiConsole.MarkupLine(Markup.Escape(line)); else { text.WriteLine(line); text.Flush(); } }

            using var cts = new CancellationTokenSource();
            using var signals = new StopSignals(cts, "stopping after the current step and writing a checkpoint (send it again to abort without one)");
            TrainingResult result;
            // The session loads the base once on the chosen device; training goes through it (LoRA leaves its weights frozen).
            using var session = DeviceChoice.Open(() => InferenceSession.Load(options.Model, sessionOptions), sessionOptions);
            {
                Log($"{(options.Method == TrainingMethod.Full ? "full fine-tuning" : "LoRA")} of {options.Model} on {options.Data} -> {options.Output} on {session.DeviceDescription}");
                if (liveBar)
                {
                    TrainingResult? r = null;
                    AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
                        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
                        .Start(ctx =>
                        {
                            var task = ctx.AddTask("loading data", maxValue: 1);
                            r = session.Train(options, new TrainingProgressPrinter(task, text, 0), resumeFrom, cts.Token, Log, p.GetValue(overwrite));
                        });
                    result = r!;
                }
                else
                {
                    int every = p.GetValue(logEvery);
                    var printer = new TrainingProgressPrinter(null, text, every > 0 ? every : AutoLogEvery(options));
                    result = session.Train(options, printer, resumeFrom, cts.Token, Log, p.GetValue(overwrite));
                }
            }

            string metrics = Path.Combine(options.Output, MetricsFile);
            string? plot = null;
            if (!p.GetValue(noPlot) && File.Exists(metrics) && result.Step > 0)
            {
                plot = Path.Combine(options.Output, LossPlotFile);
                LossCurvePlot.Save(metrics, plot);
            }
            if (asJson)
            {
                JsonOutput.Write(new JsonObject
                {
                    ["output"] = options.Output, ["completed"] = result.Completed, ["interrupted"] = result.Interrupted,
                    ["step"] = result.Step, ["total_steps"] = result.TotalSteps, ["last_loss"] = result.LastLoss, ["last_val_loss"] = result.LastValLoss,
                    ["final_weights"] = result.FinalWeights, ["last_checkpoint"] = result.LastCheckpoint, ["metrics"] = metrics, ["loss_plot"] = plot,
                    ["device"] = session.DeviceDescription, ["options"] = TrainingOptionsJson.ToJson(options),
                });
            }
            else
            {
                // Key/value rows: paths are long and would wrap in columns.
                var table = new Table().HideHeaders().AddColumns("", "");
                table.AddRow("step", $"{result.Step}/{result.TotalSteps}{(result.Interrupted ? " [yellow](interrupted)[/]" : "")}");
                table.AddRow("train loss", Fmt(result.LastLoss));
                table.AddRow("validation loss", Fmt(result.LastValLoss));
                table.AddRow(options.Method == TrainingMethod.Full ? "model" : "adapter", Markup.Escape(result.FinalWeights ?? "(not finished)"));
                table.AddRow("last checkpoint", Markup.Escape(result.LastCheckpoint ?? "-"));
                table.AddRow("loss curve", Markup.Escape(plot ?? "-"));
                AnsiConsole.Write(table);
            }
            if (result.Interrupted)
            {
                Console.Error.WriteLine($"error: interrupted at step {result.Step} of {result.TotalSteps}; continue with: tpeft train --resume {options.Output}");
                return 1;
            }
            return 0;
        }));
        return cmd;
    }

    private static string Fmt(double? x) => x is { } v ? v.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture) : "-";

    private static int AutoLogEvery(TrainingOptions o) => Math.Max(1, (o.Steps ?? 20) / 20);

    /// <summary>~/.cache/tpeft/tokens, or $TPEFT_CACHE_DIR/tokens: tokenized datasets are reused across runs (keyed by file hash and tokenizer).</summary>
    internal static string DefaultTokenCache()
    {
        var root = Environment.GetEnvironmentVariable("TPEFT_CACHE_DIR");
        if (string.IsNullOrWhiteSpace(root))
            root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "tpeft");
        return Path.Combine(Path.GetFullPath(root), "tokens");
    }

    /// <summary>The output folder a --resume value belongs to: the folder itself, or OUT for OUT/checkpoints/step-N.</summary>
    private static string OutputOf(string resume)
    {
        if (!Directory.Exists(resume)) throw new DirectoryNotFoundException($"--resume {resume}: no such output or checkpoint folder");
        var full = Path.GetFullPath(resume).TrimEnd(Path.DirectorySeparatorChar);
        if (File.Exists(Path.Combine(full, "trainer_state.json")) && Path.GetFileName(Path.GetDirectoryName(full)) == "checkpoints")
            return Path.GetDirectoryName(Path.GetDirectoryName(full))!;
        return full;
    }

    /// <summary>OUT/training_options.json: the options the run was last started with (a valid --config file).</summary>
    private static string RecordedOptions(string resume, string outDir)
    {
        var path = Path.Combine(outDir, "training_options.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"--resume {resume}: {path} is missing, so the run's options are unknown; pass them with --config", path);
        return path;
    }

    /// <summary>Paths made absolute, so the options recorded in OUT still work when resuming from another folder.</summary>
    private static TrainingOptions Absolute(TrainingOptions o)
    {
        static string? Abs(string? p) => p is null ? null : Path.GetFullPath(p);
        // A tokenizer may be a name (gpt2); only an existing path is made absolute.
        string? tok = o.Tokenizer is { } t && (Directory.Exists(t) || File.Exists(t)) ? Path.GetFullPath(t) : o.Tokenizer;
        return o with
        {
            Model = Abs(o.Model), Data = Abs(o.Data), ValData = Abs(o.ValData), Output = Abs(o.Output),
            CacheDir = Abs(o.CacheDir), AdapterInit = Abs(o.AdapterInit), Tokenizer = tok,
        };
    }
}
