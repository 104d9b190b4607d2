using System.Text;

namespace TransPeft.Experiments.Data.Text;

/// <summary>
/// A seeded 64-bit hash of a string that is the same on every machine and .NET version (FNV-1a over the
/// UTF-8 bytes, seeded and finished with the SplitMix64 mixer). Data splits and samples order items by
/// this hash of (seed, item key), so they depend only on the seed and the keys, not on the order files
/// were listed in or on System.Random's implementation.
/// </summary>
public static class StableHash
{
    public static ulong Of(ulong seed, string key)
    {
        ulong h = Mix(seed ^ 0x9E3779B97F4A7C15UL) ^ 0xCBF29CE484222325UL;
        Span<byte> buffer = stackalloc byte[256];
        var bytes = key.Length <= 64 ? buffer[..Encoding.UTF8.GetBytes(key, buffer)] : Encoding.UTF8.GetBytes(key);
        foreach (var b in bytes) { h ^= b; h *= 0x100000001B3UL; }
        return Mix(h);
    }

    /// <summary>SplitMix64's finaliser: every input bit affects every output bit.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Items in the order of their keys' hashes (ties by key): a seeded shuffle that ignores input order.</summary>
    public static List<T> Shuffle<T>(IEnumerable<T> items, Func<T, string> key, ulong seed, string salt) =>
        items.Select(x => (x, k: key(x)))
             .OrderBy(p => Of(seed, salt + "\u0001" + p.k)).ThenBy(p => p.k, StringComparer.Ordinal)
             .Select(p => p.x).ToList();
}
