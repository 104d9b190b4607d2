using System.CommandLine;
using System.Globalization;

namespace TransPeft.Cli.Commands;

/// <summary>
/// Where a command computes, decided once from <c>--device auto|cpu|cuda[:N]</c>. This is the one place the CUDA
/// backend plugs in: today the engine has only the CPU backend (src/TransPeft.Cuda is a placeholder), so
/// <c>cpu</c> runs, <c>auto</c> runs on the CPU and says why, and <c>cuda</c> fails with a clear message instead of
/// silently computing somewhere else. When the CUDA backend lands, <see cref="ProbeCuda"/> initialises it and
/// the commands receive <see cref="Backend"/> = "cuda".
/// </summary>
internal sealed record DeviceChoice(string Requested, string Backend, int? CudaOrdinal, string? FallbackReason)
{
    public bool IsCpu => Backend == "cpu";

    /// <summary>A short description for logs and JSON: "cpu", "cpu (auto: ...)", "cuda:0".</summary>
    public string Describe() => Backend == "cuda" ? $"cuda:{CudaOrdinal ?? 0}" : FallbackReason is null ? "cpu" : $"cpu (auto: {FallbackReason})";

    /// <summary>Parses and resolves a --device value. Throws an <see cref="ArgumentException"/> naming the flag for bad values,
    /// and an <see cref="InvalidOperationException"/> when CUDA is asked for but cannot be used.</summary>
    public static DeviceChoice Resolve(string? spec)
    {
        string s = (spec ?? "auto").Trim().ToLowerInvariant();
        if (s == "cpu") return new DeviceChoice(s, "cpu", null, null);
        if (s == "auto")
        {
            var (ok, ordinal, why) = ProbeCuda(0);
            return ok ? new DeviceChoice(s, "cuda", ordinal, null) : new DeviceChoice(s, "cpu", null, why);
        }
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int n = 0;
            if (s.Length > 4 && (!int.TryParse(s.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out n)))
                throw new ArgumentException($"--device: expected auto, cpu, cuda or cuda:N with N a device number, got '{spec}'");
            var (ok, ordinal, why) = ProbeCuda(n);
            if (!ok) throw new InvalidOperationException($"--device {s}: {why}; run with --device cpu (or auto)");
            return new DeviceChoice(s, "cuda", ordinal, null);
        }
        throw new ArgumentException($"--device: expected auto, cpu, cuda or cuda:N, got '{spec}'");
    }

    /// <summary>
    /// Whether CUDA device <paramref name="ordinal"/> can run this build's kernels. The engine has no CUDA backend
    /// yet, so the answer is always no, with the reason; the native layer's initialisation goes here.
    /// </summary>
    private static (bool Ok, int Ordinal, string Why) ProbeCuda(int ordinal) =>
        (false, ordinal, "the CUDA backend is not built yet");

    /// <summary>
    /// Resolves the command's --device and reports a CPU fallback on stderr (stdout stays clean for --json and pipes).
    /// Throws for anything but the CPU until a GPU backend exists, so no command runs on a device it cannot use.
    /// </summary>
    public static DeviceChoice ForCommand(ParseResult p, Option<string> device)
    {
        var d = Resolve(p.GetValue(device));
        if (d.FallbackReason is not null) Console.Error.WriteLine($"device: cpu ({d.FallbackReason}; this build computes on the CPU only)");
        if (!d.IsCpu) throw new InvalidOperationException($"--device {d.Requested}: no command can run on {d.Describe()} in this build");
        return d;
    }
}
