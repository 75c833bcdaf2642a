"""Training and inference throughput: our BERT fast path against transformers, in one process.

Training step = forward + backward + gradient clipping + AdamW step, on the same batches (DNABERT-style
windows: 10% shorter, padded to the longest; RandomMask masking, ~15% of tokens labelled) from the same
initial weights, with the same dropout and optimizer on both sides:

* transformers ``BertForMaskedLM`` (``attn_implementation="sdpa"``), the usual route: the MLM head over
  every token, labels -100 except at masked positions;
* ours: ``randommask.model.BertForMaskedLM`` with ``masked_only=True`` (the head, and the last layer's
  queries and feed-forward, on masked positions only), the vocabulary padded to a multiple of 64, no
  attention mask when a batch has no padding, optionally ``torch.compile`` (``--compile``).

Inference: mean-pooled embeddings per second, our ``BertEncoderModel`` against transformers' ``BertModel``
(SDPA), same weights. Rounds are interleaved (ours and theirs alternate) and medians reported, so that
a machine shared with other work slows both sides alike. Peak memory: CUDA ``max_memory_allocated`` during
the steps, above what was resident before; CPU: growth of the peak resident set size (VmHWM, the
per-program ``ru_maxrss``) over 4 training steps, each side measured in a fresh child process. MFU
counts model FLOPs per token, 6 N + 12 L T d (N non-embedding parameters), against a matrix-multiply
peak timed in this run (bf16 on GPU, the run's dtype on CPU).

    python bench/train_throughput.py --preset small --batch 8 --threads 1            # CPU, fp32
    python bench/train_throughput.py --preset base --batch 64 --seq 512 --dtype bf16 --compile   # GPU

The last line is the headline ratio (training tokens/s, ours / transformers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import unittest.mock
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import randommask.model
from randommask.masking import MaskingConfig, apply_mask, masking_rng
from randommask.model import (
    BertForMaskedLM,
    hf_config_dict,
    hf_state_dict,
    load_hf_state_dict,
    model_config,
    num_parameters,
)
from randommask.pretrain import PretrainConfig, compile_model, make_optimizer
from randommask.tokenizers import KmerTokenizer

# ------------------------------------------------------------------------------------------ set-up


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("tiny", "small", "base"), help="default: base on CUDA, small on CPU")
    ap.add_argument("--batch", type=int, help="windows per step (default: 64 on CUDA, 8 on CPU)")
    ap.add_argument("--seq", type=int, default=512, help="tokens per window, [CLS] and [SEP] included")
    ap.add_argument("--steps", type=int, help="timed steps per round and side (default: 20 CUDA, 3 CPU)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    ap.add_argument("--warmup", type=int, help="untimed steps per side first (default: 5 CUDA, 1 CPU)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--dtype", choices=("fp32", "bf16"), help="autocast dtype (default: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--compile", action="store_true", help="torch.compile our model (eager fallback if it fails)")
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing in our model")
    ap.add_argument("--ablate", action="store_true",
                    help="time our model with the fast-path options added one at a time (and some alone)")
    ap.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout, both sides")
    ap.add_argument("--short-prob", type=float, default=0.1, help="share of shorter windows (DNABERT: 0.1)")
    ap.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--infer-batch", type=int, help="batch for the inference comparison (default: --batch)")
    ap.add_argument("--no-infer", action="store_true", help="skip the inference comparison")
    ap.add_argument("--no-memory", action="store_true", help="skip the CPU memory measurement (child processes)")
    ap.add_argument("--no-hf", action="store_true", help="time our model only (also automatic without transformers)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU: checks that the script runs")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.smoke:
        args.device, args.preset, args.seq = "cpu", args.preset or "tiny", min(args.seq, 64)
        args.batch, args.steps, args.rounds, args.warmup = args.batch or 2, args.steps or 1, 1, 1
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda, but no CUDA GPU is available")
    args.device = "cuda" if cuda else "cpu"
    args.preset = args.preset or ("base" if cuda else "small")
    args.batch = args.batch or (64 if cuda else 8)
    args.steps = args.steps or (20 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.dtype = args.dtype or ("bf16" if cuda else "fp32")
    args.infer_batch = args.infer_batch or args.batch
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def make_batches(args: argparse.Namespace, tok: KmerTokenizer, n: int, device: torch.device) -> list[dict]:
    """`n` masked batches of random DNA windows in DNABERT's manner, already on the device."""
    rng = np.random.default_rng(0)
    full = tok.bases_for_tokens(args.seq - 2)
    shortest = tok.bases_for_tokens(min(16, args.seq - 2))
    mcfg = MaskingConfig(strategy="randommask", k=tok.k, total_steps=1000)
    out = []
    for i in range(n):
        lengths = [full if rng.random() >= args.short_prob else int(rng.integers(shortest, full + 1))
                   for _ in range(args.batch)]
        seqs = [rng.integers(0, 4, size=length).astype(np.uint8) for length in lengths]
        enc = tok.encode_batch(seqs, max_length=args.seq, truncation=True)
        inputs, labels, _ = apply_mask(enc.ids, enc.special_mask, masking_rng(0, 500, 0, i), mcfg, 500,
                                       tok.mask_id, tok.kmer_ids)
        am = torch.from_numpy(enc.attention_mask)
        out.append({"input_ids": torch.from_numpy(inputs).long().to(device),
                    "attention_mask": am.to(device),
                    "ours_mask": None if bool(am.all()) else am.to(device),  # as the pre-training loop passes it
                    "labels": torch.from_numpy(labels.astype(np.int64)).to(device),
                    "tokens": int(am.sum())})
    return out


@dataclass
class Variant:
    """One side of the comparison: transformers' model, or ours with some of the fast-path options."""

    name: str
    label: str
    kind: str = "ours"  # "ours" or "hf"
    pad: int = 64  # vocabulary padded to a multiple of this
    masked_only: bool = True  # MLM head (and last layer's queries / feed-forward) on masked positions only
    fused: bool = True  # fused AdamW, where the device has it
    compile: bool = False
    checkpointing: bool = False
    cheap_dropout: bool = True  # our attention-dropout path on the CPU (else SDPA's math path with dropout)
    dropout: float | None = None  # None: --dropout


def variants(args: argparse.Namespace, with_hf: bool) -> list[Variant]:
    out = [Variant("hf", "transformers BertForMaskedLM (SDPA)", kind="hf")] if with_hf else []
    if args.ablate:
        out += [Variant("plain", "ours: full head, vocab 4101, AdamW foreach", pad=1, masked_only=False, fused=False,
                        cheap_dropout=False),
                Variant("masked", "  + masked-only head and last layer", pad=1, fused=False, cheap_dropout=False),
                Variant("padded", "  + vocab padded to 64", fused=False, cheap_dropout=False),
                *([Variant("fused", "  + fused AdamW", cheap_dropout=False),
                   Variant("ours", "  + CPU attention-dropout path (= fast path)")] if args.device == "cpu" else
                  [Variant("ours", "  + fused AdamW (= fast path)")]),  # the CPU dropout path is CPU-only
                Variant("ckpt", "  fast path + activation checkpointing", checkpointing=True),
                Variant("nodrop", "  fast path, dropout 0 (this side only)", dropout=0.0)]
        if args.compile:
            out.append(Variant("compiled", "  fast path + torch.compile", compile=True))
    else:
        out.append(Variant("ours", "ours, fast path" + (" + torch.compile" if args.compile else "")
                           + (" + activation checkpointing" if args.checkpointing else ""),
                           compile=args.compile, checkpointing=args.checkpointing))
    return out


_REFERENCE: dict[tuple, dict[str, torch.Tensor]] = {}  # initial weights (HF layout), made once per shape


def build_model(v: Variant, args: argparse.Namespace, vocab: int, device: torch.device) -> torch.nn.Module:
    """The variant's model, carrying the common initial weights (seed 0; padding rows zero)."""
    p = args.dropout if v.dropout is None else v.dropout
    over = {"hidden_dropout": p, "attention_dropout": p, "max_position_embeddings": max(512, args.seq)}
    key = (args.preset, vocab, p, args.seq)
    if key not in _REFERENCE:
        torch.manual_seed(0)
        _REFERENCE[key] = hf_state_dict(BertForMaskedLM(model_config(args.preset, vocab, **over)))
    reference = _REFERENCE[key]
    if v.kind == "hf":
        import transformers

        hf = transformers.BertForMaskedLM(transformers.BertConfig(**hf_config_dict(model_config(
            args.preset, vocab, **over)), attn_implementation="sdpa"))
        result = hf.load_state_dict(reference, strict=False)
        assert not result.unexpected_keys and all("position_ids" in k or "token_type_ids" in k
                                                  for k in result.missing_keys), result
        return hf.to(device)
    model = BertForMaskedLM(model_config(args.preset, vocab, pad_vocab_multiple=v.pad, **over))
    load_hf_state_dict(model, reference)
    model.bert.gradient_checkpointing = v.checkpointing
    return model.to(device)


def sdpa_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                 dropout_p: float) -> torch.Tensor:
    """The ablation of our CPU attention-dropout path: SDPA's own (math-kernel) dropout."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def ablation(v: Variant) -> Any:
    """What a variant turns off in the model, set from here (the product code has no switch for it)."""
    if v.kind == "hf" or v.cheap_dropout:
        return contextlib.nullcontext()
    return unittest.mock.patch.object(randommask.model, "attention_with_dropout", sdpa_dropout)


def fused_ok(device: torch.device) -> bool:
    """Fused AdamW where this torch has it for the device (CUDA; CPU since torch 2.4)."""
    try:
        p = torch.nn.Parameter(torch.zeros(2, device=device))
        p.grad = torch.zeros_like(p)
        torch.optim.AdamW([p], fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, smoke: bool) -> float:
    """Best FLOP/s of a large square matrix multiply on this device in this dtype."""
    n = 8192 if device.type == "cuda" else (512 if smoke else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 10 if device.type == "cuda" else 1
    best = float("inf")
    for _ in range(4 if smoke else 6):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n**3 / best


# ------------------------------------------------------------------------------------------ timing


def make_step(v: Variant, model: torch.nn.Module, fwd: Any, opt: torch.optim.Optimizer, autocast: Any):
    """One training step on a batch: forward, backward, gradient clipping (1.0), AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(batch: dict) -> None:
        with ablation(v), autocast():
            if v.kind == "hf":
                loss = fwd(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"]).loss
            else:
                loss = fwd(batch["input_ids"], batch["ours_mask"], labels=batch["labels"],
                           masked_only=v.masked_only).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def prepare_side(v: Variant, args: argparse.Namespace, vocab: int, device: torch.device, batches: list[dict],
                 autocast: Any, fused: bool) -> tuple[torch.nn.Module, Any, float | None]:
    """(model, training step, seconds spent compiling); a compile that fails falls back, with a warning."""
    model = build_model(v, args, vocab, device).train()
    opt = make_optimizer(model, PretrainConfig(), fused=fused and v.fused)
    fwd: Any = model
    compile_s = None
    if v.compile:
        b0 = batches[0]
        t0 = time.perf_counter()
        with ablation(v):
            fwd = compile_model(model, {"input_ids": b0["input_ids"], "attention_mask": b0["ours_mask"],
                                        "labels": b0["labels"], "masked_only": v.masked_only}, autocast)
        sync(device)
        compile_s = time.perf_counter() - t0 if fwd is not model else None
    return model, make_step(v, model, fwd, opt, autocast), compile_s


def run_steps(step: Any, batches: list[dict], n: int, start: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        step(batches[(start + i) % len(batches)])
    sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Seconds of each callable per round; the order reverses every other round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(fns[name]())
    return times


def cuda_step_memory(step: Any, batches: list[dict], device: torch.device) -> float:
    """Peak bytes allocated during two steps, above what was allocated before them."""
    sync(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    for b in batches[:2]:
        step(b)
    sync(device)
    return torch.cuda.max_memory_allocated(device) - before


def cpu_step_memory(name: str, argv: list[str]) -> float | None:
    """Growth of the peak RSS during 4 steps over model creation, in a fresh child process (bytes)."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--memory-child", name]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        return float(json.loads(done.stdout.strip().splitlines()[-1])["rss_growth"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def memory_child(args: argparse.Namespace) -> None:
    device = torch.device("cpu")
    tok = KmerTokenizer.from_name("kmer6")
    batches = make_batches(args, tok, 2, device)
    v = next(v for v in variants(args, with_hf=True) if v.name == args.memory_child)
    v.compile = False  # the eager model's memory
    _, step, _ = prepare_side(v, args, tok.vocab_size, device, batches, autocast_for(args, device),
                              fused_ok(device))
    before = peak_rss()
    for b in batches + batches:
        step(b)
    print(json.dumps({"rss_growth": peak_rss() - before}))


def peak_rss() -> int:
    """Peak resident set size of this process image so far, in bytes.

    VmHWM from /proc/self/status where there is one (Linux): unlike ru_maxrss, which a child inherits
    from its parent across fork + exec (so a child of a big process could show no growth at all), it
    starts afresh with the new program. ru_maxrss elsewhere (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def autocast_for(args: argparse.Namespace, device: torch.device) -> Any:
    if args.dtype == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


# ------------------------------------------------------------------------------------------ inference


def infer_bench(args: argparse.Namespace, encoders: dict[str, torch.nn.Module], batches: list[dict],
                device: torch.device, autocast: Any) -> dict[str, float]:
    """Mean-pooled embeddings per second: our encoder against transformers' BertModel, same weights."""
    for enc in encoders.values():
        enc.eval()
    inputs = []
    for b in batches:
        reps = math.ceil(args.infer_batch / args.batch)
        ids = b["input_ids"].repeat(reps, 1)[: args.infer_batch]
        am = b["attention_mask"].repeat(reps, 1)[: args.infer_batch]
        inputs.append((ids, am, None if bool(am.all()) else am))

    def embed(name: str, ids: torch.Tensor, am: torch.Tensor, ours_am: torch.Tensor | None) -> torch.Tensor:
        with torch.inference_mode(), autocast():
            if name == "ours":
                hidden = encoders["ours"](ids, ours_am).last_hidden_state
            else:
                hidden = encoders["hf"](input_ids=ids, attention_mask=am).last_hidden_state
            w = am[..., None].to(hidden.dtype)
            return (hidden * w).sum(1) / w.sum(1)

    out: dict[str, float] = {}
    if "hf" in encoders:
        diff = (embed("ours", *inputs[0]).float() - embed("hf", *inputs[0]).float()).abs().max()
        out["max_abs_diff"] = float(diff)

    def go(name: str):
        def run() -> float:
            sync(device)
            t0 = time.perf_counter()
            for x in inputs:
                embed(name, *x)
            sync(device)
            return time.perf_counter() - t0
        return run

    for name in encoders:
        go(name)()  # warm-up
    times = interleaved({name: go(name) for name in encoders}, args.rounds)
    for name, ts in times.items():
        out[name] = len(inputs) * args.infer_batch / statistics.median(ts)
    for enc in encoders.values():
        enc.train()
    return out


# ------------------------------------------------------------------------------------------ main


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def write_json(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Write (or rewrite) the --json file with what is measured so far."""
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return {}
    device = torch.device(args.device)
    with_hf = not args.no_hf
    if with_hf:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print("transformers is not installed: timing our model only")
            with_hf = False
    tok = KmerTokenizer.from_name("kmer6")
    batches = make_batches(args, tok, 4, device)
    autocast = autocast_for(args, device)
    cfg = model_config(args.preset, tok.vocab_size)
    with torch.device("meta"):
        n_params = num_parameters(BertForMaskedLM(cfg), exclude_embeddings=True)
    flops_per_token = 6 * n_params + 12 * cfg.num_layers * args.seq * cfg.hidden_size
    peak_dtype = torch.bfloat16 if (device.type == "cuda" or args.dtype == "bf16") else torch.float32
    peak = matmul_peak(device, peak_dtype, args.smoke)
    threads = torch.get_num_threads()
    padding = 1 - sum(b["tokens"] for b in batches) / (len(batches) * args.batch * args.seq)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu, {threads} thread{'s' if threads > 1 else ''}")
    print(f"train_throughput: preset {args.preset} ({cfg.num_layers}x{cfg.hidden_size}x{cfg.num_heads}, vocab "
          f"{cfg.vocab_size}), batch {args.batch} x {args.seq} tokens ({padding:.1%} padding), {where}, "
          f"{args.dtype}, dropout {args.dropout}, torch {torch.__version__}")
    print(f"matmul peak: {peak / 1e12:.3f} TFLOP/s ({str(peak_dtype).replace('torch.', '')}); model FLOPs "
          f"6N + 12LTd = {flops_per_token / 1e6:.1f} M per token (N = {n_params / 1e6:.2f} M non-embedding "
          "parameters)")
    results: dict[str, Any] = {"preset": args.preset, "batch": args.batch, "seq": args.seq, "device": where,
                               "dtype": args.dtype, "dropout": args.dropout, "padding": padding,
                               "matmul_peak_flops": peak, "flops_per_token": flops_per_token,
                               "torch": torch.__version__, "threads": threads, "steps": args.steps,
                               "rounds": args.rounds}
    fused = fused_ok(device)
    sides = variants(args, with_hf)
    models, steps, labels = {}, {}, {}
    for v in sides:
        models[v.name], steps[v.name], compile_s = prepare_side(v, args, tok.vocab_size, device, batches, autocast,
                                                                fused)
        labels[v.name] = v.label
        if v.compile:
            if compile_s is None:
                labels[v.name] += " (failed: eager)"
            else:
                results["compile_s"] = compile_s

    # --- correctness first: the same weights give the same loss (dropout off) and the same embeddings
    b0 = batches[0]
    if "hf" in models:
        with torch.no_grad(), autocast():
            models["ours"].eval()
            models["hf"].eval()
            loss_ours = float(models["ours"](b0["input_ids"], b0["ours_mask"], labels=b0["labels"],
                                             masked_only=True).loss)
            loss_hf = float(models["hf"](input_ids=b0["input_ids"], attention_mask=b0["attention_mask"],
                                         labels=b0["labels"]).loss)
        print(f"same weights, dropout off: loss ours {loss_ours:.6f}, transformers {loss_hf:.6f} "
              f"(|diff| {abs(loss_ours - loss_hf):.1e})")
        results["initial_loss"] = {"ours": loss_ours, "hf": loss_hf}
        models["ours"].train()
        models["hf"].train()

    # --- inference: mean-pooled embeddings per second (before training: the weights are still equal)
    if not args.no_infer:
        encoders = {"ours": models["ours"].bert} | ({"hf": models["hf"].bert} if "hf" in models else {})
        results["infer"] = infer_bench(args, encoders, batches, device, autocast)
        write_json(args, results)

    # --- training
    warmup = args.warmup + (3 if args.compile else 0)  # compiled: dynamic-shape recompiles happen here
    for name, step in steps.items():
        sync(device)
        t0 = time.perf_counter()
        run_steps(step, batches, warmup, 0, device)
        if name in {v.name for v in sides if v.compile} and "compile_s" in results:
            sync(device)  # the recompiles for other masked-row counts belong to compiling too
            results["compile_s"] += time.perf_counter() - t0
    write_json(args, results)  # a run stopped by a time limit still leaves what it measured
    counter = {"i": 0}

    def timed(name: str):
        def go() -> float:
            counter["i"] += 1
            return run_steps(steps[name], batches, args.steps, counter["i"], device)
        return go

    times = interleaved({name: timed(name) for name in steps}, args.rounds)
    tokens = args.steps * args.batch * args.seq
    train: dict[str, Any] = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        train[name] = {"label": labels[name], "tokens_per_s": tokens / med, "step_ms": 1e3 * med / args.steps,
                       "mfu": tokens / med * flops_per_token / peak, "rounds_s": ts}
    top = "compiled" if "compiled" in train and "(failed" not in labels["compiled"] else "ours"
    base = train["hf"]["tokens_per_s"] if "hf" in train else None
    if base:
        results["ratio"] = train[top]["tokens_per_s"] / base
    write_json(args, {**results, "train": train})
    if device.type == "cuda":
        for name, step in steps.items():
            train[name]["peak_memory"] = cuda_step_memory(step, batches, device)
        mem_note = "CUDA max_memory_allocated during 2 steps, above what was allocated before them"
    elif not args.no_memory:
        child_argv = [a for a in argv if a not in ("--compile", "--no-infer")]
        for name in steps:
            if name != "compiled":
                train[name]["peak_memory"] = cpu_step_memory(name, child_argv)
        mem_note = "growth of peak RSS (VmHWM) during 4 steps over model creation, one child process per side"
    else:
        mem_note = "not measured (--no-memory)"
    results.update({"train": train, "optimizer": "AdamW fused" if fused else "AdamW (foreach)",
                    "memory_note": mem_note})

    print(f"training: {args.rounds} interleaved rounds x {args.steps} steps (+{warmup} warm-up), medians; "
          f"{results['optimizer']} unless said; clip 1.0"
          + (f"; compiled in {results['compile_s']:.0f} s" if "compile_s" in results else ""))
    if base:  # ratios round by round (each round's sides ran close together): robust to load drifting
        for t in train.values():
            t["paired_ratio"] = statistics.median(h / x for h, x in zip(train["hf"]["rounds_s"], t["rounds_s"],
                                                                        strict=True))
    print(f"  {'model':<46}{'tokens/s':>12}{'step ms':>10}{'MFU':>8}{'peak memory':>14}"
          + (f"{'vs HF':>8}{'paired':>8}" if base else ""))
    for t in train.values():
        print(f"  {t['label']:<46}{t['tokens_per_s']:>12,.0f}{t['step_ms']:>10.1f}{t['mfu']:>8.1%}"
              f"{fmt_bytes(t.get('peak_memory')):>14}"
              + (f"{t['tokens_per_s'] / base:>7.2f}x{t['paired_ratio']:>7.2f}x" if base else ""))
    if base:
        print("  vs HF: ratio of the median tokens/s; paired: median over rounds of the per-round ratio")
    print(f"  memory: {mem_note}")
    if "infer" in results:
        inf = results["infer"]
        print(f"inference: mean-pooled embeddings/s, batch {args.infer_batch}, {args.rounds} rounds")
        for name, text in (("hf", "transformers BertModel (SDPA)"), ("ours", "ours, BertEncoderModel")):
            if name in inf:
                print(f"  {text:<46}{inf[name]:>12,.1f}")
        if "hf" in inf:
            print(f"  ratio {inf['ours'] / inf['hf']:.2f}x (max |embedding diff| at equal weights "
                  f"{inf['max_abs_diff']:.1e})")
    where_short = f"{args.device}, {args.dtype}, dropout {args.dropout}" + (
        ", compiled" if args.compile and "(failed" not in labels[top] and (top == "compiled" or not args.ablate)
        else "")
    write_json(args, results)
    if base:
        print(f"headline: training {results['ratio']:.2f}x transformers BertForMaskedLM (SDPA): "
              f"{train[top]['tokens_per_s']:,.0f} vs {base:,.0f} tokens/s ({args.preset}, {args.batch}x{args.seq}, "
              f"{where_short}; paired per-round median {train[top]['paired_ratio']:.2f}x)")
    else:
        print(f"headline: training {train[top]['tokens_per_s']:,.0f} tokens/s ({args.preset}, "
              f"{args.batch}x{args.seq}, {where_short}); no transformers baseline")
    return results


if __name__ == "__main__":
    main()
