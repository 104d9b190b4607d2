namespace TransPeft.Experiments.Data.Readers;

/// <summary>One lexicon entry of the Jargon File.</summary>
/// <param name="Headword">The defined term as written (<c>hack</c>, <c>/dev/null</c>, <c>Zawinski's Law</c>).</param>
/// <param name="Annotation">What follows the headword on its line: pronunciation and part of speech (<c>/dev·nuhl/, n.</c>), often empty.</param>
/// <param name="Body">The definition paragraphs, de-indented, cross-reference braces ({hacker}) removed.</param>
public sealed record JargonEntry(string Headword, string Annotation, string Body)
{
    /// <summary>The entry as one text: <c>hack: n. ...</c> followed by the body.</summary>
    public string ToText() => Annotation.Length > 0 ? $"{Headword}: {Annotation}\n{Body}" : $"{Headword}:\n{Body}";
}
