namespace TransPeft.Cuda.Native;

/// <summary><c>CUmemPool_attribute</c> (numbers from cuda.h). 1-3 take an int, 4-8 a 64-bit value.</summary>
public enum CuMemPoolAttribute
{
    ReuseFollowEventDependencies = 1,
    ReuseAllowOpportunistic = 2,
    ReuseAllowInternalDependencies = 3,
    ReleaseThreshold = 4,
    ReservedMemCurrent = 5,
    ReservedMemHigh = 6,
    UsedMemCurrent = 7,
    UsedMemHigh = 8,
}
