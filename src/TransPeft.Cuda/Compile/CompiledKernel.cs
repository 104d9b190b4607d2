namespace TransPeft.Cuda.Compile;

/// <summary>The result of compiling one source file: a cubin for one architecture.</summary>
public sealed class CompiledKernel
{
    public required string SourceName { get; init; }
    public required string Arch { get; init; }
    public required byte[] Cubin { get; init; }

    /// <summary>NVRTC's log (warnings, and ptxas's -v resource report).</summary>
    public required string Log { get; init; }

    /// <summary>Name expression → lowered (mangled) name, for templated kernels.</summary>
    public required IReadOnlyDictionary<string, string> LoweredNames { get; init; }

    public required IReadOnlyList<string> Options { get; init; }

    /// <summary>NVRTC's version as (major, minor).</summary>
    public required (int Major, int Minor) NvrtcVersion { get; init; }

    /// <summary>sha256 of everything that determines the cubin; the cache file name.</summary>
    public required string CacheKey { get; init; }

    /// <summary>True when the cubin came from the disk cache.</summary>
    public bool FromCache { get; init; }

    /// <summary>Why the cubin could not be written to the cache (the compile itself succeeded), or null.</summary>
    public string? CacheWriteError { get; init; }

    /// <summary>Per-kernel registers, shared memory, stack frame and spills, read from <see cref="Cubin"/>.</summary>
    public IReadOnlyList<CubinKernelInfo> Kernels() => CubinInfo.Read(Cubin, Log, $"cubin of {SourceName} ({Arch})");
}
