using System.Diagnostics;

namespace TransPeft.Experiments;

/// <summary>Wall-clock and process CPU time since the start of a stage.</summary>
internal sealed class StageClock
{
    private readonly Stopwatch _wall = Stopwatch.StartNew();
    private readonly TimeSpan _cpuStart = Process.GetCurrentProcess().TotalProcessorTime;

    public double Seconds => _wall.Elapsed.TotalSeconds;
    public double CpuSeconds => (Process.GetCurrentProcess().TotalProcessorTime - _cpuStart).TotalSeconds;
}
