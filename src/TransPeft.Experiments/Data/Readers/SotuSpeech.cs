namespace TransPeft.Experiments.Data.Readers;

/// <summary>One State of the Union address.</summary>
/// <param name="Key">File stem, unique: <c>1953_harry_s_truman_d</c>.</param>
/// <param name="Year">Year of the address.</param>
/// <param name="President">Name from the file name, title-cased (<c>Harry S Truman</c>).</param>
/// <param name="PartyCode">The package's party code: d, r, dr, f, n, nu, w, wd.</param>
/// <param name="Party">The party's full name (<c>Democratic</c>).</param>
/// <param name="Text">The speech; audience reactions such as [Applause] removed.</param>
public sealed record SotuSpeech(string Key, int Year, string President, string PartyCode, string Party, string Text);
