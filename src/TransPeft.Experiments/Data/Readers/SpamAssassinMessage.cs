namespace TransPeft.Experiments.Data.Readers;

/// <summary>One e-mail of the SpamAssassin corpus.</summary>
/// <param name="Id">The package's id within its group (<c>00001</c>).</param>
/// <param name="Group">easy-ham-1, easy-ham-2, hard-ham-1, spam-1 or spam-2.</param>
/// <param name="IsSpam">True for the spam-* groups.</param>
/// <param name="Subject">The decoded Subject header, empty when missing.</param>
/// <param name="Body">The readable body: headers removed, MIME parts decoded, HTML reduced to text, attachments left out.</param>
/// <param name="RawText">The message as stored (headers and undecoded body).</param>
public sealed record SpamAssassinMessage(string Id, string Group, bool IsSpam, string Subject, string Body, string RawText)
{
    public string Label => IsSpam ? "spam" : "ham";
    /// <summary>Unique across groups: <c>spam-1/00001</c>.</summary>
    public string Key => $"{Group}/{Id}";
}
