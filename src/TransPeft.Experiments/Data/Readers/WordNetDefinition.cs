namespace TransPeft.Experiments.Data.Readers;

/// <summary>A word with the definition of its most frequent sense (first in WordNet's index for the first part of speech that has it).</summary>
/// <param name="Word">The word as the synset spells it (<c>Finland</c>, <c>black hole</c>): spaces between words.</param>
/// <param name="PartOfSpeech">noun, verb, adjective or adverb.</param>
/// <param name="Definition">The sense's definition without examples.</param>
/// <param name="SenseCount">How many senses the word has in that part of speech.</param>
public sealed record WordNetDefinition(string Word, string PartOfSpeech, string Definition, int SenseCount);
