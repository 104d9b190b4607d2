namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// CUDA stream capture for a device emulated on the host (<see cref="HostEmulatedDevice"/> and the tests' C# twin):
/// while capturing, every operation queued on the stream (kernel launch, GEMM, memset, asynchronous copy) is recorded
/// instead of run, with its arguments COPIED as they are at capture: pointers, sizes and scalars. A replay re-issues
/// the records with those values, as <c>cuGraphLaunch</c> does. So a value that should change per step but was baked
/// into a recorded argument (a loss scale, a random stream's step, a batch size) gives the captured step's result on
/// replay, and the test comparing replays with plain launches catches it without a GPU. An asynchronous copy records
/// its host SOURCE ADDRESS, not the bytes: a replay reads that host memory again, as a graph's memcpy node does.
/// <para>
/// The driver's rules for a capturing stream, where cheap to mirror: an allocation, a free, a synchronous copy or a
/// synchronization during capture fails (the driver returns CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED or _INVALIDATED) and
/// invalidates the capture, so the following <see cref="End"/> fails too; a second <see cref="Begin"/> fails; a graph
/// replayed after a buffer it uses was freed fails on the pointer check of the replayed operation (on a GPU it reads
/// freed memory).
/// </para>
/// </summary>
internal sealed class EmulatedStreamCapture(string deviceName)
{
    private List<Action>? _nodes;
    private string? _invalidatedBy;

    /// <summary>True between <see cref="Begin"/> and <see cref="End"/>/<see cref="Abort"/>.</summary>
    public bool Active => _nodes is not null;

    /// <summary>Graphs instantiated so far (tests).</summary>
    public int Captures { get; private set; }

    public void Begin()
    {
        if (Active) throw new InvalidOperationException($"{deviceName}: the stream is already capturing (cuStreamBeginCapture: CUDA_ERROR_ILLEGAL_STATE)");
        _nodes = [];
        _invalidatedBy = null;
    }

    /// <summary>Records <paramref name="node"/> when capturing (and returns true); otherwise the caller runs the operation now.
    /// The node must hold copies of every argument, never a reference to caller-owned state.</summary>
    public bool TryRecord(Action node)
    {
        if (_nodes is null) return false;
        _nodes.Add(node);
        return true;
    }

    /// <summary>Throws (and invalidates the capture) when <paramref name="operation"/>, which a capturing stream does not
    /// permit, is called during capture.</summary>
    public void RequireNotCapturing(string operation)
    {
        if (_nodes is null) return;
        _invalidatedBy ??= operation;
        throw new InvalidOperationException($"{deviceName}: {operation} is not permitted while the stream is capturing a graph (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED); the capture is invalidated");
    }

    public IDeviceGraph End()
    {
        var nodes = _nodes ?? throw new InvalidOperationException($"{deviceName}: the stream is not capturing (cuStreamEndCapture: CUDA_ERROR_ILLEGAL_STATE)");
        _nodes = null;
        if (_invalidatedBy is { } why)
            throw new InvalidOperationException($"{deviceName}: the capture was invalidated by {why} (cuStreamEndCapture: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED)");
        Captures++;
        return new Graph([.. nodes]);
    }

    public void Abort()
    {
        _nodes = null;
        _invalidatedBy = null;
    }

    /// <summary>The instantiated graph: its records, re-issued in order on every launch (through the device's own entry
    /// points, so each replayed operation is checked again, and a replay inside another capture is recorded there).</summary>
    private sealed class Graph(Action[] nodes) : IDeviceGraph
    {
        private Action[]? _nodes = nodes;

        public void Launch()
        {
            var nodes = _nodes;
            ObjectDisposedException.ThrowIf(nodes is null, this);
            foreach (var node in nodes) node();
        }

        public void Dispose() => _nodes = null;
    }
}
