namespace TransPeft.Cuda.Compile;

/// <summary>A header handed to NVRTC in memory: <c>#include "IncludeName"</c> resolves to <see cref="Text"/>.</summary>
public sealed record KernelHeader(string IncludeName, string Text);
