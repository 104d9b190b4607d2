using System.Globalization;

namespace TransPeft.Engine.Sessions;

/// <summary>Where a session computes, parsed from <see cref="SessionOptions.Device"/>.</summary>
public enum DeviceKind
{
    Cpu,
    Cuda,
    /// <summary>CUDA when available, else the CPU.</summary>
    Auto,
    /// <summary>The CUDA backend's code running on kernels compiled for the host (tests and CI without a GPU).</summary>
    CudaEmulated,
}

/// <summary>A parsed device string: kind and GPU ordinal.</summary>
public readonly record struct DeviceSpec(DeviceKind Kind, int Ordinal)
{
    public const string Expected = "cpu, cuda, cuda:N (N a GPU number), auto or cuda-emulated";

    public static DeviceSpec Parse(string? spec)
    {
        string s = (spec ?? "cpu").Trim().ToLowerInvariant();
        switch (s)
        {
            case "cpu": return new(DeviceKind.Cpu, 0);
            case "auto": return new(DeviceKind.Auto, 0);
            case "cuda": return new(DeviceKind.Cuda, 0);
            case "cuda-emulated": return new(DeviceKind.CudaEmulated, 0);
        }
        if (s.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(s.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            return new(DeviceKind.Cuda, n);
        throw new ArgumentException($"device: expected {Expected}, got '{spec}'");
    }

    public override string ToString() => Kind switch
    {
        DeviceKind.Cpu => "cpu",
        DeviceKind.Cuda => $"cuda:{Ordinal}",
        DeviceKind.Auto => "auto",
        _ => "cuda-emulated",
    };
}
