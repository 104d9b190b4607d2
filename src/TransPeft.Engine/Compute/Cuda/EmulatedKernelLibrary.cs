using System.Runtime.InteropServices;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The real kernels/*.cu compiled for the host against the kernel emulator (tools/kernel-emulator: emu.h, emu_abi.h),
/// loaded from a shared library someone else built (TransPeft.KernelEmulation; the engine starts no compiler). One
/// exported trampoline per kernel, <c>int tpeft_emu_NAME(const unsigned* launch, void** args, int nargs)</c>, takes
/// the same argument array <c>cuLaunchKernel</c> does, so <see cref="HostEmulatedDevice"/> packs launches exactly as
/// <see cref="CudaDevice"/> does.
/// </summary>
internal sealed unsafe class EmulatedKernelLibrary : IDisposable
{
    /// <summary>The trampolines' calling convention; emu_abi.h's tpeft_emu_abi_version() must return it.</summary>
    public const int AbiVersion = 1;

    private nint _handle;
    private readonly delegate* unmanaged<uint*, void**, int, int>[] _kernels;
    private readonly delegate* unmanaged<byte*> _lastError;

    private EmulatedKernelLibrary(string path, nint handle, delegate* unmanaged<uint*, void**, int, int>[] kernels, delegate* unmanaged<byte*> lastError)
    {
        Path = path;
        _handle = handle;
        _kernels = kernels;
        _lastError = lastError;
    }

    public string Path { get; }

    /// <summary>Loads the library and resolves every kernel of <see cref="KernelCatalog"/>; false with one line saying
    /// what is missing or wrong.</summary>
    public static bool TryLoad(string path, out EmulatedKernelLibrary? library, out string reason)
    {
        library = null;
        if (!File.Exists(path)) { reason = $"no emulated kernel library at {path}"; return false; }
        if (!NativeLibrary.TryLoad(System.IO.Path.GetFullPath(path), out var handle))
        {
            reason = $"{path} does not load as a shared library (built for another machine?)";
            return false;
        }
        if (!NativeLibrary.TryGetExport(handle, "tpeft_emu_abi_version", out var versionFn) ||
            !NativeLibrary.TryGetExport(handle, "tpeft_emu_last_error", out var errorFn))
        {
            NativeLibrary.Free(handle);
            reason = $"{path} is not an emulated kernel library (no tpeft_emu_abi_version/tpeft_emu_last_error export)";
            return false;
        }
        int version = ((delegate* unmanaged<int>)versionFn)();
        if (version != AbiVersion)
        {
            NativeLibrary.Free(handle);
            reason = $"{path} has trampoline ABI {version}, this engine wants {AbiVersion}; rebuild it";
            return false;
        }
        var kernels = new delegate* unmanaged<uint*, void**, int, int>[KernelCatalog.All.Count];
        var missing = new List<string>();
        foreach (var k in KernelCatalog.All)
        {
            if (NativeLibrary.TryGetExport(handle, "tpeft_emu_" + k.Name, out var fn)) kernels[(int)k.Id] = (delegate* unmanaged<uint*, void**, int, int>)fn;
            else missing.Add(k.Name);
        }
        if (missing.Count > 0)
        {
            NativeLibrary.Free(handle);
            reason = $"{path} lacks the kernels {string.Join(", ", missing)} (built from other kernel sources?)";
            return false;
        }
        library = new EmulatedKernelLibrary(path, handle, kernels, (delegate* unmanaged<byte*>)errorFn);
        reason = "";
        return true;
    }

    /// <summary>Runs one launch to completion (the emulator has no queue). Throws when the kernel faults in the
    /// emulator (a trap, a misaligned ldmatrix or cp.async, a barrier only some threads reach).</summary>
    public void Launch(KernelId kernel, LaunchShape shape, void** args, int count)
    {
        ObjectDisposedException.ThrowIf(_handle == 0, this);
        uint* launch = stackalloc uint[7] { shape.Grid.X, shape.Grid.Y, shape.Grid.Z, shape.Block.X, shape.Block.Y, shape.Block.Z, shape.SharedBytes };
        int rc = _kernels[(int)kernel](launch, args, count);
        if (rc == 0) return;
        var name = KernelCatalog.Get(kernel).Name;
        if (rc < 0) throw new ArgumentException($"kernel {name}: the host-compiled kernel takes another number of arguments than the {count} passed ({Path} is stale?)");
        throw new InvalidOperationException($"kernel {name} faulted in the host emulation ({shape}): {Marshal.PtrToStringUTF8((nint)_lastError())}");
    }

    public void Dispose()
    {
        // The library stays mapped: its fiber stacks and statics are process-wide, and another backend may share it
        // (dlopen counts references, so freeing would not unmap it under them anyway).
        _handle = 0;
    }
}
