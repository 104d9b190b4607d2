namespace TransPeft.Engine.Text;

/// <summary>How a training or validation file is laid out (see <see cref="DatasetLoader"/>).</summary>
public enum DatasetFormat
{
    /// <summary>Decide from the extension (.txt/.md = plain text) and, for JSON, the first record's fields.</summary>
    Auto,
    /// <summary>A plain-text corpus: the whole file is one document; every token is a target.</summary>
    Text,
    /// <summary>JSONL <c>{"text": ...}</c>: each record is a document; every token is a target.</summary>
    TextRecords,
    /// <summary>JSONL <c>{"prompt", "completion"}</c>: loss on the completion (and its EOS) only.</summary>
    PromptCompletion,
    /// <summary>Alpaca <c>{"instruction", "input", "output"}</c> in the standard Alpaca prompt template; loss on the output only.</summary>
    Alpaca,
    /// <summary>Pre-tokenized <c>{"input_ids", "labels"}</c> in the Hugging Face convention (-100 = not counted).</summary>
    Tokenized,
}

/// <summary>The formats' names as flags and files spell them, and detection from a file.</summary>
public static class DatasetFormatNames
{
    public static readonly (string Name, DatasetFormat Format)[] All =
    [
        ("auto", DatasetFormat.Auto), ("text", DatasetFormat.Text), ("text-records", DatasetFormat.TextRecords),
        ("prompt-completion", DatasetFormat.PromptCompletion), ("alpaca", DatasetFormat.Alpaca), ("tokenized", DatasetFormat.Tokenized),
    ];

    /// <summary>Format from the extension (.txt/.md = plain text), or from the first JSON record's fields.</summary>
    public static DatasetFormat Detect(string path) => DatasetLoader.Detect(path);

    public static string Name(this DatasetFormat f) => All.First(x => x.Format == f).Name;

    /// <summary>Text formats are packed into fixed-length sequences by default; instruction formats are not.</summary>
    public static bool PacksByDefault(this DatasetFormat f) => f is DatasetFormat.Text or DatasetFormat.TextRecords;
}
