namespace TransPeft.Cuda.Compile;

/// <summary>
/// What ptxas decided for one kernel, read from the cubin.
/// </summary>
/// <param name="Name">The kernel's symbol (extern "C" name, or the mangled name).</param>
/// <param name="Registers">Registers per thread (EIATTR_REGCOUNT).</param>
/// <param name="StaticSharedBytes">The kernel's static <c>__shared__</c> memory per block: ptxas's "bytes smem" when the
/// log is given, else <see cref="SharedSectionBytes"/>.</param>
/// <param name="SharedSectionBytes">Size of <c>.nv.shared.&lt;kernel&gt;</c>, which can include memory the toolchain reserves.</param>
/// <param name="FrameBytes">Local-memory stack frame per thread (EIATTR_FRAME_SIZE): local arrays and spills.</param>
/// <param name="MaxStackBytes">Stack size including callees (EIATTR_MAX_STACK_SIZE).</param>
/// <param name="ParamBytes">Bytes of kernel parameters (EIATTR_CBANK_PARAM_SIZE).</param>
/// <param name="MaxThreadsPerBlock">From <c>__launch_bounds__</c> (EIATTR_MAX_THREADS), when given.</param>
/// <param name="SpillStoreBytes">Spill stores from ptxas's verbose log, when the log was available.</param>
/// <param name="SpillLoadBytes">Spill loads from ptxas's verbose log, when the log was available.</param>
public sealed record CubinKernelInfo(
    string Name,
    int Registers,
    int StaticSharedBytes,
    int SharedSectionBytes,
    int FrameBytes,
    int MaxStackBytes,
    int ParamBytes,
    int? MaxThreadsPerBlock,
    int? SpillStoreBytes,
    int? SpillLoadBytes);
