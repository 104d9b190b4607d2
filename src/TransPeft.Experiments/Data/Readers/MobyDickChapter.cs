namespace TransPeft.Experiments.Data.Readers;

/// <summary>One file of the Moby Dick package: a chapter (or the etymology, extracts, epilogue).</summary>
/// <param name="Name">File stem, e.g. <c>chapter_1</c>, <c>etymology</c>.</param>
/// <param name="Heading">The first line, e.g. <c>CHAPTER 1. Loomings.</c></param>
/// <param name="Text">The rest of the file: paragraphs separated by blank lines.</param>
public sealed record MobyDickChapter(string Name, string Heading, string Text);
