namespace TransPeft.Engine.IO.Onnx;

/// <summary>One graph node: only what the importer needs to follow data flow. <paramref name="Value"/> is a Constant node's tensor.</summary>
public sealed record OnnxNode(string Name, string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, OnnxInitializer? Value = null);

/// <summary>A tensor: fp32 (ONNX data_type 1) values in <paramref name="Float32"/>, int64 (data_type 7) in <paramref name="Int64"/>; other types keep only their shape.</summary>
public sealed record OnnxInitializer(string Name, int DataType, long[] Dims, float[]? Float32, long[]? Int64 = null)
{
    /// <summary>The values as doubles, whichever of the two supported types the tensor has; null otherwise.</summary>
    public double[]? Values => Float32?.Select(v => (double)v).ToArray() ?? Int64?.Select(v => (double)v).ToArray();

    public long Elements => Dims.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>The parts of an ONNX ModelProto the BERT importer reads: versions, nodes, initializers, graph inputs/outputs.</summary>
public sealed record OnnxGraph(long IrVersion, long Opset, IReadOnlyList<OnnxNode> Nodes,
    IReadOnlyDictionary<string, OnnxInitializer> Initializers, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs);
