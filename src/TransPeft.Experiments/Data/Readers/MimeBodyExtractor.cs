using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Turns a raw RFC 822 / MIME message into its readable text: the header block (up to the first empty
/// line) is dropped; multipart bodies are split at their boundaries and each part handled by its own
/// headers (multipart/alternative keeps its plain-text part when it has one); quoted-printable and base64
/// text is decoded with its charset; HTML becomes text (tags, scripts, styles and comments removed,
/// entities decoded); non-text parts (attachments, images) are left out.
/// </summary>
public static partial class MimeBodyExtractor
{
    public sealed record Mail(string Subject, string Body);

    private const int MaxDepth = 8;

    static MimeBodyExtractor() => Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);

    public static Mail Extract(string rawMessage)
    {
        var (headers, body) = SplitHeaders(TextFiles.NormalizeNewlines(rawMessage));
        var text = ExtractEntity(headers, body, 0);
        return new Mail(DecodeHeaderWords(Header(headers, "Subject") ?? ""), CollapseBlankLines(text));
    }

    /// <summary>Headers (unfolded, name in lower case) and the body after the first empty line.</summary>
    internal static (List<(string Name, string Value)> Headers, string Body) SplitHeaders(string message)
    {
        int end = message.StartsWith('\n') ? 0 : message.IndexOf("\n\n", StringComparison.Ordinal);
        var headerBlock = end < 0 ? message : message[..end];
        var body = end < 0 ? "" : message[(end + (message.StartsWith('\n') ? 1 : 2))..];
        var headers = new List<(string, string)>();
        foreach (var line in headerBlock.Split('\n'))
        {
            if (line.Length > 0 && (line[0] == ' ' || line[0] == '\t') && headers.Count > 0)
            {
                var (n, v) = headers[^1];
                headers[^1] = (n, v + " " + line.Trim());
                continue;
            }
            int colon = line.IndexOf(':');
            if (colon > 0) headers.Add((line[..colon].Trim().ToLowerInvariant(), line[(colon + 1)..].Trim()));
        }
        return (headers, body);
    }

    private static string? Header(List<(string Name, string Value)> headers, string name)
    {
        foreach (var (n, v) in headers) if (n == name.ToLowerInvariant()) return v;
        return null;
    }

    [GeneratedRegex(@"(?:^|;)\s*([A-Za-z0-9_\-*]+)\s*=\s*(?:""([^""]*)""|([^;\s]+))")]
    private static partial Regex ContentTypeParameter();

    private static (string MediaType, Dictionary<string, string> Parameters) ParseContentType(string? value)
    {
        var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (string.IsNullOrWhiteSpace(value)) return ("text/plain", parameters);
        int semi = value.IndexOf(';');
        var media = (semi < 0 ? value : value[..semi]).Trim().ToLowerInvariant();
        if (semi >= 0)
            foreach (Match m in ContentTypeParameter().Matches(value[semi..]))
                parameters[m.Groups[1].Value] = m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value;
        return (media.Length == 0 ? "text/plain" : media, parameters);
    }

    private static string ExtractEntity(List<(string Name, string Value)> headers, string body, int depth)
    {
        var (media, parameters) = ParseContentType(Header(headers, "Content-Type"));
        if (media.StartsWith("multipart/", StringComparison.Ordinal) && parameters.TryGetValue("boundary", out var boundary) && depth < MaxDepth)
        {
            var parts = SplitMultipart(body, boundary).Select(p => SplitHeaders(p)).ToList();
            if (parts.Count == 0) return "";
            if (media == "multipart/alternative")
            {
                var plain = parts.FirstOrDefault(p => ParseContentType(Header(p.Headers, "Content-Type")).MediaType == "text/plain");
                var chosen = plain.Headers is not null ? plain : parts[^1];
                return ExtractEntity(chosen.Headers, chosen.Body, depth + 1);
            }
            var texts = parts.Select(p => ExtractEntity(p.Headers, p.Body, depth + 1)).Where(t => t.Length > 0);
            return string.Join("\n\n", texts);
        }
        if (media.StartsWith("multipart/", StringComparison.Ordinal)) return body.Trim(); // no boundary: treat as text
        if (!media.StartsWith("text/", StringComparison.Ordinal) && media != "message/rfc822") return "";
        if (media == "message/rfc822" && depth < MaxDepth)
        {
            var (h, b) = SplitHeaders(body);
            return ExtractEntity(h, b, depth + 1);
        }
        var disposition = Header(headers, "Content-Disposition");
        if (disposition is not null && disposition.StartsWith("attachment", StringComparison.OrdinalIgnoreCase) && media != "text/plain") return "";

        var encoding = (Header(headers, "Content-Transfer-Encoding") ?? "7bit").Trim().ToLowerInvariant();
        parameters.TryGetValue("charset", out var charset);
        var text = encoding switch
        {
            "quoted-printable" => DecodeBytes(DecodeQuotedPrintable(body), charset),
            "base64" => DecodeBase64(body, charset) ?? "",
            _ => body,
        };
        if (media == "text/html" || LooksLikeHtml(text)) text = HtmlToText(text);
        return text.Trim();
    }

    [GeneratedRegex(@"<(html|body|!doctype html|head)\b", RegexOptions.IgnoreCase)]
    private static partial Regex HtmlDocumentTag();

    /// <summary>Many spams send HTML without a Content-Type header (so as text/plain): text that opens with a tag and has an html/body/head tag early on is HTML.</summary>
    internal static bool LooksLikeHtml(string text)
    {
        var t = text.TrimStart();
        return t.StartsWith('<') && HtmlDocumentTag().IsMatch(t.Length > 2000 ? t[..2000] : t);
    }

    private static List<string> SplitMultipart(string body, string boundary)
    {
        var parts = new List<string>();
        var delimiter = "--" + boundary;
        StringBuilder? current = null;
        foreach (var line in body.Split('\n'))
        {
            var trimmed = line.TrimEnd();
            if (trimmed == delimiter + "--") { if (current is not null) parts.Add(current.ToString()); current = null; break; }
            if (trimmed == delimiter)
            {
                if (current is not null) parts.Add(current.ToString());
                current = new StringBuilder();
                continue;
            }
            current?.Append(line).Append('\n');
        }
        if (current is not null) parts.Add(current.ToString()); // unterminated last part
        return parts;
    }

    /// <summary>Quoted-printable to bytes: =XX is a byte, '=' at a line end is a soft break.</summary>
    internal static byte[] DecodeQuotedPrintable(string text)
    {
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '=')
            {
                if (i + 1 < text.Length && text[i + 1] == '\n') { i++; continue; }
                if (i + 2 < text.Length && Uri.IsHexDigit(text[i + 1]) && Uri.IsHexDigit(text[i + 2]))
                {
                    bytes.Add(Convert.ToByte(text.Substring(i + 1, 2), 16));
                    i += 2;
                    continue;
                }
                // '=' followed by trailing blanks then a line end is a soft break too.
                int j = i + 1;
                while (j < text.Length && (text[j] == ' ' || text[j] == '\t')) j++;
                if (j < text.Length && text[j] == '\n') { i = j; continue; }
            }
            if (c < 0x80) bytes.Add((byte)c);
            else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
        }
        return bytes.ToArray();
    }

    private static string? DecodeBase64(string body, string? charset)
    {
        var compact = new string(body.Where(c => !char.IsWhiteSpace(c)).ToArray());
        var buffer = new byte[compact.Length];
        return Convert.TryFromBase64String(compact, buffer, out var n) ? DecodeBytes(buffer[..n], charset) : null;
    }

    private static string DecodeBytes(byte[] bytes, string? charset)
    {
        Encoding enc = Encoding.Latin1;
        if (!string.IsNullOrWhiteSpace(charset))
        {
            try { enc = Encoding.GetEncoding(charset.Trim()); }
            catch (ArgumentException) { enc = Encoding.Latin1; }
        }
        return TextFiles.NormalizeNewlines(enc.GetString(bytes));
    }

    [GeneratedRegex(@"<(script|style)\b.*?</\1\s*>", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
    private static partial Regex ScriptOrStyle();

    [GeneratedRegex(@"<!--.*?-->", RegexOptions.Singleline)]
    private static partial Regex HtmlComment();

    [GeneratedRegex(@"<\s*(br|/p|p|/div|div|/tr|tr|/h[1-6]|li|/li|/table|hr)\b[^>]*>", RegexOptions.IgnoreCase)]
    private static partial Regex BlockTag();

    [GeneratedRegex(@"<[^>]*>", RegexOptions.Singleline)]
    private static partial Regex AnyTag();

    [GeneratedRegex(@"[ \t\u00A0]+")]
    private static partial Regex Blanks();

    /// <summary>HTML to plain text: block tags become line breaks (empty lines dropped), other tags vanish, entities are decoded.</summary>
    public static string HtmlToText(string html)
    {
        var t = ScriptOrStyle().Replace(html, " ");
        t = HtmlComment().Replace(t, " ");
        t = t.Replace('\n', ' ');
        t = BlockTag().Replace(t, "\n");
        t = AnyTag().Replace(t, " ");
        t = WebUtility.HtmlDecode(t);
        t = Blanks().Replace(t, " ");
        return string.Join('\n', t.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
    }

    [GeneratedRegex(@"=\?([^?]+)\?([BbQq])\?([^?]*)\?=")]
    private static partial Regex EncodedWord();

    /// <summary>RFC 2047 encoded words in headers (=?charset?Q?...?= and =?charset?B?...?=).</summary>
    public static string DecodeHeaderWords(string value) =>
        EncodedWord().Replace(value, m =>
        {
            var charset = m.Groups[1].Value;
            var payload = m.Groups[3].Value;
            if (m.Groups[2].Value is "B" or "b") return DecodeBase64(payload, charset) ?? m.Value;
            return DecodeBytes(DecodeQuotedPrintable(payload.Replace('_', ' ')), charset);
        });

    [GeneratedRegex(@"\n{3,}")]
    private static partial Regex ManyNewlines();

    private static string CollapseBlankLines(string text) => ManyNewlines().Replace(text.Trim(), "\n\n");
}
