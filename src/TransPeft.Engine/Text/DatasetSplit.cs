namespace TransPeft.Engine.Text;

/// <summary>
/// Splits one dataset into training and validation parts, reproducibly for a seed: a Philox permutation
/// (tag <see cref="DataOrder.TagSplit"/>) picks the validation examples; both parts keep file order.
/// </summary>
internal static class DatasetSplit
{
    /// <summary>Validation size for a fraction: round(fraction * n), at least 1 when fraction > 0, and leaving at least one training example.</summary>
    public static int ValidationCount(int n, double fraction)
    {
        if (fraction <= 0) return 0;
        int k = Math.Max(1, (int)Math.Round(fraction * n, MidpointRounding.AwayFromZero));
        return Math.Min(k, n - 1);
    }

    public static (TokenizedDataset Train, TokenizedDataset Validation) Split(TokenizedDataset all, double fraction, ulong seed)
    {
        int n = all.Count;
        int k = ValidationCount(n, fraction);
        if (k <= 0)
            throw new ArgumentException($"{all.Name}: {n} example(s) cannot be split with val_fraction = {fraction} (need at least 2 examples and a fraction > 0)");
        var perm = DataOrder.Permutation(n, seed, 0, DataOrder.TagSplit);
        var isVal = new bool[n];
        for (int i = 0; i < k; i++) isVal[perm[i]] = true;
        var train = Enumerable.Range(0, n).Where(i => !isVal[i]).ToArray();
        var val = Enumerable.Range(0, n).Where(i => isVal[i]).ToArray();
        string tag = $"val_fraction={fraction.ToString("R", System.Globalization.CultureInfo.InvariantCulture)},seed={seed}";
        return (all.Subset(train, $"train {tag}"), all.Subset(val, $"validation {tag}"));
    }
}
