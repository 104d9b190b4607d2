namespace TransPeft.Engine.Training;

/// <summary>
/// A training option with a value that cannot be used. <see cref="ConfigSource"/> says where the value came
/// from (the config file's path, the command-line flag, or a checkpoint), <see cref="Field"/> is the
/// option's config name, <see cref="Expected"/> what would be accepted.
/// </summary>
public sealed class TrainingConfigException(string source, string field, string expected, string? got = null)
    : FormatException(EngineErrors.OneLine($"{source}: field '{field}': expected {expected}{(got is null ? "" : $", got {got}")}"))
{
    public string ConfigSource { get; } = source;
    public string Field { get; } = field;
    public string Expected { get; } = expected;
    public string? Got { get; } = got;
}
