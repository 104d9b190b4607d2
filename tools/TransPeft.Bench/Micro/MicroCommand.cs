namespace TransPeft.Bench.Micro;
internal static class MicroCommand { public static int Run(int threads, string? filter, bool quick, string[] rest) => 0; }
internal static class PeakFlops { public static void Print(int threads) { } }
