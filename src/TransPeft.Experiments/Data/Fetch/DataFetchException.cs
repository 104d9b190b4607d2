namespace TransPeft.Experiments.Data.Fetch;

/// <summary>A data source could not be fetched, verified or unpacked. The message names the package and says what to do.</summary>
public sealed class DataFetchException(string message, Exception? inner = null) : Exception(message, inner);
