using System.Diagnostics;
using System.Globalization;
using TransPeft.Engine.Training;

namespace TransPeft.Experiments;

/// <summary>
/// Progress lines with an estimate of the time left. Every planned stage has a cost in "token-equivalents" (a
/// token of full training = 1; LoRA training and evaluation cost less per token); the rate is measured on the
/// work done in this session, so the estimate calibrates itself to the machine after the first minutes.
/// </summary>
internal sealed class ExperimentProgress(Action<string> write)
{
    /// <summary>Cost units per second assumed before anything was measured (a loaded 2-core CPU).</summary>
    private const double GuessRate = 2000;
    private static readonly TimeSpan TrainingLineInterval = TimeSpan.FromSeconds(20);

    private readonly Stopwatch _session = Stopwatch.StartNew();
    private readonly Dictionary<string, double> _remaining = new(StringComparer.Ordinal);
    private double _doneCost, _measuredSeconds, _currentCost, _currentFraction;
    private string? _current;
    private readonly Stopwatch _stageClock = new();

    public TimeSpan Elapsed => _session.Elapsed;

    public void Line(string text) => write($"[{Format(_session.Elapsed)}] {text}");

    /// <summary>Registers a stage that still has to run, with its estimated cost.</summary>
    public void Plan(string id, double cost) => _remaining[id] = Math.Max(0, cost);

    public double RemainingCost => _remaining.Values.Sum() - _currentCost * _currentFraction;

    /// <summary>Cost units per second measured in this session (a guess before the first stage ends).</summary>
    public double Rate
    {
        get
        {
            double cost = _doneCost + _currentCost * _currentFraction;
            double seconds = _measuredSeconds + (_current is null ? 0 : _stageClock.Elapsed.TotalSeconds);
            return cost > 0 && seconds > 5 ? cost / seconds : GuessRate;
        }
    }

    public TimeSpan Eta => TimeSpan.FromSeconds(RemainingCost / Rate);

    public void Begin(string id, string title)
    {
        _current = id;
        _currentCost = _remaining.GetValueOrDefault(id);
        _currentFraction = 0;
        _stageClock.Restart();
        Line($"{title} (about {Format(Eta)} left in total)");
    }

    public void Fraction(double f) => _currentFraction = Math.Clamp(f, 0, 1);

    public void End(string id, string summary)
    {
        double seconds = _stageClock.Elapsed.TotalSeconds;
        if (_currentCost > 0) { _doneCost += _currentCost; _measuredSeconds += seconds; }
        _remaining.Remove(id);
        _current = null; _currentCost = 0; _currentFraction = 0;
        Line($"  done in {Format(TimeSpan.FromSeconds(seconds))}: {summary}");
    }

    /// <summary>A training progress sink that prints a line every 20 s, at evaluations and at the end.</summary>
    public IProgress<TrainingProgress> Training(string label) => new TrainingLines(this, label);

    private sealed class TrainingLines(ExperimentProgress owner, string label) : IProgress<TrainingProgress>
    {
        private readonly Stopwatch _sinceLine = Stopwatch.StartNew();
        private double? _lastVal;

        public void Report(TrainingProgress p)
        {
            if (p.TotalSteps > 0) owner.Fraction((double)p.Step / p.TotalSteps);
            if (p.Event == TrainingEvent.Evaluation) _lastVal = p.ValLoss;
            bool due = p.Event switch
            {
                TrainingEvent.Step => _sinceLine.Elapsed >= TrainingLineInterval || p.Step == 1,
                TrainingEvent.Evaluation or TrainingEvent.Interrupted => true,
                _ => false,
            };
            if (!due) return;
            _sinceLine.Restart();
            var parts = new List<string> { $"  {label}: step {p.Step}/{p.TotalSteps}" };
            if (p.Event == TrainingEvent.Interrupted) parts.Add($"interrupted, checkpoint {p.Path}");
            if (p.Loss is double l) parts.Add($"loss {l.ToString("0.000", CultureInfo.InvariantCulture)}");
            if (_lastVal is double v) parts.Add($"val {v.ToString("0.000", CultureInfo.InvariantCulture)}");
            if (p.TokensPerSecond is double t) parts.Add($"{t.ToString("N0", CultureInfo.InvariantCulture)} tok/s");
            if (p.Eta is TimeSpan e) parts.Add($"stage {Format(e)} left");
            parts.Add($"total ~{Format(owner.Eta)} left");
            owner.Line(string.Join(" | ", parts));
        }
    }

    public static string Format(TimeSpan t) => t.TotalHours >= 1
        ? $"{(int)t.TotalHours}h{t.Minutes:D2}m"
        : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)}s";
}
