namespace TransPeft.Experiments.Data.Readers;

/// <summary>One WordNet synset from a <c>data.POS</c> file.</summary>
/// <param name="Offset">Byte offset in its data file: the synset's id within its part of speech.</param>
/// <param name="PartOfSpeech">n (noun), v (verb), a (adjective), s (adjective satellite) or r (adverb).</param>
/// <param name="Words">Its words, underscores turned into spaces, adjective markers such as (a) removed.</param>
/// <param name="Gloss">The whole gloss after the bar: definition(s) and quoted examples.</param>
/// <param name="Definition">The gloss before its first quoted example.</param>
/// <param name="Examples">The quoted usage examples, without quotes.</param>
public sealed record WordNetSynset(long Offset, char PartOfSpeech, IReadOnlyList<string> Words, string Gloss, string Definition, IReadOnlyList<string> Examples)
{
    /// <summary>noun, verb, adjective or adverb.</summary>
    public string PartOfSpeechName => WordNetReader.PartOfSpeechName(PartOfSpeech);
}
