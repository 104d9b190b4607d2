namespace TransPeft.Engine.Model.Bert;

/// <summary>How a sentence embedding is read off last_hidden_state.</summary>
public enum BertPooling
{
    /// <summary>Average of the non-padding tokens (all-MiniLM-L6-v2 and most sentence-transformers models).</summary>
    Mean,
    /// <summary>The [CLS] token's vector (arctic-embed).</summary>
    Cls,
}
