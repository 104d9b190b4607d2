using System.Text.Json.Nodes;
using TransPeft.Experiments;
using TransPeft.Experiments.Data;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.Text;
using TransPeft.Engine.Tests.Training;

namespace TransPeft.Engine.Tests.Experiment;

/// <summary>How a classification task's labels are scored: on their first tokens when those tell the labels apart.</summary>
public class TaskSpecTests
{
    private static TaskSpec Write(string root, string a, string b)
    {
        var dir = Path.Combine(root, "task");
        var info = new TaskInfo("party", TaskKind.Classification, "", "{text}\\nParty:", [new("a", a), new("b", b)], [], 1, new JsonObject());
        var test = new[] { new TaskRecord("1", "x\nParty:", a, "a"), new TaskRecord("2", "y\nParty:", b, "b") };
        TaskFiles.Write(new BuiltTask(info, test, test), dir);
        // " Republican" is frequent in the tokenizer's text (one or two ids), " Democratic" never occurs (spelled in pieces).
        var tok = CompactGpt2Tokenizer.Train([string.Concat(Enumerable.Repeat("The Republican said so. ", 50))], vocabSize: 300);
        return TaskSpec.Load(new TaskPaths("party", dir), 0, tok);
    }

    [Fact]
    public void LabelsOfDifferentLengthAreScoredOnTheirFirstTokens()
    {
        var spec = Write(TempDirs.Create("tpeft-taskspec"), " Democratic", " Republican");
        Assert.True(spec.FirstTokenDecision);
        Assert.Equal(2, spec.DecisionLabels.Count);
        Assert.StartsWith(spec.DecisionLabels[0], " Democratic");
        Assert.StartsWith(spec.DecisionLabels[1], " Republican");
        Assert.True(spec.DecisionLabels[0].Length < " Democratic".Length, "the long label is cut to its first token");
        // Gold completions follow their label.
        Assert.Equal(spec.DecisionLabels, spec.Test.Select(r => r.Completion));
        Assert.Equal(["accuracy", "decision_loss"], spec.Metrics.Select(m => m.Key));
    }

    [Fact]
    public void LabelsSharingTheirFirstTokenAreScoredWhole()
    {
        var spec = Write(TempDirs.Create("tpeft-taskspec"), " Republican party", " Republican state");
        Assert.False(spec.FirstTokenDecision);
        Assert.Equal([" Republican party", " Republican state"], spec.DecisionLabels);
    }
}
