namespace TransPeft.Engine.Compute.Cuda;

/// <summary>A recorded, instantiated sequence of device work that can be replayed on the device's stream.</summary>
internal interface IDeviceGraph : IDisposable
{
    void Launch();
}
