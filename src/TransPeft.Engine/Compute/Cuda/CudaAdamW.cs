using TransPeft.Cuda;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// AdamW on the GPU for a <see cref="CudaTransformer"/> in device-optimizer mode: the same update as
/// Training/AdamW.cs (PyTorch's order; weight decay only for matrices) on the fp32 master weights, refreshing their
/// bf16 copies, with global-norm clipping as Training/GradientClipping.cs computed on the device. One
/// <see cref="Step"/> is: the squared norm of every gradient (one launch: the gradient block is contiguous), its
/// square root and the clip coefficient, a download of the norm (the host decides whether the step is finite, as the
/// CPU trainer does), then at most two AdamW launches (decaying and non-decaying tensors).
/// Moments live in an arena of their own, allocated once.
/// </summary>
internal sealed class CudaAdamW : IDisposable
{
    private readonly CudaTransformer _model;
    private readonly IComputeDevice _device;
    private readonly DevicePtr _base;
    private readonly ArenaRegion _m, _v, _partial, _norm, _clip;
    private readonly float[] _normHost = new float[1];
    private bool _disposed;

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }

    /// <summary>Updates applied so far.</summary>
    public long Step { get; private set; }

    public CudaAdamW(CudaTransformer model, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.0)
    {
        if (!model.Options.DeviceOptimizer)
            throw new InvalidOperationException("CudaAdamW updates the device's master weights: make the CudaTransformer with DeviceOptimizer = true (in host-optimizer mode the host's Trainer and AdamW own the weights)");
        _model = model;
        _device = model.Device;
        Beta1 = beta1; Beta2 = beta2; Epsilon = eps; WeightDecay = weightDecay;
        var layout = new ArenaLayout();
        long n = model.ParameterLayout.TrainableElements;
        _m = layout.Add("adamw.exp_avg", n, 4);
        _v = layout.Add("adamw.exp_avg_sq", n, 4);
        _partial = layout.Add("grad_norm.partial", model.Ops.Plan.NormPartials, 4);
        _norm = layout.Add("grad_norm", 1, 4);
        _clip = layout.Add("grad_norm.clip_scale", 1, 4);
        _base = _device.Allocate(layout.TotalBytes);
        _device.Zero(_base, layout.TotalBytes);
    }

    private DevicePtr At(ArenaRegion r) => _base.OffsetBytes(r.Offset);

    /// <summary>
    /// Clips the gradients to <paramref name="maxNorm"/> (0: no clipping) and applies one AdamW update with
    /// learning rate <paramref name="lr"/>. Returns the gradient norm before clipping. When that norm is not finite
    /// nothing is updated (the caller treats it as divergence, as Trainer does).
    /// </summary>
    public double Update(double lr, double maxNorm)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var ops = _model.Ops;
        var layout = _model.ParameterLayout;
        long n = layout.TrainableElements;
        if (n == 0) return 0;
        var grad = _model.ParameterPointer(layout.Grad);
        _device.PushRange("optimizer");
        ops.GlobalNormSquared(At(_partial), grad, n, accumulate: false);
        ops.GlobalNormFinalize(At(_norm), At(_clip), At(_partial), ops.Plan.NormPartials, (float)maxNorm);
        _device.PopRange();
        _device.Download<float>(_normHost, At(_norm));
        double norm = _normHost[0];
        if (!double.IsFinite(norm)) return norm;

        Step++;
        _device.PushRange("optimizer");
        var master = _model.ParameterPointer(layout.Master);
        var bf16 = _model.ParameterPointer(layout.TrainableBf16);
        long decaying = layout.DecayingElements;
        void Group(long start, long count, double wd)
        {
            if (count <= 0) return;
            ops.AdamWStep(master.OffsetBytes(start * 4), bf16.OffsetBytes(start * 2), grad.OffsetBytes(start * 4),
                At(_m).OffsetBytes(start * 4), At(_v).OffsetBytes(start * 4), count,
                (float)lr, (float)Beta1, (float)Beta2, (float)Epsilon, (float)wd, checked((int)Step), At(_clip));
        }
        Group(0, decaying, WeightDecay);
        Group(decaying, n - decaying, 0);
        _device.PopRange();
        return norm;
    }

    /// <summary>The first and second moments of every trainable parameter, in <see cref="CudaTransformer.TrainableParameters"/>
    /// order (tests, and saving optimizer state).</summary>
    public (float[] M, float[] V)[] DownloadMoments()
    {
        var layout = _model.ParameterLayout;
        var all = new float[layout.TrainableElements];
        var allV = new float[layout.TrainableElements];
        _device.Download<float>(all, At(_m));
        _device.Download<float>(allV, At(_v));
        return _model.TrainableParameters.Select(p =>
        {
            var d = layout[p];
            return (all.AsSpan((int)d.TrainableIndex, d.Length).ToArray(), allV.AsSpan((int)d.TrainableIndex, d.Length).ToArray());
        }).ToArray();
    }

    /// <summary>Restores saved optimizer state: the update count and both moments, in <see cref="CudaTransformer.TrainableParameters"/>
    /// order (what <see cref="DownloadMoments"/> gave), so the next update is the one an uninterrupted run would make.</summary>
    public void Restore(long step, IReadOnlyList<(float[] M, float[] V)> moments)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var layout = _model.ParameterLayout;
        if (moments.Count != _model.TrainableParameters.Count)
            throw new ArgumentException($"expected moments of {_model.TrainableParameters.Count} parameters, got {moments.Count}", nameof(moments));
        var m = new float[layout.TrainableElements];
        var v = new float[layout.TrainableElements];
        for (int k = 0; k < moments.Count; k++)
        {
            var d = layout[_model.TrainableParameters[k]];
            moments[k].M.AsSpan(0, d.Length).CopyTo(m.AsSpan((int)d.TrainableIndex));
            moments[k].V.AsSpan(0, d.Length).CopyTo(v.AsSpan((int)d.TrainableIndex));
        }
        _device.Upload<float>(At(_m), m);
        _device.Upload<float>(At(_v), v);
        _device.Synchronize();
        Step = step;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _device.Free(_base);
    }
}
