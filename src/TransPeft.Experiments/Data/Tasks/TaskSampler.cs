using TransPeft.Experiments.Data.Text;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>
/// Deterministic train/test split with capped, balanced or stratified samples. Items are ordered by a
/// seeded hash of their keys (<see cref="StableHash"/>), so the result depends only on the seed and the
/// items, never on file listing order. Items that share a split group (the chunks of one speech) always
/// land on the same side, so the test set holds only unseen groups.
/// <para>
/// Per stratum (label or group), split groups are taken in hash order into the test pool until the
/// stratum's test quota is met (at most <see cref="SamplingOptions.MaxTestShare"/> of the stratum); the
/// leftover items of the last test group are dropped rather than put in training; the remaining groups
/// form the training pool, from which the training sample is drawn.
/// </para>
/// </summary>
public static class TaskSampler
{
    public sealed record Split<T>(IReadOnlyList<T> Train, IReadOnlyList<T> Test);

    /// <param name="items">All candidate items.</param>
    /// <param name="key">Unique, stable key of an item.</param>
    /// <param name="splitGroup">Items with the same value stay on the same side of the split.</param>
    /// <param name="stratum">Label or group the balance refers to; must be constant within a split group.</param>
    public static Split<T> SplitAndSample<T>(IReadOnlyList<T> items, Func<T, string> key, Func<T, string> splitGroup, Func<T, string> stratum, SamplingOptions options)
    {
        var strata = items.GroupBy(stratum).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        var stratumOfGroup = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            var g = splitGroup(item);
            var st = stratum(item);
            if (stratumOfGroup.TryGetValue(g, out var seen) && seen != st)
                throw new ArgumentException($"split group '{g}' spans the strata '{seen}' and '{st}'; a group must have one label/group");
            stratumOfGroup[g] = st;
        }
        var testQuota = Quotas(strata.ToDictionary(s => s.Key, s => s.Count()), options.TestCount, options.TestMode,
            s => (int)Math.Floor(options.MaxTestShare * s));

        var testPool = new List<T>();
        var trainPool = new List<T>();
        foreach (var s in strata)
        {
            int quota = testQuota[s.Key];
            var groups = StableHash.Shuffle(s.GroupBy(splitGroup).ToList(), g => g.Key, options.Seed, "split-group");
            int taken = 0;
            foreach (var g in groups)
            {
                if (taken < quota)
                {
                    var inGroup = StableHash.Shuffle(g, key, options.Seed, "in-group");
                    var take = inGroup.Take(quota - taken).ToList();
                    testPool.AddRange(take);
                    taken += take.Count;
                }
                else trainPool.AddRange(g);
            }
        }
        var train = Sample(trainPool, key, stratum, options.TrainCount, options.TrainMode, options.Seed, "train");
        var test = Sample(testPool, key, stratum, options.TestCount, options.TestMode, options.Seed, "test");
        return new Split<T>(train, test);
    }

    /// <summary>A capped sample of <paramref name="pool"/>, in seeded hash order (strata interleaved).</summary>
    public static List<T> Sample<T>(IReadOnlyList<T> pool, Func<T, string> key, Func<T, string> stratum, int count, SamplingMode mode, ulong seed, string salt)
    {
        var byStratum = pool.GroupBy(stratum).ToDictionary(g => g.Key, g => StableHash.Shuffle(g, key, seed, salt + ":pick"));
        var quotas = Quotas(byStratum.ToDictionary(kv => kv.Key, kv => kv.Value.Count), count, mode, n => n);
        var chosen = byStratum.SelectMany(kv => kv.Value.Take(quotas[kv.Key]));
        return StableHash.Shuffle(chosen, key, seed, salt + ":order");
    }

    /// <summary>Items per stratum for a sample of <paramref name="count"/>, each at most <paramref name="limit"/>(its size).</summary>
    private static Dictionary<string, int> Quotas(Dictionary<string, int> sizes, int count, SamplingMode mode, Func<int, int> limit)
    {
        var quotas = new Dictionary<string, int>();
        if (sizes.Count == 0) return quotas;
        if (mode == SamplingMode.Balanced)
        {
            int per = Math.Min(count / sizes.Count, sizes.Values.Min(n => limit(n)));
            foreach (var k in sizes.Keys) quotas[k] = per;
            return quotas;
        }
        // Stratified: largest-remainder apportionment of count by stratum size, then each capped by its limit.
        long total = sizes.Values.Sum(n => (long)n);
        int target = (int)Math.Min(count, total);
        var exact = sizes.ToDictionary(kv => kv.Key, kv => (double)target * kv.Value / total);
        foreach (var kv in exact) quotas[kv.Key] = (int)Math.Floor(kv.Value);
        int left = target - quotas.Values.Sum();
        foreach (var k in exact.OrderByDescending(kv => kv.Value - Math.Floor(kv.Value)).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key))
        {
            if (left-- <= 0) break;
            quotas[k]++;
        }
        foreach (var k in sizes.Keys) quotas[k] = Math.Min(quotas[k], limit(sizes[k]));
        return quotas;
    }
}
