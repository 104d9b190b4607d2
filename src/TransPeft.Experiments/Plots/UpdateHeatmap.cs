using ScottPlot;
using TransPeft.Engine.Analysis;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments.Plots;

/// <summary>
/// Draws an update analysis's relative weight changes as a heatmap: one row per decoder layer (layer 0 at the
/// top), one column per module (q/k/v/o, gate/up/down, the two norms), colour = ||ΔW||_F / ||W_old||_F.
/// </summary>
public static class UpdateHeatmap
{
    public static void SavePng(UpdateAnalysis analysis, string path, int width = 900, int height = 0)
    {
        int layers = analysis.NumLayers, modules = analysis.Modules.Count;
        var values = new double[layers, modules];
        for (int l = 0; l < layers; l++)
            for (int m = 0; m < modules; m++) values[l, m] = analysis.RelativeChange[l][m];
        if (height <= 0) height = Math.Clamp(160 + 28 * layers, 320, 1600);

        var plot = new Plot();
        var heatmap = plot.Add.Heatmap(values);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(heatmap).Label = "relative change";
        // Cell (row r, column c) is centred at x = c and y = layers - 1 - r: the first row is drawn at the top.
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, modules).Select(i => (double)i).ToArray(),
            analysis.Modules.Select(Short).ToArray());
        plot.Axes.Left.SetTicks(Enumerable.Range(0, layers).Select(l => (double)(layers - 1 - l)).ToArray(),
            Enumerable.Range(0, layers).Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        plot.XLabel("module");
        plot.YLabel("layer");
        plot.Title($"||W_new - W_old|| / ||W_old||: {analysis.OldModel} -> {analysis.NewModel}");
        plot.Axes.SetLimits(-0.5, modules - 0.5, -0.5, layers - 0.5);
        // Rendered in memory, then written through AtomicFile: a reader never sees half a PNG.
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }

    private static string Short(string module) => module switch
    {
        "input_layernorm" => "in_norm",
        "post_attention_layernorm" => "post_norm",
        _ => module,
    };
}
