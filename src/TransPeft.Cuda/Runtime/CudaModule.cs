using System.Text;
using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>A loaded cubin (<c>CUmodule</c>) and the kernels looked up in it.</summary>
public sealed unsafe class CudaModule : CudaResource
{
    private readonly Dictionary<string, CudaFunction> _functions = new(StringComparer.Ordinal);

    private CudaModule(CudaContext context, nint handle) : base(context, handle) { }

    /// <summary>Loads a cubin (or PTX, or fatbin) image. A cubin built for another architecture fails with
    /// CUDA_ERROR_NO_BINARY_FOR_GPU; one built by an NVRTC newer than the driver with CUDA_ERROR_UNSUPPORTED_PTX_VERSION
    /// or CUDA_ERROR_INVALID_IMAGE: the message then carries the device's architecture and driver version.</summary>
    public static CudaModule Load(CudaContext context, byte[] image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Length == 0) throw new ArgumentException("The module image is empty.", nameof(image));
        context.MakeCurrent();
        nint m;
        CuResult r;
        fixed (byte* p = image) r = CuDriver.cuModuleLoadData(&m, p);
        if (r != CuResult.Success)
            throw Check.DriverException(r, nameof(CuDriver.cuModuleLoadData),
                $"device {context.Name}, {context.Arch}; driver CUDA {context.DriverVersion / 1000}.{context.DriverVersion % 1000 / 10}");
        return new CudaModule(context, m);
    }


    /// <summary>The kernel named <paramref name="name"/> (its lowered, extern "C" or mangled name), looked up once.</summary>
    public CudaFunction GetFunction(string name)
    {
        lock (_functions)
        {
            if (_functions.TryGetValue(name, out var f)) return f;
            Context.MakeCurrent();
            var bytes = Encoding.UTF8.GetBytes(name + "\0");
            nint h;
            CuResult r;
            fixed (byte* p = bytes) r = CuDriver.cuModuleGetFunction(&h, Handle, p);
            if (r != CuResult.Success) throw Check.DriverException(r, nameof(CuDriver.cuModuleGetFunction), $"kernel '{name}'");
            f = new CudaFunction(this, h, name);
            _functions[name] = f;
            return f;
        }
    }

    protected override void Release(nint handle) =>
        Check.Driver(CuDriver.cuModuleUnload(handle), nameof(CuDriver.cuModuleUnload));
}
