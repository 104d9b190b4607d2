namespace TransPeft.Engine.Text;

/// <summary>
/// The prompt template of Stanford Alpaca's training code (tatsu-lab/stanford_alpaca, train.py,
/// PROMPT_DICT). The response follows "### Response:" directly, and the loss covers only the
/// response and its EOS.
/// </summary>
public static class AlpacaTemplate
{
    public static string Prompt(string instruction, string? input) => string.IsNullOrEmpty(input)
        ? "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
          + $"### Instruction:\n{instruction}\n\n### Response:"
        : "Below is an instruction that describes a task, paired with an input that provides further context. "
          + "Write a response that appropriately completes the request.\n\n"
          + $"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:";
}
