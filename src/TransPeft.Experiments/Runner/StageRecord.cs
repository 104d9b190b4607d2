using System.Text.Json.Nodes;

namespace TransPeft.Experiments;

/// <summary>A finished stage: how long it took (wall clock and CPU time of the process, in the session that
/// finished it) and what it produced. CPU time is what a machine shared with other work cannot distort.</summary>
internal sealed record StageRecord(string Id, double Seconds, double CpuSeconds, DateTimeOffset Finished, JsonObject Result);
