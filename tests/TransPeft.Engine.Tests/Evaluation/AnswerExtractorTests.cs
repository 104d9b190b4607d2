using TransPeft.Engine.Evaluation;

namespace TransPeft.Engine.Tests.Evaluation;

public class AnswerExtractorTests
{
    [Theory]
    [InlineData("She pays 3 * 400 = 1200 dollars.\nThe answer is: 1,250", "1,250")]
    [InlineData("The answer is: -7.5\nThe answer is: 3", "-7.5")]
    [InlineData("so the total is 12. The answer is 12.", "12")]
    [InlineData("The answer is: $40", "40")]
    public void GsmPatternTakesTheNumberAfterTheAnswerPhrase(string text, string answer) =>
        Assert.Equal(answer, new AnswerExtractor(AnswerExtractor.GsmAnswerPattern).Extract(text));

    [Fact]
    public void NoMatchGivesNoAnswer() =>
        Assert.Null(new AnswerExtractor(AnswerExtractor.GsmAnswerPattern).Extract("I do not know"));

    [Fact]
    public void DefaultIsTheTrimmedFirstLine()
    {
        var x = new AnswerExtractor();
        Assert.Equal("hello world", x.Extract("  hello world \nmore text"));
        Assert.Equal("", x.Extract("\nsecond"));
        Assert.Equal("single", x.Extract("single"));
    }

    [Fact]
    public void GroupOneOrWholeMatchWithoutANamedGroup()
    {
        Assert.Equal("B", new AnswerExtractor(@"Answer: \(([A-D])\)").Extract("Answer: (B) because"));
        Assert.Equal("yes", new AnswerExtractor(@"\byes\b|\bno\b").Extract("well, yes it is"));
        Assert.Throws<ArgumentException>(() => new AnswerExtractor("(unclosed"));
    }

    [Theory]
    [InlineData("1,250", "1250", true, true)]
    [InlineData("7.0", "7", true, true)]
    [InlineData("7.0", "7", false, false)]
    [InlineData(" 42 ", "42", false, true)]
    [InlineData("42", "43", true, false)]
    [InlineData("Paris", "paris", true, false)]
    [InlineData(null, "1", true, false)]
    public void AnswersMatchExactlyOrByNumericValue(string? predicted, string gold, bool numeric, bool equal) =>
        Assert.Equal(equal, AnswerExtractor.AnswersEqual(predicted, gold, numeric));
}
