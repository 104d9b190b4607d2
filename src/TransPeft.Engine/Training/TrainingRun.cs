using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Training;

/// <summary>
/// One training run from options alone, as `tpeft train` and the experiment run it: load the base model
/// and its tokenizer, tokenize the data (cached), build the adapter (fresh, or continued from
/// <see cref="TrainingOptions.AdapterInit"/>) or enable full fine-tuning, and run the <see cref="Trainer"/>.
/// LoRA runs save PEFT adapters (with the Trans-PEFT settings in their metadata); full runs save a complete
/// Hugging Face model folder, tokenizer included, so the result is itself a base model.
/// </summary>
public static class TrainingRun
{
    /// <param name="overwrite">A fresh run into a non-empty output folder replaces the run there (its checkpoints/,
    /// final/ and metrics); without it such a folder is refused. Resuming never needs it.</param>
    /// <param name="cuda">When given, the model is trained by the CUDA backend: with AdamW the optimizer runs on the device
    /// (gradients never leave it; weights and moments are downloaded at checkpoints and uploaded on resume), with SGD
    /// the gradients are copied into the host parameters each micro-batch and the host optimizer runs; null trains on the CPU.</param>
    public static TrainingResult Execute(TrainingOptions options, IProgress<TrainingProgress>? progress = null,
        string? resumeFrom = null, CancellationToken cancel = default, Action<string>? log = null, Compute.Cuda.CudaBackend? cuda = null,
        bool overwrite = false)
    {
        options.Validate();
        string modelDir = options.Model ?? throw new TrainingConfigException("training options", "model", "a base model folder (--model)");
        // LoRA on CUDA never computes on the base's fp32 values: they stay in the mapped files and go to the device in
        // bf16 straight from there. The CPU, and full fine-tuning (which trains fp32 masters), read them now.
        var model = cuda is not null && options.Method != TrainingMethod.Full ? TransformerModel.OpenLazy(modelDir) : TransformerModel.Load(modelDir);
        return Execute(options, model, modelDir, LoadTokenizer(options, modelDir), progress, resumeFrom, cancel, log, cuda, overwrite);
    }

    /// <summary>
    /// The tokenizer named by the options, else the model folder's; null when the folder has none, which is
    /// fine for pre-tokenized data ({"input_ids", "labels"}): a folder with only config.json and weights trains.
    /// </summary>
    internal static TokenizerInfo? LoadTokenizer(TrainingOptions options, string modelDir)
    {
        if (options.Tokenizer is not null) return TokenizerLoader.Load(options.Tokenizer);
        return TokenizerLoader.HasTokenizer(modelDir) ? TokenizerLoader.Load(modelDir) : null;
    }

    /// <summary>Training on weights already loaded (a session's): full fine-tuning updates <paramref name="model"/> in place.</summary>
    /// <param name="sharedBase">A CUDA session's device copy of <paramref name="model"/>: LoRA training reads the frozen base from it.</param>
    internal static TrainingResult Execute(TrainingOptions options, TransformerModel model, string modelDir, TokenizerInfo? tok,
        IProgress<TrainingProgress>? progress, string? resumeFrom, CancellationToken cancel, Action<string>? log, Compute.Cuda.CudaBackend? cuda,
        bool overwrite = false, Compute.Cuda.DeviceBaseWeights? sharedBase = null)
    {
        options.Validate();
        string outDir = options.Output ?? throw new TrainingConfigException("training options", "output", "an output folder (--out)");
        // Refused before minutes of tokenizing; the Trainer checks again under the run lock.
        if (resumeFrom is null && !overwrite && !OutputFolder.IsEmpty(outDir, RunLock.FileName, RunLock.OwnerFileName))
            OutputFolder.Claim(outDir, overwrite: false);
        var config = model.Config;
        DatasetTokenizer datasetTokenizer;
        try { datasetTokenizer = DatasetTokenizer.ForModel(tok, config, modelDir); }
        catch (ArgumentException e) { throw new TrainingConfigException("training options", "tokenizer", $"a tokenizer that fits the model ({e.Message})"); }
        var (data, trainReport, valReport) = TrainingData.Load(options, datasetTokenizer, config.VocabSize);
        log?.Invoke($"data: {trainReport}" + (valReport is null ? "" : $"; validation: {valReport}"));

        int maxPositions = Math.Max(options.SeqLen, config.MaxPositionEmbeddings);
        ITrainableModel engine;
        Action<string> saveWeights;
        // AdamW runs on the device (no gradient download per micro-batch); SGD keeps the host optimizer.
        var cudaOptions = new Compute.Cuda.CudaTransformerOptions
        {
            Recompute = options.Recompute, DeviceOptimizer = options.Optimizer == OptimizerKind.AdamW, CaptureGraphs = options.CudaGraphs,
        };
        if (options.Method == TrainingMethod.Full)
        {
            engine = cuda is null ? new CpuTransformer(model, fullFineTune: true, maxPositions: maxPositions, recompute: options.Recompute)
                : cuda.CreateTransformer(model, null, fullFineTune: true, cudaOptions);
            saveWeights = dir =>
            {
                model.Save(dir);
                if (tok is not null) CopyTokenizerFiles(tok.Source, modelDir, dir);
            };
        }
        else
        {
            var adapter = options.AdapterInit is { } init ? LoraAdapter.Load(init, config) : LoraAdapter.Create(config, options.ToLoraConfig(), options.Seed);
            adapter.BaseModelNameOrPath = Path.GetFullPath(modelDir);
            if (options.PMask > 0 || options.PDrop > 0)
                new TransPeftSettings { PMask = options.PMask, PDrop = options.PDrop, Seed = (ulong)options.Seed }.WriteTo(adapter);
            engine = cuda is null ? new CpuTransformer(model, adapter, maxPositions: maxPositions, recompute: options.Recompute) : cuda.CreateTransformer(model, adapter, options: cudaOptions, sharedBase: sharedBase);
            saveWeights = adapter.Save;
            log?.Invoke($"LoRA: {adapter.ModuleCount} modules, {adapter.ParameterCount:N0} trainable parameters (r={adapter.Config.R}, scaling {adapter.Config.Scaling:G4})");
        }
        try
        {
            var trainer = new Trainer(engine, data, options, outDir, saveWeights, progress, overwrite);
            var result = trainer.Run(resumeFrom, cancel);
            if (engine is Compute.Cuda.CudaTransformer { Options.CaptureGraphs: true } graphs)
                log?.Invoke($"CUDA graphs: {graphs.GraphCaptures} captured, {graphs.GraphLaunches} launched (training and evaluation steps)");
            return result;
        }
        finally
        {
            (engine as IDisposable)?.Dispose();
        }
    }

    /// <summary>Copies the tokenizer a model was trained with next to its weights (the folder is then self-contained).</summary>
    internal static void CopyTokenizerFiles(string tokenizerSource, string modelDir, string destDir)
    {
        var names = new[] { TokenizerLoader.CompactFileName, TokenizerLoader.TokenizerJsonFileName, TokenizerLoader.SentencePieceFileName, TokenizerLoader.TokenizerConfigFileName };
        foreach (var name in names)
        {
            var src = Path.Combine(modelDir, name);
            if (File.Exists(src)) File.Copy(src, Path.Combine(destDir, name), overwrite: true);
        }
        if (File.Exists(tokenizerSource) && !File.Exists(Path.Combine(destDir, Path.GetFileName(tokenizerSource))))
        {
            // A tokenizer given as a file (e.g. the experiment's compact tokenizer) travels under its canonical name.
            bool compact = File.ReadAllText(tokenizerSource).Contains("\"tpeft.compact-gpt2\"", StringComparison.Ordinal);
            File.Copy(tokenizerSource, Path.Combine(destDir, compact ? TokenizerLoader.CompactFileName : Path.GetFileName(tokenizerSource)), overwrite: true);
        }
    }
}
