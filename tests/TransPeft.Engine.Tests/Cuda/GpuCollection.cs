namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// Every test class that touches a real GPU runs in this one collection, one test at a time: they share the
/// device's primary context, and one class capturing a CUDA graph while another synchronizes the device (a
/// <c>cublasDestroy</c> does) would invalidate the capture. tools/gpu-check.sh selects these classes by name.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "GPU";
}
