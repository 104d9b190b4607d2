using System.Globalization;
using Spectre.Console;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>
/// Renders a training run's <see cref="TrainingProgress"/> reports. It implements IProgress itself (rather than
/// using System.Progress&lt;T&gt;, which posts to the thread pool): the trainer reports synchronously on its own
/// thread, so lines come out in order and the last report is shown before the run returns.
/// <list type="bullet">
/// <item>live: a Spectre progress bar whose description carries step, loss, learning rate, tokens/s and ETA;
///   validation losses and checkpoints are printed as lines above it;</item>
/// <item>plain (stdout not a terminal, CI, or --json): one line per <c>logEvery</c> steps and one per
///   event, written to <paramref name="writer"/> (stderr under --json so stdout holds only the JSON).</item>
/// </list>
/// </summary>
internal sealed class TrainingProgressPrinter(ProgressTask? live, TextWriter writer, int logEvery) : IProgress<TrainingProgress>
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private int _startStep = -1;

    public void Report(TrainingProgress p)
    {
        switch (p.Event)
        {
            case TrainingEvent.Started:
                _startStep = p.Step;
                if (live is not null) { live.MaxValue = p.TotalSteps; live.Value = p.Step; live.Description = Markup.Escape($"step {p.Step}/{p.TotalSteps}"); }
                Line(p.Step == 0 ? $"training: {p.TotalSteps} steps" : $"resuming at step {p.Step} of {p.TotalSteps}");
                break;
            case TrainingEvent.Step:
                if (live is not null)
                {
                    live.Value = p.Step;
                    live.Description = Markup.Escape(StepText(p));
                }
                else if (p.Step == _startStep + 1 || p.Step == p.TotalSteps || p.Step % Math.Max(1, logEvery) == 0)
                    Line(StepText(p));
                break;
            case TrainingEvent.Evaluation:
                Line($"step {p.Step}: validation loss {F(p.ValLoss)} (perplexity {Ppl(p.ValLoss)})", "yellow");
                break;
            case TrainingEvent.Checkpoint:
                Line($"step {p.Step}: checkpoint {p.Path}", "grey");
                break;
            case TrainingEvent.Finished:
                if (live is not null) live.Value = live.MaxValue;
                Line($"finished at step {p.Step} in {Time(p.Elapsed)}: weights in {p.Path}", "green");
                break;
            case TrainingEvent.StaleLockTakenOver:
                Line(p.Message!, "yellow");
                break;
            case TrainingEvent.Interrupted:
                Line($"interrupted at step {p.Step} after {Time(p.Elapsed)}; checkpoint {p.Path}", "yellow");
                break;
        }
    }

    /// <summary>"step 12/100  loss 3.2104  lr 2.00e-04  gnorm 0.812  5,120 tok/s  eta 0:01:40".</summary>
    internal static string StepText(TrainingProgress p) =>
        $"step {p.Step}/{p.TotalSteps}  loss {F(p.Loss)}  lr {(p.LearningRate ?? 0).ToString("0.00e+00", Inv)}  gnorm {(p.GradNorm ?? 0).ToString("0.000", Inv)}  "
        + $"{(p.TokensPerSecond ?? 0).ToString("N0", Inv)} tok/s  eta {(p.Eta is { } e ? Time(e) : "?")}";

    private static string F(double? x) => x is { } v ? v.ToString("0.0000", Inv) : "n/a";
    private static string Ppl(double? loss) => loss is { } v ? Math.Exp(v).ToString("0.00", Inv) : "n/a";
    internal static string Time(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", Inv) : t.ToString(@"m\:ss", Inv);

    private void Line(string text, string? color = null)
    {
        // Under a live display, AnsiConsole writes go above the bar (Spectre's render hook); plain mode writes text.
        if (live is not null) AnsiConsole.MarkupLine(color is null ? Markup.Escape(text) : $"[{color}]{Markup.Escape(text)}[/]");
        else { writer.WriteLine(text); writer.Flush(); }
    }
}
