namespace TransPeft.Engine.Model;

/// <summary>Llama-3 style RoPE frequency scaling (rope_type "llama3").</summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);
