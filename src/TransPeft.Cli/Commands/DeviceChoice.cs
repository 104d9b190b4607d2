using System.CommandLine;
using System.Globalization;

namespace TransPeft.Cli.Commands;

/// <summary>
/// Where a command computes, decided once from <c>--device auto|cpu|cuda[:N]|cuda-emulated</c>. This is the one place the CUDA
/// backend plugs in: today the engine has only the CPU backend (src/TransPeft.Cuda is a placeholder), so
/// <c>cpu</c> runs, <c>auto</c> runs on the CPU and says why, and <c>cuda</c> fails with a clear message instead of
/// silently computing somewhere else. When the CUDA backend lands, <see cref="ProbeCuda"/> initialises it and
/// the commands receive <see cref="Backend"/> = "cuda".
/// </summary>
internal sealed record DeviceChoice(string Requested, string Backend, int? CudaOrdinal, string? FallbackReason)
{
    /// <summary>The initialised CUDA backend when <see cref="Backend"/> is "cuda".</summary>
    public Engine.Compute.Cuda.CudaBackend? Cuda { get; init; }
    public bool IsCpu => Backend == "cpu";

    /// <summary>A short description for logs and JSON: "cpu", "cpu (auto: ...)", "cuda:0".</summary>
    public string Describe() => Backend == "cuda" ? (Cuda?.IsEmulated == true ? "cuda-emulated" : $"cuda:{CudaOrdinal ?? 0}") : FallbackReason is null ? "cpu" : $"cpu (auto: {FallbackReason})";

    /// <summary>Parses and resolves a --device value. Throws an <see cref="ArgumentException"/> naming the flag for bad values,
    /// and an <see cref="InvalidOperationException"/> when CUDA is asked for but cannot be used.</summary>
    public static DeviceChoice Resolve(string? spec)
    {
        string s = (spec ?? "auto").Trim().ToLowerInvariant();
        if (s == "cpu") return new DeviceChoice(s, "cpu", null, null);
        if (s == "auto")
        {
            var (backend, why) = ProbeCuda(0);
            return backend is not null ? new DeviceChoice(s, "cuda", 0, null) { Cuda = backend } : new DeviceChoice(s, "cpu", null, why);
        }
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int n = 0;
            if (s.Length > 4 && (!int.TryParse(s.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out n)))
                throw new ArgumentException($"--device: expected auto, cpu, cuda or cuda:N with N a device number, got '{spec}'");
            var (backend, why) = ProbeCuda(n);
            if (backend is null) throw new InvalidOperationException($"--device {s}: {why}; run with --device cpu (or auto)");
            return new DeviceChoice(s, "cuda", n, null) { Cuda = backend };
        }
        if (s == "cuda-emulated")
        {
            // The real kernels compiled for the host (g++, cached by source hash): no GPU needed, slow.
            if (!KernelEmulation.HostKernelLibrary.TryBuild(null, out var library, out var why) ||
                !Engine.Compute.Cuda.CudaBackend.TryCreateEmulated(library!, out var emulated, out why))
                throw new InvalidOperationException($"--device cuda-emulated: {why}");
            return new DeviceChoice(s, "cuda", null, null) { Cuda = emulated };
        }
        throw new ArgumentException($"--device: expected auto, cpu, cuda, cuda:N or cuda-emulated, got '{spec}'");
    }

    /// <summary>Initialises the CUDA backend on device <paramref name="ordinal"/> (driver, GPU, NVRTC kernels, cuBLAS), or says why not.</summary>
    private static (Engine.Compute.Cuda.CudaBackend? Backend, string Why) ProbeCuda(int ordinal) =>
        Engine.Compute.Cuda.CudaBackend.TryCreate(ordinal, out var backend, out var reason) ? (backend, "") : (null, reason);

    /// <summary>
    /// Resolves the command's --device and reports a CPU fallback on stderr (stdout stays clean for --json and pipes).
    /// Commands without a CUDA path (<paramref name="supportsCuda"/> false) run on the CPU under auto and refuse an explicit cuda.
    /// </summary>
    public static DeviceChoice ForCommand(ParseResult p, Option<string> device, bool supportsCuda = false)
    {
        var d = Resolve(p.GetValue(device));
        if (d.FallbackReason is not null) Console.Error.WriteLine($"device: cpu ({d.FallbackReason})");
        if (d.IsCpu || supportsCuda)
        {
            if (!d.IsCpu) Console.Error.WriteLine($"device: {d.Cuda!.Description}");
            return d;
        }
        d.Cuda?.Dispose();
        if (d.Requested == "auto")
        {
            Console.Error.WriteLine("device: cpu (a GPU works, but this command has no CUDA path yet)");
            return new DeviceChoice("auto", "cpu", null, "this command has no CUDA path yet");
        }
        throw new InvalidOperationException($"--device {d.Requested}: this command has no CUDA path yet; run with --device cpu (or auto)");
    }
}
