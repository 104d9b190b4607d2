namespace TransPeft.Cuda.Compile;

/// <summary>
/// One line of <c>tpeft kernels</c>: a kernel of a source file compiled for one architecture, or the file's
/// compile failure (then <see cref="Kernel"/> is null and <see cref="Log"/> says why).
/// </summary>
public sealed record KernelReportEntry(
    string File,
    string Arch,
    string? Kernel,
    bool Compiled,
    int? Registers,
    int? StaticSharedBytes,
    int? FrameBytes,
    int? SpillStoreBytes,
    int? SpillLoadBytes,
    int? MaxThreadsPerBlock,
    bool FromCache,
    string Log)
{
    /// <summary>Spill stores + loads, when ptxas reported them.</summary>
    public int? SpillBytes => SpillStoreBytes is { } s && SpillLoadBytes is { } l ? s + l : null;

    public string Status => !Compiled ? "compile-error" : SpillBytes > 0 ? "spills" : "ok";
}
