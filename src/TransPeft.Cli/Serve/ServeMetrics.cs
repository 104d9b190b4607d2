using System.Globalization;
using System.Text;

namespace TransPeft.Cli.Serve;

/// <summary>
/// The server's counters and histograms in the Prometheus text exposition format (version 0.0.4), written by hand:
/// requests by endpoint and status, prompt and generated tokens, time to first token, time per output token,
/// decode batch size, adapter load time. Thread-safe; histograms use fixed buckets (cumulative on output).
/// </summary>
internal sealed class ServeMetrics
{
    private readonly object _lock = new();
    private readonly Dictionary<(string Endpoint, int Status), long> _requests = [];
    private long _promptTokens, _generatedTokens;
    private int _running, _waiting;

    public Histogram TimeToFirstToken { get; } = new("tpeft_time_to_first_token_seconds", "Time from request arrival to its first generated token",
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    public Histogram TimePerOutputToken { get; } = new("tpeft_time_per_output_token_seconds", "Time between consecutive generated tokens of a request",
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);
    public Histogram BatchSize { get; } = new("tpeft_batch_size", "Requests in each forward step", [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    public Histogram AdapterLoadSeconds { get; } = new("tpeft_adapter_load_seconds", "Time to load an adapter from its folder into the server",
        [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]);

    public void Request(string endpoint, int status)
    {
        lock (_lock) _requests[(endpoint, status)] = _requests.GetValueOrDefault((endpoint, status)) + 1;
    }

    public void Tokens(int prompt, int generated)
    {
        Interlocked.Add(ref _promptTokens, prompt);
        Interlocked.Add(ref _generatedTokens, generated);
    }

    public void Queue(int running, int waiting)
    {
        Volatile.Write(ref _running, running);
        Volatile.Write(ref _waiting, waiting);
    }

    public string Render()
    {
        var sb = new StringBuilder();
        sb.Append("# HELP tpeft_requests_total HTTP requests by endpoint and status code\n# TYPE tpeft_requests_total counter\n");
        lock (_lock)
            foreach (var ((endpoint, status), count) in _requests.OrderBy(k => k.Key.Endpoint, StringComparer.Ordinal).ThenBy(k => k.Key.Status))
                sb.Append(CultureInfo.InvariantCulture, $"tpeft_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}\n");
        Counter(sb, "tpeft_prompt_tokens_total", "Prompt tokens of finished requests", Interlocked.Read(ref _promptTokens));
        Counter(sb, "tpeft_generation_tokens_total", "Generated tokens", Interlocked.Read(ref _generatedTokens));
        Gauge(sb, "tpeft_requests_running", "Requests in the running batch", Volatile.Read(ref _running));
        Gauge(sb, "tpeft_requests_waiting", "Requests waiting to join the batch", Volatile.Read(ref _waiting));
        TimeToFirstToken.Render(sb);
        TimePerOutputToken.Render(sb);
        BatchSize.Render(sb);
        AdapterLoadSeconds.Render(sb);
        return sb.ToString();
    }

    private static void Counter(StringBuilder sb, string name, string help, long value) =>
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");

    private static void Gauge(StringBuilder sb, string name, string help, long value) =>
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");

    /// <summary>A Prometheus histogram with fixed upper bounds (le), plus +Inf, sum and count.</summary>
    internal sealed class Histogram(string name, string help, double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length + 1];
        private readonly object _lock = new();
        private double _sum;
        private long _count;

        public long Count { get { lock (_lock) return _count; } }

        public void Observe(double value)
        {
            int i = 0;
            while (i < bounds.Length && value > bounds[i]) i++;
            lock (_lock)
            {
                _counts[i]++;
                _sum += value;
                _count++;
            }
        }

        public void Render(StringBuilder sb)
        {
            lock (_lock)
            {
                sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} histogram\n");
                long cumulative = 0;
                for (int i = 0; i < bounds.Length; i++)
                {
                    cumulative += _counts[i];
                    sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i].ToString("R", CultureInfo.InvariantCulture)}\"}} {cumulative}\n");
                }
                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_count}\n");
                sb.Append(CultureInfo.InvariantCulture, $"{name}_sum {_sum.ToString("R", CultureInfo.InvariantCulture)}\n{name}_count {_count}\n");
            }
        }
    }
}
