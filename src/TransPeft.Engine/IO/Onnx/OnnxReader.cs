using System.Runtime.InteropServices;
using System.Text;

namespace TransPeft.Engine.IO.Onnx;

/// <summary>
/// A minimal reader of ONNX ModelProto files: enough of the protobuf wire format (varints, length-delimited
/// fields, fixed32/64 skipped) to list nodes and fp32 initializers. It is not a general protobuf library:
/// unknown fields are skipped by wire type, which is exactly what protobuf's forward compatibility promises,
/// so newer ONNX files with extra fields still read. Field numbers are from onnx.proto (ModelProto.graph = 7,
/// GraphProto.node = 1 / initializer = 5 / input = 11 / output = 12, TensorProto.dims = 1 / data_type = 2 /
/// float_data = 4 / name = 8 / raw_data = 9 / data_location = 14). Every malformed length or varint is an
/// <see cref="OnnxFormatException"/> naming the file and the message being read; nothing else escapes.
/// </summary>
public static class OnnxReader
{
    private const int TensorFloat = 1, TensorInt64 = 7;

    public static OnnxGraph Read(string path) => Read(File.ReadAllBytes(path), path);

    /// <summary>Parses <paramref name="bytes"/>; <paramref name="source"/> names the file in errors.</summary>
    public static OnnxGraph Read(byte[] bytes, string source)
    {
        long ir = 0, opset = 0;
        OnnxGraph? graph = null;
        var c = new Cursor(bytes, 0, bytes.Length, source, "ModelProto");
        while (c.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 0) ir = (long)c.Varint();
            else if (field == 8 && wire == 2) opset = Math.Max(opset, ReadOpset(c.Sub("OperatorSetIdProto")));
            else if (field == 7 && wire == 2) graph = ReadGraph(c.Sub("GraphProto"));
            else c.Skip(wire);
        }
        if (graph is null) throw new OnnxFormatException(source, "ModelProto.graph", "expected a graph (field 7); the file is not an ONNX model");
        return graph with { IrVersion = ir, Opset = opset };
    }

    private static long ReadOpset(Cursor c)
    {
        long version = 0;
        string domain = "";
        while (c.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 2) domain = c.String();
            else if (field == 2 && wire == 0) version = (long)c.Varint();
            else c.Skip(wire);
        }
        return domain is "" or "ai.onnx" ? version : 0;
    }

    private static OnnxGraph ReadGraph(Cursor c)
    {
        var nodes = new List<OnnxNode>();
        var inits = new Dictionary<string, OnnxInitializer>(StringComparer.Ordinal);
        var inputs = new List<string>();
        var outputs = new List<string>();
        while (c.Next(out int field, out int wire))
        {
            if (wire != 2) { c.Skip(wire); continue; }
            switch (field)
            {
                case 1: nodes.Add(ReadNode(c.Sub("NodeProto"))); break;
                case 5:
                    var t = ReadTensor(c.Sub("TensorProto"));
                    if (!inits.TryAdd(t.Name, t))
                        throw new OnnxFormatException(c.Source, $"initializer '{t.Name}'", "expected unique initializer names; this one appears twice");
                    break;
                case 11: inputs.Add(ReadValueInfoName(c.Sub("ValueInfoProto"))); break;
                case 12: outputs.Add(ReadValueInfoName(c.Sub("ValueInfoProto"))); break;
                default: c.Skip(wire); break;
            }
        }
        return new OnnxGraph(0, 0, nodes, inits, inputs, outputs);
    }

    private static string ReadValueInfoName(Cursor c)
    {
        string name = "";
        while (c.Next(out int field, out int wire))
            if (field == 1 && wire == 2) name = c.String(); else c.Skip(wire);
        return name;
    }

    private static OnnxNode ReadNode(Cursor c)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = "", op = "";
        OnnxInitializer? value = null;
        while (c.Next(out int field, out int wire))
        {
            if (wire != 2) { c.Skip(wire); continue; }
            switch (field)
            {
                case 1: inputs.Add(c.String()); break;
                case 2: outputs.Add(c.String()); break;
                case 3: name = c.String(); break;
                case 4: op = c.String(); break;
                case 5: value = ReadAttributeTensor(c.Sub("AttributeProto")) ?? value; break;
                default: c.Skip(wire); break;
            }
        }
        return new OnnxNode(name, op, inputs, outputs, op == "Constant" ? value : null);
    }

    /// <summary>A Constant node's value: the attribute's tensor (t = 5), or a scalar value_float (f = 2) / value_int (i = 3).</summary>
    private static OnnxInitializer? ReadAttributeTensor(Cursor c)
    {
        OnnxInitializer? t = null;
        while (c.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (5, 2): t = ReadTensor(c.Sub("AttributeProto.t")); break;
                case (2, 5): t = new OnnxInitializer("", TensorFloat, [], [c.Fixed32Float()]); break;
                case (3, 0): t = new OnnxInitializer("", TensorInt64, [], null, [(long)c.Varint()]); break;
                default: c.Skip(wire); break;
            }
        }
        return t;
    }

    private static OnnxInitializer ReadTensor(Cursor c)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        float[]? floats = null;
        byte[]? raw = null;
        var int64 = new List<long>();
        bool external = false;
        while (c.Next(out int field, out int wire))
        {
            switch (field, wire)
            {
                case (1, 0): dims.Add((long)c.Varint()); break;
                case (1, 2):
                    var packed = c.Sub("TensorProto.dims");
                    while (!packed.AtEnd) dims.Add((long)packed.Varint());
                    break;
                case (2, 0): dataType = (int)c.Varint(); break;
                case (4, 2): floats = MemoryMarshal.Cast<byte, float>(c.Bytes()).ToArray(); break;
                case (7, 0): int64.Add((long)c.Varint()); break;
                case (7, 2):
                    var packedInts = c.Sub("TensorProto.int64_data");
                    while (!packedInts.AtEnd) int64.Add((long)packedInts.Varint());
                    break;
                case (8, 2): name = c.String(); break;
                case (9, 2): raw = c.Bytes().ToArray(); break;
                case (14, 0): external = c.Varint() == 1; break;
                default: c.Skip(wire); break;
            }
        }
        var dimsArr = dims.ToArray();
        if (dimsArr.Any(d => d < 0))
            throw new OnnxFormatException(c.Source, $"initializer '{name}'.dims", "expected non-negative dimensions");
        if (external)
            throw new OnnxFormatException(c.Source, $"initializer '{name}'.data_location", "expected data inside the file; external data files are not supported");
        var t = new OnnxInitializer(name, dataType, dimsArr, null);
        if (dataType == TensorInt64)
        {
            if (raw is not null) int64 = [.. MemoryMarshal.Cast<byte, long>(raw)];
            if (int64.Count != t.Elements)
                throw new OnnxFormatException(c.Source, $"initializer '{name}'.int64_data",
                    $"expected {t.Elements} values for shape [{string.Join(",", dimsArr)}], found {int64.Count}");
            return t with { Int64 = int64.ToArray() };
        }
        if (dataType != TensorFloat) return t;
        if (raw is not null)
        {
            if (raw.Length != checked(t.Elements * 4))
                throw new OnnxFormatException(c.Source, $"initializer '{name}'.raw_data",
                    $"expected {t.Elements * 4} bytes for shape [{string.Join(",", dimsArr)}] float32, found {raw.Length}");
            // ONNX raw_data is little-endian by definition, as is every platform .NET runs this on.
            floats = MemoryMarshal.Cast<byte, float>(raw).ToArray();
        }
        floats ??= [];
        if (floats.Length != t.Elements)
            throw new OnnxFormatException(c.Source, $"initializer '{name}'.float_data",
                $"expected {t.Elements} values for shape [{string.Join(",", dimsArr)}], found {floats.Length}");
        return t with { Float32 = floats };
    }

    /// <summary>A bounds-checked window over the file's bytes: one protobuf message.</summary>
    private sealed class Cursor(byte[] buffer, int start, int end, string source, string message)
    {
        private int _pos = start;
        public string Source { get; } = source;
        public bool AtEnd => _pos >= end;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (AtEnd) return false;
            ulong key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field == 0) Fail("field number 0");
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= end) Fail("a varint running past the end of the message");
                byte b = buffer[_pos++];
                result |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return result;
            }
            Fail("a varint longer than 10 bytes");
            return 0;
        }

        public ReadOnlySpan<byte> Bytes()
        {
            int len = Length();
            var span = buffer.AsSpan(_pos, len);
            _pos += len;
            return span;
        }

        public string String() => Encoding.UTF8.GetString(Bytes());

        public float Fixed32Float()
        {
            Advance(4);
            return BitConverter.ToSingle(buffer, _pos - 4);
        }

        public Cursor Sub(string name)
        {
            int len = Length();
            var sub = new Cursor(buffer, _pos, _pos + len, Source, name);
            _pos += len;
            return sub;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Advance(Length()); break;
                case 5: Advance(4); break;
                default: Fail($"wire type {wire} (groups and unknown types are not valid in ONNX)"); break;
            }
        }

        private int Length()
        {
            ulong len = Varint();
            if (len > (ulong)(end - _pos)) Fail($"a length of {len} bytes with only {end - _pos} left in the message");
            return (int)len;
        }

        private void Advance(int n)
        {
            if (n > end - _pos) Fail("a fixed-size field running past the end of the message");
            _pos += n;
        }

        private void Fail(string what) =>
            throw new OnnxFormatException(Source, $"{message} at byte {_pos}", $"expected valid protobuf, found {what}");
    }
}
