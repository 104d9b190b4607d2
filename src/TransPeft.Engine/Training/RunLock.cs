using System.Globalization;
using System.Runtime.InteropServices;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Training;

/// <summary>
/// The lock a training run holds on its output folder, so that a second run on the same folder is refused
/// instead of both writing checkpoints into it.
/// <para>
/// OUT/.tpeft.lock is opened exclusively: .NET takes an flock(2) on it on Unix (a share lock on Windows), and
/// the kernel drops that lock when the process ends in any way, kill -9 included. So a lock left by a dead run
/// is never in the way: opening succeeds, and the owner file OUT/.tpeft.lock.owner it left ("pid N on HOST")
/// tells that a stale lock was taken over. Where flock does not work (some network file systems, or
/// DOTNET_SYSTEM_IO_DISABLEFILELOCKING), the owner file is the second line of defence: a live process with that
/// pid on this host keeps the folder locked.
/// </para>
/// </summary>
public sealed partial class RunLock : IDisposable
{
    public const string FileName = ".tpeft.lock";
    public const string OwnerFileName = ".tpeft.lock.owner";

    private readonly FileStream _handle;
    private readonly string _ownerPath;

    /// <summary>The pid of the dead run whose lock this one took over, or null when the folder was free.</summary>
    public int? TookOverFromPid { get; }

    public string Folder { get; }

    private RunLock(string folder, FileStream handle, string ownerPath, int? tookOver)
    {
        Folder = folder; _handle = handle; _ownerPath = ownerPath; TookOverFromPid = tookOver;
    }

    /// <summary>Takes the lock of <paramref name="folder"/> (created when missing), or throws <see cref="OutputFolderException"/>.</summary>
    public static RunLock Acquire(string folder)
    {
        Directory.CreateDirectory(folder);
        var lockPath = Path.Combine(folder, FileName);
        var ownerPath = Path.Combine(folder, OwnerFileName);
        FileStream handle;
        try
        {
            handle = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(lockPath))
        {
            throw new OutputFolderException(folder, $"{folder}: another training run is using this folder ({ReadOwner(ownerPath)?.Text ?? "owner unknown"}); "
                + "wait for it to finish, or train into another folder");
        }
        try
        {
            int? tookOver = null;
            if (ReadOwner(ownerPath) is { } owner)
            {
                if (owner.Pid != Environment.ProcessId && owner.Host == Environment.MachineName && IsAlive(owner.Pid))
                    throw new OutputFolderException(folder, $"{folder}: another training run is using this folder ({owner.Text}); "
                        + $"wait for it to finish, or, if pid {owner.Pid} is not a training run, delete {ownerPath}");
                tookOver = owner.Pid;
            }
            AtomicFile.WriteAllText(ownerPath, $"pid {Environment.ProcessId} on {Environment.MachineName} since {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ}\n");
            return new RunLock(folder, handle, ownerPath, tookOver);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Releases the lock. The owner file goes first (while the lock still keeps others out); the empty lock file
    /// stays: deleting it would let a waiting opener hold a lock on a file no longer in the folder.
    /// </summary>
    public void Dispose()
    {
        try { File.Delete(_ownerPath); } catch (IOException) { }
        _handle.Dispose();
    }

    private sealed record Owner(int Pid, string Host, string Text);

    private static Owner? ReadOwner(string ownerPath)
    {
        string text;
        try { text = File.ReadAllText(ownerPath).Trim(); }
        catch (IOException) { return null; }
        var parts = text.Split(' ');
        if (parts.Length < 4 || parts[0] != "pid" || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) return null;
        return new Owner(pid, parts[3], text);
    }

    private static bool IsAlive(int pid)
    {
        // Windows: the share lock above is exact, there is no second line to hold.
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return false;
        // kill(pid, 0) delivers no signal: 0 means the process exists, EPERM (1) that it exists under another user.
        // (The engine queries, never starts, processes: no System.Diagnostics.Process here.)
        return Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == 1;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
