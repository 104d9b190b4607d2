namespace TransPeft.Engine.Sessions;

/// <summary>The device a session asked for cannot be used; <see cref="Reason"/> says what is missing (no driver, no GPU, ...).</summary>
public sealed class DeviceUnavailableException(string device, string reason)
    : InvalidOperationException($"device {device}: {reason}")
{
    public string Device { get; } = device;
    public string Reason { get; } = reason;
}
