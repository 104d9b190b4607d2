namespace TransPeft.Cuda.Native;

/// <summary><c>CUstreamCaptureMode</c>. The engine captures with <see cref="ThreadLocal"/>: only this thread's
/// unsafe calls (allocations, synchronisations) invalidate the capture, other threads go on untouched.</summary>
internal enum CuStreamCaptureMode
{
    Global = 0,
    ThreadLocal = 1,
    Relaxed = 2,
}
