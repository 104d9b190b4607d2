namespace TransPeft.Experiments.Data.Tasks;

public enum SamplingMode
{
    /// <summary>The same number of items from every stratum (label or group): the smallest stratum limits all.</summary>
    Balanced,
    /// <summary>Each stratum in proportion to its share of the pool.</summary>
    Stratified,
}
