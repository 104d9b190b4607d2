using System.Text.Json.Serialization;
using TransPeft.Engine.Analysis;

namespace TransPeft.Engine.Evaluation;

/// <summary>
/// Source-generated JSON for the evaluation and analysis result records (no reflection, so NativeAOT builds
/// stay warning-free). snake_case names; NaN and infinities are written as "NaN"/"Infinity" strings.
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(ClassificationResult))]
[JsonSerializable(typeof(ExactMatchResult))]
[JsonSerializable(typeof(LossResult))]
[JsonSerializable(typeof(PairedComparison))]
[JsonSerializable(typeof(UpdateAnalysis))]
public partial class ResultJsonContext : JsonSerializerContext;
