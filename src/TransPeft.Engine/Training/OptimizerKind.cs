namespace TransPeft.Engine.Training;

public enum OptimizerKind { AdamW, Sgd }
