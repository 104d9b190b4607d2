namespace TransPeft.Experiments.Data.Corpora;

/// <summary>A kind of text a pre-training corpus can be made of.</summary>
public enum CorpusPart
{
    /// <summary>Moby Dick, in pieces of about 4,000 characters (paragraph boundaries).</summary>
    MobyDick,
    /// <summary>fortune-mod entries, one document each.</summary>
    Fortunes,
    /// <summary>Jargon File lexicon entries, one document each.</summary>
    Jargon,
    /// <summary>State of the Union addresses, in pieces of about 4,000 characters (sentence boundaries).</summary>
    Sotu,
    /// <summary>WordNet definitions written as dictionary lines: <c>word (noun): definition</c>.</summary>
    WordNetDictionary,
}
