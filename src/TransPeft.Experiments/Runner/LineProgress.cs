namespace TransPeft.Experiments;

/// <summary>An <see cref="IProgress{T}"/> that calls its handler at once on the reporting thread
/// (<see cref="Progress{T}"/> posts to the thread pool, so lines could arrive late and out of order).</summary>
internal sealed class LineProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
