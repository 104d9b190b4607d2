using TransPeft.Engine.Text;

namespace TransPeft.Engine.Training;

/// <summary>The tokenized examples of a run: training set and optional validation set.</summary>
internal sealed record TrainingData(TokenizedDataset Train, TokenizedDataset? Validation)
{
    /// <summary>
    /// Loads options.Data (and options.ValData, or holds out options.ValFraction of the training file,
    /// chosen by options.Seed) with the run's format, seq_len, packing and cache folder.
    /// </summary>
    /// <param name="vocabSize">The model's vocab_size: every id and label of both files is checked against it before training starts.</param>
    public static (TrainingData Data, DatasetReport Train, DatasetReport? Validation) Load(TrainingOptions options, DatasetTokenizer tokenizer, int? vocabSize = null)
    {
        var path = options.Data ?? throw new TrainingConfigException("training options", "data", "a training data file (data in the config, or --data)");
        var (all, trainReport) = DatasetLoader.Load(path, options.DataFormat, tokenizer, options.SeqLen, options.Pack, options.CacheDir, vocabSize);
        if (options.ValData is { } valPath)
        {
            var (val, valReport) = DatasetLoader.Load(valPath, options.DataFormat, tokenizer, options.SeqLen, options.Pack, options.CacheDir, vocabSize);
            return (new TrainingData(all, val), trainReport, valReport);
        }
        if (options.ValFraction > 0)
        {
            var (train, val) = DatasetSplit.Split(all, options.ValFraction, (ulong)options.Seed);
            return (new TrainingData(train, val), trainReport, null);
        }
        return (new TrainingData(all, null), trainReport, null);
    }
}
