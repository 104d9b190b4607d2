using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Evaluation;

public class CharTokenizerTests
{
    [Fact]
    public void EncodesOneIdPerCharacterAndDecodesBack()
    {
        var tok = CharTokenizer.Create();
        const string text = "the answer is: 42.\nok";
        Assert.Equal(CharTokenizer.Ids(text), tok.EncodeToIds(text).ToArray());
        Assert.Equal(text, tok.Decode(CharTokenizer.Ids(text)));
    }
}
