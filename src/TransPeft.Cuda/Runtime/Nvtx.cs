using System.Runtime.InteropServices;
using System.Text;
using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// NVTX ranges: named spans that Nsight Systems / Nsight Compute show on the timeline. The library is optional:
/// <c>libnvtx3interop.so.1</c> (NVTX 3's ABI for non-C callers) is probed first, then <c>libnvToolsExt.so.1</c>;
/// without either every call is a no-op. Pushing allocates nothing (the UTF-8 name goes to the stack).
/// </summary>
public static unsafe class Nvtx
{
    private static readonly delegate* unmanaged<byte*, int> s_push;
    private static readonly delegate* unmanaged<int> s_pop;

    static Nvtx()
    {
        if (!CudaLibraryResolver.TryGet(CudaLibraryKind.Nvtx, out var lib, out _)) return;
        if (NativeLibrary.TryGetExport(lib!.Handle, "nvtxRangePushA", out var push) &&
            NativeLibrary.TryGetExport(lib.Handle, "nvtxRangePop", out var pop))
        {
            s_push = (delegate* unmanaged<byte*, int>)push;
            s_pop = (delegate* unmanaged<int>)pop;
            LibraryPath = lib.Path;
        }
    }

    /// <summary>True when an NVTX library was found and ranges reach it.</summary>
    public static bool IsAvailable => s_push != null;

    /// <summary>The NVTX library in use, or null.</summary>
    public static string? LibraryPath { get; }

    public static void Push(string name)
    {
        if (s_push == null) return;
        var max = Encoding.UTF8.GetMaxByteCount(name.Length) + 1;
        Span<byte> buf = max <= 512 ? stackalloc byte[max] : new byte[max];
        var n = Encoding.UTF8.GetBytes(name, buf);
        buf[n] = 0;
        fixed (byte* p = buf) s_push(p);
    }

    public static void Pop()
    {
        if (s_pop != null) s_pop();
    }

    /// <summary><c>using (Nvtx.Range("forward")) { ... }</c></summary>
    public static Scope Range(string name)
    {
        Push(name);
        return default;
    }

    /// <summary>Pops the range when disposed.</summary>
    public readonly struct Scope : IDisposable
    {
        public void Dispose() => Pop();
    }
}
