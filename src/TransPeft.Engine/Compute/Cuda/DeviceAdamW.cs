using TransPeft.Engine.Training;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The trainer's optimizer for a <see cref="CudaTransformer"/> in device-optimizer mode (the default for CUDA
/// training with AdamW): clipping and AdamW run on the GPU (<see cref="CudaAdamW"/>), so a step downloads only the
/// loss and the gradient norm, never the gradients. The host sees the weights and moments only at a checkpoint:
/// <see cref="Optimizer.WeightsToHost"/> before the weights are saved, the moments before the optimizer state is
/// written; on resume the restored weights and moments are uploaded back. The state file is Training/AdamW's
/// ("adamw", exp_avg / exp_avg_sq per parameter, step), so a checkpoint resumes on either backend.
/// </summary>
internal sealed class DeviceAdamW : Optimizer
{
    private readonly CudaTransformer _model;
    private readonly CudaAdamW _adam;
    // Host copies of the moments, used only while saving or loading a checkpoint.
    private readonly float[][] _m, _v;

    public override string Kind => "adamw";

    public DeviceAdamW(CudaTransformer model, CudaAdamW adam) : base(model.TrainableParameters)
    {
        _model = model;
        _adam = adam;
        _m = Parameters.Select(p => new float[p.Length]).ToArray();
        _v = Parameters.Select(p => new float[p.Length]).ToArray();
    }

    /// <summary>An update without clipping; throws when the gradient norm is not finite (nothing is updated then).</summary>
    public override void Update(double lr)
    {
        double norm = ClipAndUpdate(lr, 0);
        if (!double.IsFinite(norm)) throw new InvalidOperationException($"the gradient norm is {norm}: nothing was updated");
    }

    public override double ClipAndUpdate(double lr, double maxGradNorm)
    {
        double norm = _adam.Update(lr, maxGradNorm);
        Step = _adam.Step;
        return norm;
    }

    public override void WeightsToHost() => _model.SyncToHost();

    public override void WeightsFromHost() => _model.UploadFromHost();

    protected override void OnSaving()
    {
        var moments = _adam.DownloadMoments();
        for (int k = 0; k < moments.Length; k++)
        {
            moments[k].M.CopyTo(_m[k], 0);
            moments[k].V.CopyTo(_v[k], 0);
        }
    }

    protected override IEnumerable<(string, float[], Model.Parameter)> State()
    {
        for (int k = 0; k < Parameters.Count; k++)
        {
            yield return ("exp_avg", _m[k], Parameters[k]);
            yield return ("exp_avg_sq", _v[k], Parameters[k]);
        }
    }

    protected override void OnLoaded() => _adam.Restore(Step, _m.Zip(_v).ToArray());
}
