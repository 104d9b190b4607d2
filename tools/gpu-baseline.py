#!/usr/bin/env python3
"""GPU-side baseline and parity helpers for TransPeft.Engine (a tool only: the engine itself never runs Python).

Runs on the GPU machine, which has PyTorch, transformers and peft installed and no network. Everything is
built from a config (random weights); nothing is downloaded (HF_HUB_OFFLINE=1 is forced).

Subcommands (each prints one JSON document on stdout; diagnostics go to stderr):

  bench        LoRA fine-tuning throughput of a ~0.5B Llama-family model, bf16, seq 1024:
               PyTorch eager + PEFT and torch.compile, decode latency at batch 1 (eager KV cache, and a
               measured copy-bandwidth floor), model FLOP utilisation. The figures the CUDA backend must beat
               (docs/BENCHMARKS.md, DESIGN.md "Performance targets").
  logits       Load a model folder written by `tpeft init` (config.json + model.safetensors) with
               transformers, optionally a PEFT adapter folder on top, and print the logits for given ids.
  save-adapter Create a PEFT LoRA adapter for a model folder (B made non-zero so it changes the output),
               save it in the PEFT layout for the engine to load, and print its logits for given ids.

The default model ("llama-0.5b"): hidden 1024, 24 layers, 16 query heads, 8 key/value heads (head_dim 64),
intermediate 4096, vocab 32000, untied embedding and head, RMSNorm eps 1e-5, rope_theta 10000.
Parameters: 377.5M in the decoder layers + 2 x 32.8M embedding/head = 443M in total ("about 0.5B").

FLOP conventions (reported side by side, both per trained token, causal attention counted at half the square):
  attention (fwd + bwd)   = 3 * 2 * 2 * L * T * d_attn / 2     (QK^T and PV, fwd 1x, bwd 2x)
  mfu_6n                  = (6 * N + attention) * tokens/s / peak   (PaLM-style "model FLOPs")
  mfu_4n                  = (4 * N + 6 * N_lora + attention) * tokens/s / peak
                            (LoRA's real work: frozen base weights need no weight-gradient matmuls)
  N = parameters that take part in a matmul per token: every projection of every layer plus the LM head
      (the embedding is a lookup, not a matmul).
Peak bf16 dense tensor FLOP/s: H100 SXM / H200 989.4 TFLOP/s, H100 PCIe 756 TFLOP/s (override: --peak-tflops).

Examples:
  python3 tools/gpu-baseline.py bench --batch 8 --steps 20 > results/gpu-baseline.json
  python3 tools/gpu-baseline.py logits --model out/base --ids 1,5,9,300
  python3 tools/gpu-baseline.py logits --model out/base --adapter out/adapter --ids 1,5,9,300
  python3 tools/gpu-baseline.py save-adapter --model out/base --out out/peft-adapter --ids 1,5,9,300
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

DEFAULT_MODEL = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8,
                     intermediate_size=4096, vocab_size=32000, rms_norm_eps=1e-5, rope_theta=10000.0,
                     max_position_embeddings=4096, tie_word_embeddings=False)

PEAK_BF16_TFLOPS = [("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.0)]


class ToolError(Exception):
    """A failure with a message meant for the user (bad input, missing package, no GPU)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def require_packages(need_peft: bool = True):
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ToolError(f"PyTorch is not installed ({e}); this tool runs on the GPU machine") from e
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise ToolError(f"transformers is not installed ({e})") from e
    if need_peft:
        try:
            import peft  # noqa: F401
        except ImportError as e:
            raise ToolError(f"peft is not installed ({e})") from e


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "peft"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - report what is there
            out[name] = None
    return out


def device_info() -> dict:
    import torch
    if not torch.cuda.is_available():
        raise ToolError("CUDA is not available to PyTorch (no GPU, or a CPU-only torch build)")
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "sm_count": props.multi_processor_count, "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda}


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value
    return None


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError as e:
        raise ToolError(f"--ids: expected comma-separated integers, got '{text}'") from e
    if not ids:
        raise ToolError("--ids: at least one token id is needed")
    return ids


# ------------------------------------------------------------------------------------------------ model

def build_config(args):
    from transformers import LlamaConfig
    if args.config:
        path = args.config if args.config.endswith(".json") else os.path.join(args.config, "config.json")
        if not os.path.isfile(path):
            raise ToolError(f"--config: {path} not found")
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        if raw.get("model_type") not in ("llama", "mistral", "qwen2"):
            raise ToolError(f"{path}: model_type '{raw.get('model_type')}' is not llama, mistral or qwen2")
        from transformers import AutoConfig
        return AutoConfig.from_pretrained(os.path.dirname(path) or ".")
    fields = dict(DEFAULT_MODEL)
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size"):
        value = getattr(args, key, None)
        if value:
            fields[key] = value
    if fields["hidden_size"] % fields["num_attention_heads"]:
        raise ToolError("hidden_size must be divisible by num_attention_heads")
    if fields["num_attention_heads"] % fields["num_key_value_heads"]:
        raise ToolError("num_attention_heads must be divisible by num_key_value_heads")
    fields["max_position_embeddings"] = max(fields["max_position_embeddings"], args.seq + args.decode_tokens + 64)
    return LlamaConfig(**fields)


def count_params(config) -> dict:
    h, i, l, v = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    hd = getattr(config, "head_dim", None) or h // config.num_attention_heads
    q, kv = config.num_attention_heads * hd, config.num_key_value_heads * hd
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i
    tied = bool(getattr(config, "tie_word_embeddings", False))
    return {"per_layer_matmul": per_layer, "layers_matmul": per_layer * l, "embedding": v * h,
            "head": v * h, "tied": tied, "matmul_N": per_layer * l + v * h,
            "total": per_layer * l + 2 * h * l + h + v * h * (1 if tied else 2), "attn_dim": q}


def make_model(config, dtype):
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    kwargs = {"torch_dtype": dtype}
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", **kwargs)
    except (TypeError, ValueError):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model


def add_lora(model, r: int, alpha: int, dropout: float = 0.0):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=PROJECTIONS, bias="none",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


# ------------------------------------------------------------------------------------------------ bench

def cuda_time(fn, steps: int) -> float:
    import torch
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def train_throughput(config, args, compile_model: bool) -> dict:
    import torch
    dtype = torch.bfloat16
    model = make_model(config, dtype).cuda()
    model = add_lora(model, args.rank, args.alpha)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_lora = sum(p.numel() for p in trainable)
    opt = torch.optim.AdamW(trainable, lr=1e-4, fused=True) if _fused_ok() else torch.optim.AdamW(trainable, lr=1e-4)
    gen = torch.Generator(device="cuda").manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device="cuda", generator=gen)
    fwd = torch.compile(model) if compile_model else model

    def step():
        with torch.autocast("cuda", dtype=dtype):
            out = fwd(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t_compile = cuda_time(step, 1)  # first step: includes compilation when compiled
    cuda_time(step, args.warmup)
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(step, args.steps)
    tokens = args.batch * args.seq * args.steps
    result = {"mode": "torch.compile + PEFT" if compile_model else "eager + PEFT", "batch": args.batch,
              "seq": args.seq, "steps": args.steps, "seconds": round(seconds, 4),
              "tokens_per_s": round(tokens / seconds, 1), "first_step_s": round(t_compile, 2),
              "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "lora_params": n_lora}
    del model, fwd, opt
    torch.cuda.empty_cache()
    return result


def _fused_ok() -> bool:
    import inspect
    import torch
    return "fused" in inspect.signature(torch.optim.AdamW).parameters


def copy_bandwidth_gbs() -> float:
    """Device-to-device copy of 1 GiB: bytes read + written per second (the decode floor's bandwidth)."""
    import torch
    n = 2**28  # fp32 values = 1 GiB
    src = torch.empty(n, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    seconds = cuda_time(lambda: dst.copy_(src), 20)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * 4 * n * 20 / seconds / 1e9


def decode_latency(config, args) -> dict:
    import torch
    model = make_model(config, torch.bfloat16).cuda().eval()
    gen = torch.Generator(device="cuda").manual_seed(2)
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt), device="cuda", generator=gen)
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)

        def one():
            nonlocal past, token
            o = model(input_ids=token, past_key_values=past, use_cache=True)
            past = o.past_key_values
            token = o.logits[:, -1:].argmax(-1)

        cuda_time(one, min(8, args.decode_tokens))
        seconds = cuda_time(one, args.decode_tokens)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if not getattr(config, "tie_word_embeddings", False):
        emb = model.get_input_embeddings().weight  # an untied embedding is only gathered (one row per token)
        weight_bytes -= emb.numel() * emb.element_size()
    del model
    torch.cuda.empty_cache()
    bw = copy_bandwidth_gbs()
    ms = seconds / args.decode_tokens * 1e3
    floor_ms = weight_bytes / (bw * 1e9) * 1e3
    return {"mode": "eager, HF KV cache, greedy, batch 1", "prompt": args.prompt, "tokens": args.decode_tokens,
            "ms_per_token": round(ms, 3), "weights_bytes_read_per_token": weight_bytes,
            "copy_bandwidth_gbs": round(bw, 1), "floor_ms_per_token": round(floor_ms, 3),
            "ratio_to_floor": round(ms / floor_ms, 2)}


def flops_per_token(config, params: dict, seq: int, n_lora: int) -> dict:
    attn = 3 * 2 * 2 * config.num_hidden_layers * seq * params["attn_dim"] / 2
    n = params["matmul_N"]
    return {"attention_fwd_bwd": attn, "six_n": 6 * n + attn, "four_n": 4 * n + 6 * n_lora + attn}


def cmd_bench(args) -> dict:
    require_packages()
    import torch
    dev = device_info()
    config = build_config(args)
    params = count_params(config)
    peak = peak_tflops(dev["name"], args.peak_tflops)
    log(f"model: {params['total'] / 1e6:.1f}M parameters, device {dev['name']}")
    result = {"tool": "gpu-baseline.py bench", "versions": versions(), "device": dev,
              "model": {k: getattr(config, k) for k in DEFAULT_MODEL if hasattr(config, k)} | {"params": params},
              "lora": {"r": args.rank, "alpha": args.alpha, "targets": PROJECTIONS, "dtype": "bf16 base, autocast bf16"},
              "peak_bf16_tflops": peak, "train": [], "decode": None, "errors": []}
    torch.backends.cuda.matmul.allow_tf32 = True
    oom = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
    modes = [False] + ([True] if not args.no_compile else [])
    for compiled in modes:
        try:
            r = train_throughput(config, args, compiled)
            f = flops_per_token(config, params, args.seq, r["lora_params"])
            r["flops_per_token"] = f
            if peak:
                r["mfu_6n"] = round(f["six_n"] * r["tokens_per_s"] / (peak * 1e12), 4)
                r["mfu_4n"] = round(f["four_n"] * r["tokens_per_s"] / (peak * 1e12), 4)
            result["train"].append(r)
            log(f"train {r['mode']}: {r['tokens_per_s']} tokens/s")
        except oom as e:
            result["errors"].append(f"train compile={compiled}: out of memory at batch {args.batch} ({e}); try --batch smaller")
            torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 - one mode failing must not lose the others
            result["errors"].append(f"train compile={compiled}: {type(e).__name__}: {e}")
            log(traceback.format_exc())
    if not args.no_decode:
        try:
            result["decode"] = decode_latency(config, args)
            log(f"decode: {result['decode']['ms_per_token']} ms/token")
        except Exception as e:  # noqa: BLE001
            result["errors"].append(f"decode: {type(e).__name__}: {e}")
            log(traceback.format_exc())
    return result


# ------------------------------------------------------------------------------------------------ parity

def load_model_folder(path: str):
    import torch
    from transformers import AutoModelForCausalLM
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ToolError(f"{path}: no config.json (expected a model folder written by `tpeft init`)")
    if not any(f.endswith(".safetensors") for f in os.listdir(path)):
        raise ToolError(f"{path}: no *.safetensors weights")
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, local_files_only=True)
    return model.eval()


def logits_json(model, ids: list[int], last_only: bool) -> dict:
    import torch
    vocab = model.config.vocab_size
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ToolError(f"--ids: {bad[:5]} outside the vocabulary [0, {vocab})")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0].float().cpu()
    if last_only:
        logits = logits[-1:]
    return {"ids": ids, "shape": list(logits.shape), "logits": logits.tolist(),
            "argmax": logits.argmax(-1).tolist(), "device": device}


def cmd_logits(args) -> dict:
    require_packages(need_peft=bool(args.adapter))
    model = load_model_folder(args.model)
    if args.adapter:
        from peft import PeftModel
        if not os.path.isfile(os.path.join(args.adapter, "adapter_config.json")):
            raise ToolError(f"{args.adapter}: no adapter_config.json (expected a PEFT adapter folder)")
        model = PeftModel.from_pretrained(model, args.adapter, is_trainable=False).eval()
    out = logits_json(model, parse_ids(args.ids), args.last_only)
    out.update({"model": args.model, "adapter": args.adapter, "versions": versions()})
    return out


def cmd_save_adapter(args) -> dict:
    require_packages()
    import torch
    model = load_model_folder(args.model)
    model = add_lora(model, args.rank, args.alpha)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, args.b_std)  # PEFT starts B at zero; give it values so the adapter matters
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    written = sorted(os.listdir(args.out))
    if "adapter_model.safetensors" not in written:
        raise ToolError(f"{args.out}: PEFT wrote {written}, expected adapter_model.safetensors")
    out = {"adapter": args.out, "files": written, "r": args.rank, "alpha": args.alpha, "targets": PROJECTIONS}
    if args.ids:
        out["check"] = logits_json(model.eval(), parse_ids(args.ids), args.last_only)
    return out


# ------------------------------------------------------------------------------------------------ main

def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("bench", help="LoRA training throughput, decode latency, MFU (JSON)")
    b.add_argument("--config", help="a config.json (or folder) to use instead of the default ~0.5B Llama")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size"):
        b.add_argument("--" + key.replace("_", "-"), dest=key, type=int, help=f"override {key}")
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--seq", type=int, default=1024)
    b.add_argument("--rank", type=int, default=16)
    b.add_argument("--alpha", type=int, default=32)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--prompt", type=int, default=128, help="decode: prompt length before timing")
    b.add_argument("--decode-tokens", type=int, default=128)
    b.add_argument("--peak-tflops", type=float, help="bf16 dense peak of the card, if not known by name")
    b.add_argument("--no-compile", action="store_true")
    b.add_argument("--no-decode", action="store_true")

    lg = sub.add_parser("logits", help="logits of a tpeft model folder (+ optional PEFT adapter) for ids")
    lg.add_argument("--model", required=True)
    lg.add_argument("--adapter")
    lg.add_argument("--ids", required=True, help="comma-separated token ids")
    lg.add_argument("--last-only", action="store_true")

    sa = sub.add_parser("save-adapter", help="write a PEFT LoRA adapter for a model folder")
    sa.add_argument("--model", required=True)
    sa.add_argument("--out", required=True)
    sa.add_argument("--rank", type=int, default=8)
    sa.add_argument("--alpha", type=int, default=16)
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--b-std", type=float, default=0.02)
    sa.add_argument("--ids", help="also print the adapted model's logits for these ids")
    sa.add_argument("--last-only", action="store_true")

    args = p.parse_args(argv)
    for name in ("batch", "seq", "steps", "rank", "decode_tokens", "prompt"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    try:
        handler = {"bench": cmd_bench, "logits": cmd_logits, "save-adapter": cmd_save_adapter}[args.cmd]
        result = handler(args)
    except ToolError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        log(f"error: {e}")
        return 2
    except Exception as e:  # noqa: BLE001 - always leave a JSON record behind
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        log(traceback.format_exc())
        return 1
    print(json.dumps(result, indent=1, default=lambda o: o if isinstance(o, (int, float, str)) else str(o)), flush=True)
    return 1 if isinstance(result, dict) and result.get("errors") and not result.get("train") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
