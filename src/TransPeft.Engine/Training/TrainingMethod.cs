namespace TransPeft.Engine.Training;

/// <summary>What the optimizer updates: LoRA A/B only (base frozen), or every base weight.</summary>
public enum TrainingMethod { Lora, Full }
