namespace TransPeft.Experiments.Data.Text;

/// <summary>Cuts long texts into pieces of bounded length at natural boundaries.</summary>
public static class TextChunker
{
    /// <summary>
    /// Consecutive sentences grouped into chunks of at most <paramref name="maxChars"/> characters (a single
    /// longer sentence is a chunk of its own). Sentences are joined by one space.
    /// </summary>
    public static IReadOnlyList<string> ChunkSentences(IReadOnlyList<string> sentences, int maxChars)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChars, 1);
        var chunks = new List<string>();
        var current = new System.Text.StringBuilder();
        foreach (var s in sentences)
        {
            if (current.Length > 0 && current.Length + 1 + s.Length > maxChars)
            {
                chunks.Add(current.ToString());
                current.Clear();
            }
            if (current.Length > 0) current.Append(' ');
            current.Append(s);
        }
        if (current.Length > 0) chunks.Add(current.ToString());
        return chunks;
    }

    /// <summary>
    /// Pieces of at most about <paramref name="maxChars"/> characters: whole paragraphs (blank-line separated)
    /// are packed together; a paragraph longer than that is cut at sentence boundaries.
    /// </summary>
    public static IReadOnlyList<string> ChunkParagraphs(string text, int maxChars)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChars, 1);
        var units = new List<string>();
        foreach (var para in text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (para.Length <= maxChars) units.Add(para);
            else units.AddRange(ChunkSentences(SentenceSplitter.Split(para), maxChars));
        }
        var pieces = new List<string>();
        var current = new System.Text.StringBuilder();
        foreach (var u in units)
        {
            if (current.Length > 0 && current.Length + 2 + u.Length > maxChars)
            {
                pieces.Add(current.ToString());
                current.Clear();
            }
            if (current.Length > 0) current.Append("\n\n");
            current.Append(u);
        }
        if (current.Length > 0) pieces.Add(current.ToString());
        return pieces;
    }
}
