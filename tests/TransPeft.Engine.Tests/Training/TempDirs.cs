namespace TransPeft.Engine.Tests.Training;

/// <summary>
/// Scratch folders for the training tests under one per-process root. The root is removed at process exit
/// when the host exits normally; roots of test processes that are gone are removed by the next run.
/// </summary>
internal static class TempDirs
{
    private static readonly string Root = CreateRoot();

    private static string CreateRoot()
    {
        const string prefix = "tpeft-training-tests-";
        foreach (var stale in Directory.GetDirectories(Path.GetTempPath(), prefix + "*"))
            if (int.TryParse(Path.GetFileName(stale)[prefix.Length..], out int pid) && !IsAlive(pid))
                try { Directory.Delete(stale, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        var root = Path.Combine(Path.GetTempPath(), prefix + Environment.ProcessId);
        Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return root;
    }

    private static bool IsAlive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public static string Create(string prefix) => Directory.CreateDirectory(Path.Combine(Root, $"{prefix}-{Guid.NewGuid():N}")).FullName;
}
