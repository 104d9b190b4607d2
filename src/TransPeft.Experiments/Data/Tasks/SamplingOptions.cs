namespace TransPeft.Experiments.Data.Tasks;

/// <summary>How a task's items are split and capped.</summary>
/// <param name="Seed">Seed of every hash-ordered choice.</param>
/// <param name="TrainCount">At most this many training items.</param>
/// <param name="TestCount">At most this many test items.</param>
/// <param name="TrainMode">Balanced or stratified training sample.</param>
/// <param name="TestMode">Balanced or stratified test sample.</param>
/// <param name="MaxTestShare">The test set takes at most this share of any stratum's items, so training keeps the rest.</param>
public sealed record SamplingOptions(ulong Seed, int TrainCount = 1000, int TestCount = 300,
    SamplingMode TrainMode = SamplingMode.Balanced, SamplingMode TestMode = SamplingMode.Balanced, double MaxTestShare = 0.5);
