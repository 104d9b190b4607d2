using System.Text;

namespace TransPeft.Engine.Text;

/// <summary>
/// Unicode Normalization Form C (canonical decomposition, canonical ordering, canonical composition;
/// UAX #15), for tokenizers whose tokenizer.json asks for it (Qwen2/Qwen3).
/// Why not string.Normalize: under InvariantGlobalization, which this project builds with (and NativeAOT
/// hosts want, having no ICU), it silently returns the text unchanged. The tables are generated from the
/// Unicode Character Database by tools/gen-unicode-nfc.py.
/// </summary>
internal static partial class UnicodeNfc
{
    // Hangul syllables are composed and decomposed by arithmetic, not tables.
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, byte> CombiningClass = BuildCombiningClasses();
    private static readonly Dictionary<int, int[]> Decomposition = BuildDecompositions();
    private static readonly Dictionary<long, int> Composition = BuildCompositions();

    private static Dictionary<int, byte> BuildCombiningClasses()
    {
        var d = new Dictionary<int, byte>(CombiningClassPairs.Length / 2);
        for (int i = 0; i < CombiningClassPairs.Length; i += 2) d[CombiningClassPairs[i]] = (byte)CombiningClassPairs[i + 1];
        return d;
    }

    private static Dictionary<int, int[]> BuildDecompositions()
    {
        var d = new Dictionary<int, int[]>();
        for (int i = 0; i < DecompositionRecords.Length;)
        {
            int cp = DecompositionRecords[i], n = DecompositionRecords[i + 1];
            d[cp] = DecompositionRecords.Slice(i + 2, n).ToArray();
            i += 2 + n;
        }
        return d;
    }

    private static Dictionary<long, int> BuildCompositions()
    {
        var d = new Dictionary<long, int>(CompositionTriples.Length / 3);
        for (int i = 0; i < CompositionTriples.Length; i += 3) d[Key(CompositionTriples[i], CompositionTriples[i + 1])] = CompositionTriples[i + 2];
        return d;
    }

    private static long Key(int first, int second) => ((long)first << 21) | (uint)second;

    private static int Ccc(int cp) => CombiningClass.TryGetValue(cp, out byte c) ? c : 0;

    public static string Normalize(string s)
    {
        // Every character below U+0300 is stable under NFC (none decomposes or combines with a
        // predecessor), so plain ASCII and Latin-1 text costs one scan.
        int firstHigh = 0;
        while (firstHigh < s.Length && s[firstHigh] < 0x300) firstHigh++;
        if (firstHigh == s.Length) return s;

        // 1. Full canonical decomposition into code points (lone surrogates pass through unchanged).
        var cps = new List<int>(s.Length + 8);
        for (int i = 0; i < s.Length; i++)
        {
            int cp = s[i];
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) cp = char.ConvertToUtf32(s[i], s[++i]);
            Decompose(cp, cps);
        }

        // 2. Canonical ordering: within each run of non-starters, a stable sort by combining class.
        for (int i = 1; i < cps.Count; i++)
        {
            int cc = Ccc(cps[i]);
            if (cc == 0) continue;
            for (int j = i; j > 0; j--)
            {
                int prev = Ccc(cps[j - 1]);
                if (prev <= cc) break;
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
            }
        }

        // 3. Canonical composition: each character joins the last starter unless blocked, i.e. unless
        //    a character between them has class 0 or a class >= its own.
        var result = new List<int>(cps.Count);
        int starter = -1, lastClass = 0;
        foreach (int cp in cps)
        {
            int cc = Ccc(cp);
            if (starter >= 0)
            {
                bool adjacent = result.Count - 1 == starter;
                bool blocked = !adjacent && (lastClass == 0 || lastClass >= cc);
                if (!blocked && TryCompose(result[starter], cp, out int composite))
                {
                    result[starter] = composite;
                    continue;
                }
            }
            if (cc == 0) starter = result.Count;
            result.Add(cp);
            lastClass = cc;
        }

        var sb = new StringBuilder(s.Length);
        foreach (int cp in result)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) sb.Append((char)cp); // a lone surrogate from the input
            else sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    private static void Decompose(int cp, List<int> into)
    {
        int sIndex = cp - SBase;
        if (sIndex is >= 0 and < SCount)
        {
            into.Add(LBase + sIndex / NCount);
            into.Add(VBase + sIndex % NCount / TCount);
            if (sIndex % TCount != 0) into.Add(TBase + sIndex % TCount);
        }
        else if (Decomposition.TryGetValue(cp, out var parts)) into.AddRange(parts);
        else into.Add(cp);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int lIndex = first - LBase, vIndex = second - VBase;
        if (lIndex is >= 0 and < LCount && vIndex is >= 0 and < VCount)
        {
            composite = SBase + (lIndex * VCount + vIndex) * TCount;
            return true;
        }
        int sIndex = first - SBase, tIndex = second - TBase;
        if (sIndex is >= 0 and < SCount && sIndex % TCount == 0 && tIndex is > 0 and < TCount)
        {
            composite = first + tIndex;
            return true;
        }
        return Composition.TryGetValue(Key(first, second), out composite);
    }
}
