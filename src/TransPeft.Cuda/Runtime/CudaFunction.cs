using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// A kernel in a loaded module. <see cref="Launch"/> allocates nothing on the managed heap: the arguments arrive
/// as a stack-allocated <c>params ReadOnlySpan&lt;KernelArg&gt;</c>, the pointer array that
/// <c>cuLaunchKernel</c> wants is <c>stackalloc</c>ed, and errors are checked against constant call names.
/// </summary>
public sealed unsafe class CudaFunction
{
    private readonly CudaModule _module;

    internal CudaFunction(CudaModule module, nint handle, string name)
    {
        _module = module;
        Handle = handle;
        Name = name;
    }

    public nint Handle { get; }
    public string Name { get; }
    public CudaModule Module => _module;

    /// <summary>
    /// Queues the kernel: <paramref name="grid"/> blocks of <paramref name="block"/> threads with
    /// <paramref name="sharedBytes"/> of dynamic shared memory on <paramref name="stream"/> (null: the legacy
    /// default stream). Each argument must match the kernel's parameter (a <see cref="DevicePtr"/> or buffer for a
    /// pointer, an int for an int ...): the driver copies as many bytes as the parameter has.
    /// </summary>
    public void Launch(Dim3 grid, Dim3 block, uint sharedBytes, CudaStream? stream, params ReadOnlySpan<KernelArg> args)
    {
        var streamHandle = stream is null ? 0 : stream.Handle;
        fixed (KernelArg* a = args)
        {
            void** pointers = stackalloc void*[args.Length];
            for (var i = 0; i < args.Length; i++) pointers[i] = a + i;
            LaunchRaw(grid, block, sharedBytes, streamHandle, pointers);
        }
    }

    /// <summary>The raw form: <paramref name="argumentPointers"/> holds one pointer per kernel parameter.</summary>
    public void LaunchRaw(Dim3 grid, Dim3 block, uint sharedBytes, nint stream, void** argumentPointers)
    {
        _module.Context.MakeCurrent();
        Check.Driver(CuDriver.cuLaunchKernel(Handle, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, stream, argumentPointers, null),
            nameof(CuDriver.cuLaunchKernel));
    }

    public int GetAttribute(CuFunctionAttribute attribute)
    {
        _module.Context.MakeCurrent();
        int v;
        Check.Driver(CuDriver.cuFuncGetAttribute(&v, attribute, Handle), nameof(CuDriver.cuFuncGetAttribute));
        return v;
    }

    public int Registers => GetAttribute(CuFunctionAttribute.NumRegisters);
    public int StaticSharedBytes => GetAttribute(CuFunctionAttribute.SharedSizeBytes);
    public int LocalBytes => GetAttribute(CuFunctionAttribute.LocalSizeBytes);
    public int MaxThreadsPerBlock => GetAttribute(CuFunctionAttribute.MaxThreadsPerBlock);

    /// <summary>Kernels that want more than 48 KiB of dynamic shared memory must opt in first.</summary>
    public void SetMaxDynamicSharedBytes(int bytes)
    {
        _module.Context.MakeCurrent();
        Check.Driver(CuDriver.cuFuncSetAttribute(Handle, CuFunctionAttribute.MaxDynamicSharedSizeBytes, bytes), nameof(CuDriver.cuFuncSetAttribute));
    }

    /// <summary>How many blocks of <paramref name="blockSize"/> threads fit on one SM at once.</summary>
    public int MaxActiveBlocksPerMultiprocessor(int blockSize, int dynamicSharedBytes = 0)
    {
        _module.Context.MakeCurrent();
        int n;
        Check.Driver(CuDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, Handle, blockSize, (nuint)dynamicSharedBytes),
            nameof(CuDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor));
        return n;
    }

    public override string ToString() => Name;
}
