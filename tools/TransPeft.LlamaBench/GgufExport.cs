using System.Text;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.LlamaBench;

/// <summary>
/// Writes a Llama-layout model folder (config.json + F32 model.safetensors, as the engine saves it) as a GGUF v3 file
/// with F32 tensors, the way llama.cpp's convert_hf_to_gguf.py does for the "llama" architecture:
/// <list type="bullet">
/// <item>tensor names token_embd / blk.N.attn_q ... / output_norm / output, dims innermost first (ne0 = in);</item>
/// <item>q_proj and k_proj rows permuted from Hugging Face's rotate-half RoPE layout to llama.cpp's interleaved pairs
/// (row h·d + s·d/2 + i moves to h·d + 2i + s), so both engines rotate the same pairs;</item>
/// <item>a placeholder GPT-2-style vocabulary (the 256 byte symbols, then &lt;tN&gt;) with no merges: the bench feeds
/// token ids and never tokenizes text.</item>
/// </list>
/// </summary>
internal static class GgufExport
{
    private const uint Magic = 0x46554747; // "GGUF"
    private const int Alignment = 32;
    private enum T : uint { U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9 }

    public static void Write(string modelDir, string ggufPath)
    {
        var c = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        if (c.ModelType != "llama" || c.QkvBias || c.RopeScaling is not null)
            throw new NotSupportedException("the GGUF export covers plain Llama layouts (no bias, no rope scaling)");
        using var st = SafetensorsReader.Open(Path.Combine(modelDir, "model.safetensors"));

        var tensors = new List<(string Name, long[] Dims, float[] Data)>();
        void Add(string gguf, string hf, Func<float[], float[]>? transform = null)
        {
            var info = st.GetInfo(hf);
            var data = st.ReadFloat32(hf);
            tensors.Add((gguf, info.Shape.Reverse().Select(x => (long)x).ToArray(), transform?.Invoke(data) ?? data));
        }
        Add("token_embd.weight", "model.embed_tokens.weight");
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            Add($"blk.{l}.attn_norm.weight", p + "input_layernorm.weight");
            Add($"blk.{l}.attn_q.weight", p + "self_attn.q_proj.weight", w => PermuteRope(w, c.NumHeads, c.HeadDim, c.HiddenSize));
            Add($"blk.{l}.attn_k.weight", p + "self_attn.k_proj.weight", w => PermuteRope(w, c.NumKvHeads, c.HeadDim, c.HiddenSize));
            Add($"blk.{l}.attn_v.weight", p + "self_attn.v_proj.weight");
            Add($"blk.{l}.attn_output.weight", p + "self_attn.o_proj.weight");
            Add($"blk.{l}.ffn_norm.weight", p + "post_attention_layernorm.weight");
            Add($"blk.{l}.ffn_gate.weight", p + "mlp.gate_proj.weight");
            Add($"blk.{l}.ffn_up.weight", p + "mlp.up_proj.weight");
            Add($"blk.{l}.ffn_down.weight", p + "mlp.down_proj.weight");
        }
        Add("output_norm.weight", "model.norm.weight");
        if (!c.TieWordEmbeddings) Add("output.weight", "lm_head.weight");

        string tmp = ggufPath + ".tmp";
        using (var f = new BinaryWriter(File.Create(tmp), Encoding.UTF8))
        {
            var kv = new List<Action<BinaryWriter>>();
            void Kv(string key, T type, Action<BinaryWriter> value) => kv.Add(w => { Str(w, key); w.Write((uint)type); value(w); });
            Kv("general.architecture", T.String, w => Str(w, "llama"));
            Kv("general.name", T.String, w => Str(w, Path.GetFileName(Path.GetFullPath(modelDir))));
            Kv("general.alignment", T.U32, w => w.Write((uint)Alignment));
            Kv("llama.context_length", T.U32, w => w.Write((uint)c.MaxPositionEmbeddings));
            Kv("llama.embedding_length", T.U32, w => w.Write((uint)c.HiddenSize));
            Kv("llama.block_count", T.U32, w => w.Write((uint)c.NumLayers));
            Kv("llama.feed_forward_length", T.U32, w => w.Write((uint)c.IntermediateSize));
            Kv("llama.attention.head_count", T.U32, w => w.Write((uint)c.NumHeads));
            Kv("llama.attention.head_count_kv", T.U32, w => w.Write((uint)c.NumKvHeads));
            Kv("llama.attention.key_length", T.U32, w => w.Write((uint)c.HeadDim));
            Kv("llama.attention.value_length", T.U32, w => w.Write((uint)c.HeadDim));
            Kv("llama.attention.layer_norm_rms_epsilon", T.F32, w => w.Write((float)c.RmsNormEps));
            Kv("llama.rope.freq_base", T.F32, w => w.Write((float)c.RopeTheta));
            Kv("llama.rope.dimension_count", T.U32, w => w.Write((uint)c.HeadDim));
            Kv("llama.vocab_size", T.U32, w => w.Write((uint)c.VocabSize));
            var tokens = Vocabulary(c.VocabSize);
            Kv("tokenizer.ggml.model", T.String, w => Str(w, "gpt2"));
            Kv("tokenizer.ggml.pre", T.String, w => Str(w, "default"));
            Kv("tokenizer.ggml.tokens", T.Array, w => { w.Write((uint)T.String); w.Write((ulong)tokens.Length); foreach (var s in tokens) Str(w, s); });
            Kv("tokenizer.ggml.token_type", T.Array, w => { w.Write((uint)T.I32); w.Write((ulong)tokens.Length); foreach (var _ in tokens) w.Write(1); });
            Kv("tokenizer.ggml.merges", T.Array, w => { w.Write((uint)T.String); w.Write(0UL); });
            int eos = c.EosTokenIds.Length > 0 ? c.EosTokenIds[0] : 0;
            Kv("tokenizer.ggml.eos_token_id", T.U32, w => w.Write((uint)eos));
            Kv("tokenizer.ggml.bos_token_id", T.U32, w => w.Write((uint)(c.BosTokenId ?? eos)));
            Kv("tokenizer.ggml.add_bos_token", T.Bool, w => w.Write((byte)0));

            f.Write(Magic);
            f.Write(3u);
            f.Write((ulong)tensors.Count);
            f.Write((ulong)kv.Count);
            foreach (var k in kv) k(f);
            long offset = 0;
            foreach (var (name, dims, data) in tensors)
            {
                Str(f, name);
                f.Write((uint)dims.Length);
                foreach (var d in dims) f.Write((ulong)d);
                f.Write(0u); // GGML_TYPE_F32
                f.Write((ulong)offset);
                offset = Align(offset + (long)data.Length * 4);
            }
            Pad(f);
            long start = f.BaseStream.Position;
            foreach (var (_, _, data) in tensors)
            {
                f.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
                Pad(f, start);
            }
        }
        File.Move(tmp, ggufPath, overwrite: true);
    }

    /// <summary>Rows of a q/k projection [heads·d, in] from rotate-half order to interleaved pairs.</summary>
    private static float[] PermuteRope(float[] w, int heads, int d, int inDim)
    {
        var r = new float[w.Length];
        for (int h = 0; h < heads; h++)
            for (int s = 0; s < 2; s++)
                for (int i = 0; i < d / 2; i++)
                    Array.Copy(w, (long)(h * d + s * d / 2 + i) * inDim, r, (long)(h * d + 2 * i + s) * inDim, inDim);
        return r;
    }

    /// <summary>GPT-2's 256 byte symbols (so llama.cpp finds its newline token), then unique placeholders.</summary>
    private static string[] Vocabulary(int size)
    {
        var bytes = new List<int>();
        for (int b = '!'; b <= '~'; b++) bytes.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bytes.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bytes.Add(b);
        var symbol = new string[256];
        int extra = 0;
        for (int b = 0; b < 256; b++) symbol[b] = bytes.Contains(b) ? ((char)b).ToString() : ((char)(256 + extra++)).ToString();
        return Enumerable.Range(0, size).Select(i => i < 256 ? symbol[i] : $"<t{i}>").ToArray();
    }

    private static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    private static long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w, long start = 0)
    {
        long pos = w.BaseStream.Position - start;
        for (long i = pos; i < Align(pos); i++) w.Write((byte)0);
    }
}
