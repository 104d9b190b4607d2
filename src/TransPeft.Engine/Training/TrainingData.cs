using TransPeft.Engine.Text;

namespace TransPeft.Engine.Training;

/// <summary>The tokenized examples of a run: training set and optional validation set.</summary>
internal sealed record TrainingData(TokenizedDataset Train, TokenizedDataset? Validation);
