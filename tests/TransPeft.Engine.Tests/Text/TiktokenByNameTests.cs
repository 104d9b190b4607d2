using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Text;

/// <summary>Tokenizers by name, from the Microsoft.ML.Tokenizers data packages (no download).</summary>
public sealed class TiktokenByNameTests
{
    private const string Sentence = "Hello world, this is a LoRA test.";

    [Theory]
    [InlineData("gpt2")]
    [InlineData("r50k_base")]
    public void Gpt2_reference_ids(string name)
    {
        var t = TokenizerLoader.FromName(name);
        Assert.Equal([15496, 995, 11, 428, 318, 257, 6706, 3861, 1332, 13], t.EncodeToIds(Sentence));
        Assert.Equal([15496, 995, 11], t.EncodeToIds("Hello world,"));
        Assert.Equal(Sentence, t.Decode(t.EncodeToIds(Sentence)));
    }

    [Theory]
    [InlineData("gpt-4")]
    [InlineData("cl100k_base")]
    public void Cl100k_reference_ids(string name)
    {
        var t = TokenizerLoader.FromName(name);
        Assert.Equal([9906, 1917, 11, 420, 374, 264, 6621, 5726, 1296, 13], t.EncodeToIds(Sentence));
    }

    [Theory]
    [InlineData("gpt-4o")]
    [InlineData("o200k_base")]
    public void O200k_loads_and_encodes_hello_world(string name)
    {
        Assert.Equal([13225, 2375], TokenizerLoader.FromName(name).EncodeToIds("Hello world"));
    }

    [Theory]
    [InlineData("gpt2", 50257, 50256)]
    [InlineData("r50k_base", 50257, 50256)]
    [InlineData("cl100k_base", 100277, 100257)]
    [InlineData("gpt-4o", 200019, 199999)]
    public void Info_reports_vocabulary_size_and_end_of_text(string name, int vocab, int eos)
    {
        var info = TokenizerLoader.Load(name);
        Assert.Equal(vocab, info.VocabSize);
        Assert.Equal(eos, info.EosTokenId);
        Assert.Null(info.BosTokenId);
        Assert.False(info.AddBosToken);
        Assert.Equal(name, info.Source);
        // The last id decodes; the first id past the vocabulary does not.
        Assert.NotEmpty(info.Tokenizer.Decode([vocab - 1]));
        Assert.Empty(info.Tokenizer.Decode([vocab]));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("cl100k_base")]
    [InlineData("o200k_base")]
    public void Decode_round_trips_arbitrary_text(string name)
    {
        var t = TokenizerLoader.FromName(name);
        foreach (var text in new[] { "", " ", "a\n\n b\t\tc  ", "naïve café 日本語 😀👍🏽", "x = f(1234567) // comment\r\n", "<|endoftext|> after" })
            Assert.Equal(text, t.Decode(t.EncodeToIds(text)));
    }

    [Fact]
    public void Unknown_name_is_refused_with_the_names_that_work()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerLoader.Load("llama-7"));
        Assert.Contains("'llama-7' is neither a tokenizer folder nor a known tokenizer name", e.Message);
        Assert.Contains("cl100k_base", e.Message);
    }

    [Fact]
    public void Encoding_whose_data_package_is_not_referenced_says_so()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerLoader.FromName("p50k_base"));
        Assert.Contains("needs a data package", e.Message);
        Assert.Contains("P50kBase", e.Message);
    }

    [Fact]
    public void A_path_that_does_not_exist_is_not_taken_for_a_name()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.Load("./no/such/model"));
        Assert.Contains("./no/such/model", e.Message);
    }
}
