namespace TransPeft.Cuda;

internal static class Placeholder { }
