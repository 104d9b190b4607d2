using System.Globalization;
using System.Text;

namespace TransPeft.Engine.Analysis;

/// <summary>Renders an <see cref="UpdateAnalysis"/> as plain fixed-width text tables (for a terminal or a log).</summary>
public static class UpdateAnalysisTable
{
    private static readonly Dictionary<string, string> ShortHeaders = new()
    {
        ["input_layernorm"] = "in_norm", ["post_attention_layernorm"] = "post_norm",
    };

    public static string Render(UpdateAnalysis a)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Update {a.OldModel} -> {a.NewModel} ({a.ModelType}, {a.NumLayers} layers)");
        sb.AppendLine("Relative weight change ||W_new - W_old||_F / ||W_old||_F");
        var header = new List<string> { "layer" };
        header.AddRange(a.Modules.Select(m => ShortHeaders.GetValueOrDefault(m, m)));
        header.AddRange(["attn", "ffn", "norms"]);
        var rows = new List<List<string>> { header };
        for (int l = 0; l < a.NumLayers; l++)
        {
            var row = new List<string> { l.ToString(CultureInfo.InvariantCulture) };
            row.AddRange(a.RelativeChange[l].Select(F));
            row.AddRange([F(a.Layers[l].Attention), F(a.Layers[l].Ffn), F(a.Layers[l].Norms)]);
            rows.Add(row);
        }
        var all = new List<string> { "all" };
        all.AddRange(a.Modules.Select(_ => ""));
        all.AddRange([F(a.AttentionChange), F(a.FfnChange), ""]);
        rows.Add(all);
        Table(sb, rows);
        sb.AppendLine($"embed_tokens {F(a.EmbeddingChange)}   lm_head {(a.LmHeadChange is double h ? F(h) : "tied")}   norm {F(a.FinalNormChange)}");
        sb.AppendLine($"FFN / attention change: {(a.AttentionChange > 0 ? (a.FfnChange / a.AttentionChange).ToString("0.00", CultureInfo.InvariantCulture) + "x" : "n/a")}");

        if (a.Activations is { } act)
        {
            sb.AppendLine();
            sb.AppendLine($"Sub-layer outputs on {act.Tokens.ToString("N0", CultureInfo.InvariantCulture)} tokens (cosine old vs new, mean per token; top-{act.TopK} FFN neurons by mean |a|)");
            var arows = new List<List<string>> { new() { "layer", "attn_cos", "ffn_cos", "topk_jaccard", "topk_overlap", "ffn/h old", "ffn/h new" } };
            foreach (var l in act.Layers)
                arows.Add([l.Layer.ToString(CultureInfo.InvariantCulture), F(l.AttentionCosine), F(l.FfnCosine), F(l.TopKJaccard), F(l.TopKOverlap), F(l.FfnContributionOld), F(l.FfnContributionNew)]);
            Table(sb, arows);
        }
        return sb.ToString();
    }

    private static string F(double x) => double.IsNaN(x) ? "nan" : x.ToString("0.0000", CultureInfo.InvariantCulture);

    private static void Table(StringBuilder sb, List<List<string>> rows)
    {
        int cols = rows.Max(r => r.Count);
        var width = new int[cols];
        foreach (var r in rows) for (int i = 0; i < r.Count; i++) width[i] = Math.Max(width[i], r[i].Length);
        foreach (var r in rows)
        {
            for (int i = 0; i < r.Count; i++)
            {
                if (i > 0) sb.Append("  ");
                sb.Append(i == 0 ? r[i].PadRight(width[i]) : r[i].PadLeft(width[i]));
            }
            sb.AppendLine();
        }
    }
}
