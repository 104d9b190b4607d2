using System.Text.Json;
using System.Text.Json.Nodes;

namespace TransPeft.Cli;

/// <summary>Machine-readable output: one indented JSON document on stdout.</summary>
internal static class JsonOutput
{
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    public static void Write(JsonNode node) => Console.Out.WriteLine(node.ToJsonString(Options));
}
