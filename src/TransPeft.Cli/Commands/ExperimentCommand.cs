using System.CommandLine;
using Spectre.Console;
using TransPeft.Experiments;
using TransPeft.Cli.Experiment.RealPair;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft experiment`: the Trans-PEFT transfer protocol end to end with real training (data, base v1, update to
/// v2, adapters on both, transfer, evaluation, statistics, report and plots). Rerunning the same command continues
/// an interrupted run; Ctrl-C stops after the current step with a checkpoint.
/// </summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset")
        {
            Description = "Which run: " + string.Join("; ", ExperimentPresets.All.Values.Select(p => $"{p.Name} = {p.Description}"))
                + "; real-pair = the real pre-trained update all-MiniLM-L6-v2 -> arctic-embed-xs (BERT, from NuGet), spam + WordNet supersense",
            DefaultValueFactory = _ => ExperimentPresets.Default,
        };
        var outOpt = new Option<string?>("--out", "-o") { Description = "Output folder (default: ./results/experiment-PRESET)" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (default: TPEFT_THREADS, else every core)", DefaultValueFactory = _ => 0 };
        var restart = new Option<bool>("--restart") { Description = "Discard the folder's earlier run (stages, models, adapters, results; the built data is kept) and start over" };
        var cache = new Option<string?>("--data-cache") { Description = "Download cache of the data packages (default: TPEFT_DATA_DIR, else REPO/.cache/data)" };
        var seeds = new Option<int?>("--seeds") { Description = "real-pair only: number of seeds (default 5)" };
        var steps = new Option<int?>("--steps") { Description = "real-pair only: adapter training steps (default 150)" };
        var firstSeed = new Option<int>("--first-seed") { Description = "real-pair only: seeds are FIRST..FIRST+N-1 (a second process can take later seeds of the same folder)", DefaultValueFactory = _ => 1 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "real-pair only: cut inputs to this many tokens (default 64)" };
        var lr = new Option<double?>("--lr") { Description = "real-pair only: AdamW learning rate (default 5e-4)" };
        var tasks = new Option<string?>("--tasks") { Description = "real-pair only: comma-separated tasks (default spam,supersense)" };
        var cmd = new Command("experiment", "Reproduce the Trans-PEFT transfer protocol at small scale: pre-train v1, update it to v2, train plain and Trans-PEFT adapters, transfer them, report")
            { preset, outOpt, threads, restart, cache, seeds, steps, tasks, lr, firstSeed, maxTokens };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            if (p.GetValue(preset) == "real-pair")
                return RealPairCommand.Run(p.GetValue(outOpt), p.GetValue(threads), p.GetValue(restart), p.GetValue(cache), p.GetValue(seeds), p.GetValue(steps), p.GetValue(tasks), p.GetValue(lr), p.GetValue(firstSeed), p.GetValue(maxTokens));
            var chosen = ExperimentPresets.Get(p.GetValue(preset)!);
            int threadCount = p.GetValue(threads) is > 0 and var n ? n : DeviceChoice.Threads;
            string outDir = p.GetValue(outOpt) ?? Path.Combine("results", $"experiment-{chosen.Name}");
            var console = AnsiConsole.Console;
            using var cts = new CancellationTokenSource();
            // Ctrl-C (SIGINT) and SIGTERM stop the run gracefully: the current training step finishes and is
            // checkpointed, finished stages are kept. A second signal ends the process at once.
            using var signals = new StopSignals(cts, "stopping after the current step (a checkpoint is written); send it again to kill");
            try
            {
                var runner = new ExperimentRunner(chosen, outDir, new RegistryDataSource(chosen, p.GetValue(cache)), line => Console.Out.WriteLine(line));
                var results = runner.Run(p.GetValue(restart), cts.Token, threadCount);
                console.WriteLine();
                ResultsTable.Print(results, console);
                console.MarkupLineInterpolated($"report: [green]{runner.Layout.Report}[/]  results: [green]{runner.Layout.Results}[/]");
                return 0;
            }
            catch (OperationCanceledException e)
            {
                Console.Error.WriteLine($"stopped: {e.Message} Finished stages are kept in {Path.GetFullPath(outDir)}.");
                return 130;
            }
        }));
        return cmd;
    }
}
