namespace TransPeft.Experiments.Data.Readers;

/// <summary>One fortune-mod entry.</summary>
/// <param name="Category">The fortune file it came from (<c>wisdom</c>, <c>computers</c>, ...).</param>
/// <param name="Index">Position in that file, from 0.</param>
/// <param name="Text">The whole entry as printed by fortune, overstrikes resolved, trailing blanks removed.</param>
/// <param name="Quote">The entry without its attribution line(s).</param>
/// <param name="Attribution">The author/source after the closing <c>-- </c>, or null when there is none.</param>
public sealed record Fortune(string Category, int Index, string Text, string Quote, string? Attribution);
