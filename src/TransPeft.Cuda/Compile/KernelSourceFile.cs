namespace TransPeft.Cuda.Compile;

/// <summary>One kernel source file (<c>kernels/NAME.cu</c>) and its text.</summary>
public sealed record KernelSourceFile(string Name, string Text);
