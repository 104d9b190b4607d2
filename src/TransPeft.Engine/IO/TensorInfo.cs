namespace TransPeft.Engine.IO;

/// <summary>One tensor's entry in a safetensors header: dtype, shape and byte range in the data section.</summary>
public sealed record TensorInfo(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => End - Begin;
}
