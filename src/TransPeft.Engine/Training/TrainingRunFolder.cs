namespace TransPeft.Engine.Training;

/// <summary>
/// The output folder of one training run (<see cref="TrainingOptions.Output"/>) as the trainer lays it out, for a
/// host that drives runs over time: is the run finished, where is its latest checkpoint to resume from, where are its
/// metrics. A view of paths only; it reads the folder when asked and never writes.
/// <code>
/// OUT/final/                     the trained weights (a PEFT adapter, or a model folder for full fine-tuning);
///                                written atomically, so present means complete
/// OUT/checkpoints/step-NNNNNNNN/ resumable checkpoints (pass OUT as resumeFrom to <see cref="TrainingRun"/>.Execute)
/// OUT/metrics.jsonl              one JSON object per line: step lines (step, loss, lr, grad_norm, tokens, targets,
///                                tokens_per_s, elapsed, epoch) and evaluation lines (step, val_loss, val_targets, elapsed)
/// </code>
/// </summary>
public sealed class TrainingRunFolder(string path)
{
    /// <summary>The metrics log's file name in the run folder.</summary>
    public const string MetricsFileName = MetricsLog.FileName;

    /// <summary>The final weights' folder name in the run folder.</summary>
    public const string FinalWeightsName = Trainer.FinalWeightsDir;

    public string Path { get; } = path;

    /// <summary>OUT/final: the trained weights once the run has finished.</summary>
    public string FinalWeights => System.IO.Path.Combine(Path, FinalWeightsName);

    /// <summary>True when the run finished and saved its final weights.</summary>
    public bool IsFinished => Directory.Exists(FinalWeights);

    /// <summary>OUT/metrics.jsonl (it may not exist yet).</summary>
    public string Metrics => System.IO.Path.Combine(Path, MetricsFileName);

    /// <summary>The newest complete checkpoint's folder, or null when the run saved none (or the folder does not exist).</summary>
    public string? LatestCheckpoint => new CheckpointStore(Path).Latest();
}
