"""Masked-language-model pre-training: config, batches, the training loop, checkpoints and resume.

The loop is explicit, top to bottom (`pretrain`). What makes a run exactly resumable:

* the batch of step s on rank r is a pure function of (seed, s, r): its windows are numbers
  ``(s * grad_accum + a) * batch_size + j`` of the rank's window stream (`randommask.genome`), and its
  mask comes from ``masking_rng(seed, s, r, a)`` at step s, so the RandomMask phase follows the step;
* the checkpoint holds model, optimizer, scheduler, torch RNG state (dropout), the step, the config
  and the vocabulary, and is written atomically (`randommask.checkpoint`).

Distributed training: launch with ``torchrun``; each rank draws its own window stream, gradients are
averaged by DistributedDataParallel (gloo on CPU, NCCL on GPU), and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from randommask import checkpoint as ckpt
from randommask.config import from_dict, save_yaml, to_dict
from randommask.errors import RandomMaskError
from randommask.files import atomic_write_text, folder_lock
from randommask.genome import GenomeStore, SamplerConfig, WindowSampler, held_out_windows, prepare
from randommask.masking import IGNORE_INDEX, MaskingConfig, apply_mask, describe, eval_rng, masking_rng, plan
from randommask.masking import strategy as mask_strategy
from randommask.model import BertForMaskedLM, ModelConfig, load_hf_state_dict, model_config, num_parameters
from randommask.runtime import (
    Dist,
    adamw,
    autocast_for,
    linear_schedule,
    pick_device,
    setup_distributed,
    use_deterministic,
)
from randommask.tokenizers import Tokenizer, from_name


# ------------------------------------------------------------------------------------------ config
@dataclass
class DataConfig:
    """Where the DNA comes from and how windows are drawn.

    fasta: FASTA files (plain, gzip or bgzip) prepared once into ``<out_dir>/genome``.
    store: a folder made by ``randommask prepare`` (used instead of fasta).
    max_tokens: tokens per window, [CLS] and [SEP] included (DNABERT: 512).
    short_prob: share of windows given a random shorter length (DNABERT's trick).
    max_n_fraction: windows with more N than this are skipped.
    reverse_complement_prob: share of windows read from the reverse strand.
    heldout_fraction: the last share of every record, held out for evaluation, never trained on.
    num_workers: DataLoader worker processes that tokenize and mask (0: in the training process).
    long_max_tokens, long_every, long_from: every ``long_every``-th step (from ``long_from`` of the steps on)
        draws windows of ``long_max_tokens`` tokens,
        with the batch cut so that the step holds as many tokens as the others (``batch_size *
        max_tokens // long_max_tokens`` windows). Interleaved, so every checkpoint has trained those
        positions. Short windows learn fast and cheaply; the long steps train the positions that
        100-bp tasks use.
    long_fraction, tail_max_tokens: the last ``long_fraction`` of the steps draw windows of
        ``tail_max_tokens`` tokens (0: ``long_max_tokens``), same tokens per step (BERT's recipe: its
        last 10% at 512 tokens, for the 500-bp tasks). Either placement, or both: inside the tail
        every step is a tail step.
    """

    fasta: list[str] = field(default_factory=list)
    store: str | None = None
    max_tokens: int = 512
    short_prob: float = 0.1
    max_n_fraction: float = 0.05
    reverse_complement_prob: float = 0.0
    heldout_fraction: float = 0.01
    num_workers: int = 0
    long_max_tokens: int = 0  # tokens per window of the long steps (0: none)
    long_every: int = 0  # every n-th step draws long windows (0: none)
    long_from: float = 0.0  # the interleaved long steps start at this share of the steps
    long_fraction: float = 0.0  # share of the steps, at the end, with long windows (the tail)
    tail_max_tokens: int = 0  # tokens per window in the tail (0: long_max_tokens)


@dataclass
class OptimConfig:
    """AdamW with DNABERT's settings, linear warm-up then linear decay to zero."""

    lr: float = 4e-4  # peak learning rate (DNABERT: 4e-4)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas (DNABERT: 0.9, 0.98)
    eps: float = 1e-6  # AdamW epsilon
    weight_decay: float = 0.01  # AdamW weight decay (not on biases and LayerNorm)
    warmup_steps: int = 100  # linear warm-up steps, then linear decay to zero at the last step
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    decay_fraction: float = 1.0  # the decay ends at this share of the steps (1: at the last step) ...
    min_lr_ratio: float = 0.0  # ... at this share of the peak, kept to the end (when decay_fraction < 1)


@dataclass
class PretrainConfig:
    """Everything a pre-training run depends on; saved as ``config.yaml`` in the run folder."""

    out_dir: str = "runs/pretrain"  # the run folder: config, vocabulary, metrics, checkpoints
    tokenizer: str = "kmer6"  # kmer6 (overlapping 6-mers), kmer6-nonoverlap, kmerK..., nt (single nucleotides)
    preset: str = "tiny"  # model shape: tiny, small or base (see randommask.model.PRESETS)
    model: dict = field(default_factory=dict)  # ModelConfig overrides, e.g. {hidden_dropout: 0.0}
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 1000  # optimizer steps in the whole run
    batch_size: int = 32  # windows per micro-batch per rank
    grad_accum: int = 1  # micro-batches per optimizer step
    seed: int = 0  # model init, window stream and masks
    log_interval: int = 10  # steps between metrics.jsonl lines
    eval_interval: int = 200  # steps between evaluations on held-out windows
    eval_windows: int = 64  # held-out windows per evaluation (the same windows and masks every time)
    save_interval: int = 500  # steps between checkpoints
    keep_checkpoints: int = 2  # newest checkpoints kept (0: keep all, for analysis over time)
    max_bad_steps: int = 5  # consecutive steps with a non-finite loss or gradient before the run stops
    device: str = "auto"  # auto, cpu, cuda
    deterministic: bool = False  # deterministic kernels (CPU tests of exact resume)
    progress: bool = True  # show a progress bar
    compile: bool = False  # torch.compile the training forward; falls back to eager, with a warning, if it fails
    activation_checkpointing: bool = False  # recompute layer activations in backward: less memory, ~1/3 more compute

    def validate(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_interval", "eval_interval", "save_interval"):
            if getattr(self, name) < 1:
                raise RandomMaskError(f"config: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "grad_clip", "weight_decay", "warmup_steps"):  # lr 0 keeps the initial weights
            if getattr(self.optim, name) < 0:
                raise RandomMaskError(f"config: optim.{name} must be at least 0, got {getattr(self.optim, name)}")
        if not 0.0 < self.optim.decay_fraction <= 1.0 or not 0.0 <= self.optim.min_lr_ratio < 1.0:
            raise RandomMaskError(f"config: optim.decay_fraction must be in (0, 1] and optim.min_lr_ratio in [0, 1), "
                                  f"got {self.optim.decay_fraction} and {self.optim.min_lr_ratio}")
        if self.optim.min_lr_ratio and self.optim.decay_fraction >= 1.0:
            raise RandomMaskError("config: optim.min_lr_ratio is the floor after an early decay; set "
                                  "optim.decay_fraction below 1 too")
        if self.data.max_tokens < 8:
            raise RandomMaskError(f"config: data.max_tokens must be at least 8, got {self.data.max_tokens}")
        if not 0.0 <= self.data.long_fraction < 1.0:
            raise RandomMaskError(f"config: data.long_fraction must be in [0, 1), got {self.data.long_fraction}")
        if self.data.long_every < 0 or self.data.long_every == 1:
            raise RandomMaskError(f"config: data.long_every must be 0 (off) or at least 2, got {self.data.long_every}")
        d = self.data
        if d.long_every and d.long_max_tokens <= d.max_tokens:
            raise RandomMaskError(f"config: data.long_max_tokens ({d.long_max_tokens}) must exceed "
                                  f"data.max_tokens ({d.max_tokens}) when data.long_every is set")
        if not 0.0 <= d.long_from < 1.0:
            raise RandomMaskError(f"config: data.long_from must be in [0, 1), got {d.long_from}")
        if d.tail_max_tokens and not d.long_fraction:
            raise RandomMaskError("config: data.tail_max_tokens is the window of the tail; set data.long_fraction "
                                  "too")
        if d.long_fraction and (d.tail_max_tokens or d.long_max_tokens) <= d.max_tokens:
            raise RandomMaskError(f"config: the tail's windows ({d.tail_max_tokens or d.long_max_tokens} tokens: "
                                  f"data.tail_max_tokens, else data.long_max_tokens) must exceed data.max_tokens "
                                  f"({d.max_tokens}) when data.long_fraction is set")
        if not self.data.fasta and not self.data.store:
            raise RandomMaskError("config: no training data; give FASTA files (data.fasta) or a prepared store "
                                  "(data.store)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise RandomMaskError(f"config: device must be auto, cpu or cuda, got {self.device!r}")


def long_step(cfg: PretrainConfig, step: int) -> tuple[str, int] | None:
    """Which window stream ``step`` reads and its ordinal there: ("tail", n) for the n-th step of the tail,
    ("long", n) for the n-th interleaved long step, None for a short step."""
    d = cfg.data
    start = cfg.steps - round(cfg.steps * d.long_fraction) if d.long_fraction > 0 else cfg.steps
    if step >= start:
        return "tail", step - start
    if d.long_every and step % d.long_every == d.long_every - 1 and step >= round(cfg.steps * d.long_from):
        return "long", step // d.long_every
    return None


def long_shape(cfg: PretrainConfig, kind: str = "long") -> tuple[int, int]:
    """(windows per micro-batch, tokens per window) of a long or tail step: as many tokens as a short step."""
    tokens = cfg.data.tail_max_tokens or cfg.data.long_max_tokens if kind == "tail" else cfg.data.long_max_tokens
    return max(1, cfg.batch_size * cfg.data.max_tokens // tokens), tokens


def long_kinds(cfg: PretrainConfig) -> list[str]:
    """The long-window streams this run's steps read ("long", "tail"), in the order they first occur."""
    first_long = cfg.data.long_every - 1 + cfg.data.long_every * -(-round(cfg.steps * cfg.data.long_from)
                                                                    // max(1, cfg.data.long_every))
    kinds = [long_step(cfg, s) for s in (first_long, cfg.steps - 1) if s >= 0]
    return list(dict.fromkeys(k[0] for k in kinds if k is not None))


def long_note(cfg: PretrainConfig, kind: str) -> str:
    windows, tokens = long_shape(cfg, kind)
    when = (f"every {cfg.data.long_every}th step" + (f" from step {round(cfg.steps * cfg.data.long_from)}"
                                                     if cfg.data.long_from else "") if kind == "long"
            else f"from step {cfg.steps - round(cfg.steps * cfg.data.long_fraction)}")
    return f" ({kind} steps: {windows} windows of {tokens} tokens, {when})"


def load_config(data: dict) -> PretrainConfig:
    cfg = from_dict(PretrainConfig, data)
    cfg.validate()
    return cfg


# Fields that may differ between a run and its resumption (they change no training result). Not `steps`:
# the learning-rate schedule and the masking phases are planned over them (pretrain refuses a change).
RESUMABLE_CHANGES = {"log_interval", "eval_interval", "save_interval", "keep_checkpoints", "progress",
                     "device", "out_dir", "data.num_workers", "data.fasta", "data.store", "compile",
                     "activation_checkpointing"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "model":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_differences(saved: dict, current: dict) -> list[str]:
    """Keys whose values differ in a way that would make a resumed run not the same run."""
    # A key the saved config lacks (written before the field existed) reads as the field's default.
    a, b = {**_flatten(to_dict(PretrainConfig())), **_flatten(saved)}, _flatten(current)
    diffs = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]
    return [d for d in diffs if d != "masking.total_steps"]  # total_steps follows steps


# ------------------------------------------------------------------------------------------ batches
class MaskedBatches(torch.utils.data.IterableDataset):
    """Masked micro-batches for steps ``start_step ..`` of one rank, as a pure function of the step.

    Micro-batch ``m = step * grad_accum + a`` holds windows ``m * batch_size .. + batch_size - 1`` of the
    rank's stream. DataLoader workers take micro-batches round-robin (worker w: m = w, w + W, ...), which
    is also the order a DataLoader returns them in, so the stream is the same for any worker count.
    """

    def __init__(self, sampler: WindowSampler, tokenizer: Tokenizer, masking: MaskingConfig, cfg: PretrainConfig,
                 rank: int, start_step: int, long_samplers: dict[str, WindowSampler] | None = None) -> None:
        super().__init__()
        self.sampler, self.tokenizer, self.masking, self.cfg = sampler, tokenizer, masking, cfg
        self.rank, self.start_step, self.long_samplers = rank, start_step, long_samplers or {}

    def batch(self, micro: int) -> dict[str, torch.Tensor]:
        cfg, tok = self.cfg, self.tokenizer
        step, a = divmod(micro, cfg.grad_accum)
        where = long_step(cfg, step)
        if where is None:
            sampler, size, max_tokens, first = self.sampler, cfg.batch_size, cfg.data.max_tokens, micro * cfg.batch_size
        else:  # long and tail steps read their own window streams, the n-th such step its n-th windows
            kind, nth = where
            size, max_tokens = long_shape(cfg, kind)
            sampler, first = self.long_samplers[kind], (nth * cfg.grad_accum + a) * size
        windows = [sampler.draw(sampler.global_index(first + j)) for j in range(size)]
        enc = tok.encode_batch(windows, max_length=max_tokens, truncation=True)
        inputs, labels, _ = apply_mask(enc.ids, enc.special_mask, masking_rng(cfg.seed, step, self.rank, a),
                                       self.masking, step, tok.mask_id, tok.kmer_ids, inplace=True)
        return {"input_ids": torch.from_numpy(inputs), "attention_mask": torch.from_numpy(enc.attention_mask),
                "labels": torch.from_numpy(labels.astype(np.int64)), "step": step}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        w, n = (0, 1) if info is None else (info.id, info.num_workers)
        micro = self.start_step * self.cfg.grad_accum + w
        while True:
            yield self.batch(micro)
            micro += n


def eval_batches(store: GenomeStore, window_nt: int, tokenizer: Tokenizer, cfg: PretrainConfig) -> list:
    """The fixed held-out windows, tokenized once (masked anew at each evaluation for the current phase)."""
    windows = held_out_windows(store, window_nt, cfg.eval_windows, cfg.seed, cfg.data.max_n_fraction,
                               cfg.data.heldout_fraction)
    encs = []
    for i in range(0, len(windows), cfg.batch_size):
        encs.append(tokenizer.encode_batch(windows[i : i + cfg.batch_size], max_length=cfg.data.max_tokens,
                                           truncation=True))
    return encs


# ------------------------------------------------------------------------------------------ helpers
def decay_end(cfg: PretrainConfig) -> tuple[int | None, float]:
    """(step where the linear decay ends, the floor it ends at): (None, 0) for BERT's decay to zero at the end."""
    if cfg.optim.decay_fraction >= 1.0:
        return None, 0.0
    return max(warmup_steps(cfg) + 1, round(cfg.steps * cfg.optim.decay_fraction)), cfg.optim.min_lr_ratio


def warmup_steps(cfg: PretrainConfig) -> int:
    """The warm-up, cut to leave at least the last step for decay."""
    return max(0, min(cfg.optim.warmup_steps, cfg.steps - 1))


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with the run's settings (`runtime.adamw`: no weight decay on biases and LayerNorm weights)."""
    o = cfg.optim
    return adamw(model, o.lr, o.weight_decay, betas=o.betas, eps=o.eps, fused=fused)


def compile_model(model: torch.nn.Module, example: dict[str, Any], autocast: Callable[[], Any],
                  main: bool = True) -> Callable[..., Any]:
    """``torch.compile(model)``, tried on one forward and backward of ``example`` (keyword arguments of the
    model); where compiling cannot work (Windows, no C++ compiler, an error at the first call) the eager
    model, with a one-line warning. The try changes nothing: gradients are cleared and the RNG state
    (dropout) restored afterwards."""
    def warn(why: str) -> None:
        if main:
            print(f"warning: torch.compile unavailable ({why}); training without it", file=sys.stderr, flush=True)

    if sys.platform == "win32":
        warn("not supported on Windows")
        return model
    cuda = any(p.is_cuda for p in model.parameters())
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if cuda else None
    try:
        compiled = torch.compile(model)
        with autocast():
            loss = compiled(**example).loss
        loss.backward()
    except Exception as e:  # any failure means: train eagerly
        first = (str(e).strip().splitlines() or [""])[0][:200]
        warn(f"{type(e).__name__}: {first}" if first else type(e).__name__)
        compiled = model
    finally:
        model.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return compiled


def _probe_batch(cfg: PretrainConfig, vocab_size: int, device: torch.device) -> dict[str, Any]:
    """A batch of the training shape (random ids, ~15% labelled, one padded row) for `compile_model`."""
    g = torch.Generator().manual_seed(0)  # not the global generator: that one drives dropout
    b, t = cfg.batch_size, cfg.data.max_tokens
    ids = torch.randint(5, vocab_size, (b, t), generator=g)
    am = torch.ones(b, t, dtype=torch.long)
    am[-1, t // 2 :] = 0
    labels = torch.where((torch.rand(b, t, generator=g) < 0.15) & am.bool(), ids, torch.full_like(ids, IGNORE_INDEX))
    return {"input_ids": ids.to(device), "attention_mask": am.to(device), "labels": labels.to(device),
            "masked_only": True}


def calibrate(tokenizer: Tokenizer, store: GenomeStore, cfg: PretrainConfig) -> Tokenizer:
    """The tokenizer with its bases per token measured on this genome when they vary (BPE) and were not
    measured yet: 256 training windows of 1,000 bases, a pure function of the store and the seed."""
    sampler = WindowSampler(store, SamplerConfig(window_nt=1000, short_prob=0.0, seed=cfg.seed), "train")
    return tokenizer.calibrated(lambda: [sampler.draw(sampler.global_index(i)) for i in range(256)])


def check_masking(tokenizer: Tokenizer, masking: MaskingConfig) -> None:
    """Span masking is defined on overlapping k-mers (a span of k tokens hides one base); for tokens that
    do not overlap (BPE) its meaning is not defined here, so only BERT's single tokens are offered."""
    if tokenizer.kind != "kmer" and masking.strategy != "bert":
        raise RandomMaskError(f"masking {masking.strategy} masks spans of overlapping k-mers; the {tokenizer.name} "
                              f"tokenizer's tokens do not overlap, so use --masking bert (15% of tokens, as "
                              "DNABERT-2)")


def open_store(cfg: PretrainConfig, run_dir: Path, d: Dist) -> GenomeStore:
    """The prepared store: given, or prepared once from the FASTA files into the run folder."""
    if cfg.data.store:
        return GenomeStore.open(cfg.data.store)
    target = run_dir / "genome"
    if d.main and not (target / "index.json").exists():
        for f in cfg.data.fasta:
            if not Path(f).exists():
                raise RandomMaskError(f"{f}: FASTA file not found")
        prepare([Path(f) for f in cfg.data.fasta], target, progress=cfg.progress)
    if d.world > 1:
        dist.barrier()
    return GenomeStore.open(target)


class MetricsLog:
    """``metrics.jsonl``: one JSON object per logged step; on resume, lines past the checkpoint are dropped."""

    def __init__(self, path: Path, resume_step: int | None, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None and path.exists():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    break  # a line cut by a crash: it and anything after it are dropped
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, int | float):
                    self.tb.add_scalar(k, v, record["step"])


class StopSignal:
    """SIGTERM/SIGINT ask the loop to checkpoint and stop after the current step; a second one exits now."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            # Out now, even mid-write: every file we publish is written to a temporary name and renamed,
            # so nothing half-written is ever visible, and the previous checkpoint stays valid.
            os.write(2, b"second signal: exiting now; resume from the last checkpoint with --resume\n")
            os._exit(128 + signum)
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@torch.no_grad()
def evaluate(model: torch.nn.Module, encs: list, tokenizer: Tokenizer, masking: MaskingConfig, step: int,
             seed: int, device: torch.device, autocast: Any) -> dict[str, float]:
    """Masked-token loss and accuracy on the held-out windows, masked as training masks at ``step``."""
    model.eval()
    total_loss, total_correct, total = 0.0, 0, 0
    for i, enc in enumerate(encs):
        inputs, labels, _ = apply_mask(enc.ids, enc.special_mask, eval_rng(seed, i), masking, step,
                                       tokenizer.mask_id, tokenizer.kmer_ids)
        labels_t = torch.from_numpy(labels.astype(np.int64)).to(device)
        with autocast():
            out = model(torch.from_numpy(inputs).to(device), torch.from_numpy(enc.attention_mask).to(device),
                        labels=labels_t, masked_only=True)
        n = int(out.num_masked)
        total_loss += float(out.loss) * n
        total_correct += int((out.logits.argmax(-1) == labels_t[labels_t != IGNORE_INDEX]).sum())
        total += n
    model.train()
    return {"eval_loss": total_loss / max(total, 1), "eval_acc": total_correct / max(total, 1)}


# ------------------------------------------------------------------------------------------ set-up
def check_resume(cfg: PretrainConfig, run_dir: Path, resume: bool | str) -> dict | None:
    """The latest checkpoint of the run folder when resuming (checked against the config), else None; a
    folder that already holds checkpoints is never overwritten without --resume. ``"auto"`` resumes when
    there is a checkpoint and starts the run otherwise: the one command line a requeued job repeats."""
    if resume == "auto":
        resume = ckpt.latest_checkpoint(run_dir) is not None
    if not resume:
        if ckpt.latest_checkpoint(run_dir) is not None:
            raise RandomMaskError(f"{run_dir}: already holds a run with checkpoints; pass --resume to continue it "
                                  "or choose another output folder")
        return None
    path = ckpt.latest_checkpoint(run_dir)
    if path is None:
        raise RandomMaskError(f"{run_dir}: --resume, but the folder has no checkpoint to resume from")
    state = ckpt.load_checkpoint(path)
    planned = state.get("config", {}).get("steps", cfg.steps)
    if planned != cfg.steps:
        raise RandomMaskError(f"{path}: the run was planned over {planned} steps, not {cfg.steps} (the "
                              f"learning-rate schedule and masking phases follow them); resume with "
                              f"--steps {planned}")
    diffs = config_differences(state.get("config", {}), to_dict(cfg))
    if diffs:
        raise RandomMaskError(f"{path}: checkpoint was made with another config (differs in: "
                              f"{', '.join(diffs[:5])}); resume with the same config or use a new --out")
    return state


def model_shape(cfg: PretrainConfig, tokenizer: Tokenizer, state: dict | None, pre: ckpt.Run | None) -> ModelConfig:
    """The model's architecture (the checkpoint's, the starting weights', or the preset's), checked against
    the windows and the vocabulary before any data work."""
    if state is not None:
        mconf = ModelConfig.from_dict(state["model_config"])
    elif pre is not None:  # the architecture of the starting weights; cfg.model may still change dropout etc.
        mconf = ModelConfig.from_dict({**pre.model_config, **cfg.model})
    else:
        # Vocabulary padded to a multiple of 64 (fast matrix shapes on GPUs) unless cfg.model says otherwise;
        # the padding is invisible outside the model (logits sliced, HF export strips it), and is the same on
        # every device so that a checkpoint's shapes do not depend on where the run started.
        # The padding row is the tokenizer's [PAD] (DNABERT-2's vocabulary has it at 3, [UNK] at 0): the
        # embedding at padding_idx never trains, so it must not be a real token's.
        mconf = model_config(cfg.preset, tokenizer.vocab_size,
                             **{"pad_vocab_multiple": 64, "pad_token_id": tokenizer.pad_id, **cfg.model})
    longest = max([cfg.data.max_tokens] + [long_shape(cfg, kind)[1] for kind in long_kinds(cfg)])
    if mconf.max_position_embeddings < longest:
        raise RandomMaskError(f"config: a window of {longest} tokens does not fit the model's "
                              f"{mconf.max_position_embeddings} positions")
    if mconf.vocab_size != tokenizer.vocab_size:
        raise RandomMaskError(f"model vocabulary {mconf.vocab_size} != tokenizer vocabulary {tokenizer.vocab_size}")
    return mconf


def write_run_folder(run_dir: Path, cfg: PretrainConfig, tokenizer: Tokenizer) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, run_dir / "config.yaml")
        tokenizer.save_vocab(run_dir / "vocab.txt")
    except OSError as e:
        raise RandomMaskError(f"{run_dir}: cannot write the run folder ({e.strerror or e})") from None


def samplers(cfg: PretrainConfig, store: GenomeStore, tokenizer: Tokenizer,
             d: Dist) -> tuple[WindowSampler, dict[str, WindowSampler]]:
    """This rank's window streams: the training windows, and those of the long and tail steps by kind."""
    # Windows cut in bases that fill the token budget (exactly, for k-mers; BPE's excess is truncated).
    window_nt = tokenizer.fill_bases(cfg.data.max_tokens - 2)
    scfg = SamplerConfig(window_nt=window_nt, short_prob=cfg.data.short_prob,
                         min_window_nt=min(window_nt, tokenizer.fill_bases(16)),
                         max_n_fraction=cfg.data.max_n_fraction,
                         reverse_complement_prob=cfg.data.reverse_complement_prob,
                         heldout_fraction=cfg.data.heldout_fraction, seed=cfg.seed)
    train = WindowSampler(store, scfg, "train", rank=d.rank, world_size=d.world)
    # The tail's stream gets its own seed so that its windows do not start where the interleaved ones did.
    seeds = {"long": cfg.seed, "tail": cfg.seed + 1}
    return train, {kind: WindowSampler(store, replace(scfg, seed=seeds[kind], window_nt=tokenizer.fill_bases(
        long_shape(cfg, kind)[1] - 2)), "train", rank=d.rank, world_size=d.world) for kind in long_kinds(cfg)}


def restore(state: dict, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, d: Dist,
            device: torch.device) -> int:
    """Model, optimizer, schedule and this rank's RNG states from a checkpoint; returns its step."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"][d.rank] if d.rank < len(state["rng"]["torch"])
                        else state["rng"]["torch"][0])
    cuda_states = state["rng"].get("cuda") or []  # dropout on a GPU draws from the CUDA generator
    if device.type == "cuda" and d.rank < len(cuda_states) and cuda_states[d.rank] is not None:
        torch.cuda.set_rng_state(cuda_states[d.rank], device)
    return int(state["step"])


def batch_loader(batches: MaskedBatches, cfg: PretrainConfig, device: torch.device) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(batches, batch_size=None, num_workers=cfg.data.num_workers,
                                       pin_memory=device.type == "cuda",
                                       prefetch_factor=4 if cfg.data.num_workers else None,
                                       persistent_workers=False,
                                       # Its own generator: creating the iterator must not draw from the
                                       # global RNG, whose state (dropout) the checkpoint restores.
                                       generator=torch.Generator().manual_seed(cfg.seed))


# ------------------------------------------------------------------------------------------ the loop's pieces
@dataclass
class Training:
    """What the loop's steps share: the run, its model and optimizer, and where it reports."""

    cfg: PretrainConfig
    d: Dist
    device: torch.device
    run_dir: Path
    tokenizer: Tokenizer
    model: torch.nn.Module  # the module itself (parameters, checkpoints, evaluation)
    ddp_model: torch.nn.Module  # DistributedDataParallel around it (or the model)
    train_model: Any  # what the forward goes through (compiled, or ddp_model)
    opt: torch.optim.Optimizer
    sched: Any
    autocast: Callable[[], Any]
    log: MetricsLog
    bar: Any
    eval_encs: list

    def say(self, text: str) -> None:
        (self.bar.write if self.bar else print)(text)


@dataclass
class Window:
    """Training figures summed since the last log line."""

    loss: float = 0.0
    correct: float = 0.0
    masked: float = 0.0
    tokens: float = 0.0
    short_loss: float = 0.0  # the short-window steps' alone: longer windows train later positions, whose
    short_masked: float = 0.0  # loss stays higher for longer, so the mixed figure hides the shortcut's progress
    t0: float = field(default_factory=time.perf_counter)


def forward_backward(t: Training, it: Iterator[dict], step: int, window: Window) -> None:
    """The step's micro-batches through forward and backward (gradients summed), their figures added to
    ``window``; a non-finite loss adds none (the update is skipped after the gradient check)."""
    cfg, device = t.cfg, t.device
    for a in range(cfg.grad_accum):
        batch = next(it)
        assert batch["step"] == step, "batch stream out of step"  # the stream is a function of the step
        ids = batch["input_ids"].to(device, non_blocking=True).long()
        am_cpu = batch["attention_mask"]
        # No padding in the batch: no mask at all, which lets SDPA use its fastest kernels (checked on
        # the host copy, so no device sync).
        am = None if bool(am_cpu.all()) else am_cpu.to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        sync = contextlib.nullcontext() if (t.d.world == 1 or a == cfg.grad_accum - 1) else t.ddp_model.no_sync()
        with sync, t.autocast():
            out = t.train_model(ids, am, labels=labels, masked_only=True)
            loss = out.loss / cfg.grad_accum
        loss.backward()
        with torch.no_grad():
            n = out.num_masked
            if not torch.isfinite(out.loss):
                continue
            window.loss += float(out.loss.detach()) * int(n)
            if long_step(cfg, step) is None:
                window.short_loss += float(out.loss.detach()) * int(n)
                window.short_masked += int(n)
            window.correct += int((out.logits.argmax(-1) == labels[labels != IGNORE_INDEX]).sum())
            window.masked += int(n)
            window.tokens += int(am_cpu.sum())


def update(t: Training, step: int, bad_steps: int) -> int:
    """Clip and apply the gradients, or skip a non-finite update (keeping the step count, so the batch
    stream and schedule stay aligned); returns the count of bad steps in a row, stopping at the limit."""
    cfg = t.cfg
    # grad_clip 0 turns clipping off; the norm is still measured for the finiteness check.
    grad_norm = torch.nn.utils.clip_grad_norm_(t.model.parameters(), cfg.optim.grad_clip or math.inf)
    if torch.isfinite(grad_norm):  # a finite norm implies a finite loss and finite gradients
        t.opt.step()
        bad_steps = 0
    else:
        bad_steps += 1
        first = step * cfg.grad_accum * cfg.batch_size
        note = {"step": step + 1, "skipped": "non-finite loss or gradient", "rank": t.d.rank,
                "windows": [first, first + cfg.grad_accum * cfg.batch_size - 1]}
        t.log.write(note)
        t.say(f"step {step + 1}: non-finite loss or gradient, update skipped (rank {t.d.rank}, local windows "
              f"{note['windows']})")
        if bad_steps >= cfg.max_bad_steps:
            raise RandomMaskError(f"{bad_steps} steps in a row with a non-finite loss or gradient (last at "
                                  f"step {step + 1}); stopping, the last good checkpoint is kept. Try a "
                                  "lower optim.lr or optim.grad_clip")
    t.sched.step()
    t.opt.zero_grad(set_to_none=True)
    return bad_steps


def log_window(t: Training, step: int, info: dict, window: Window) -> dict[str, Any]:
    """One metrics.jsonl line: the window's figures summed over ranks, with the held-out evaluation when
    it is due (masked as training masks at the step just taken)."""
    cfg = t.cfg
    stats = torch.tensor([window.loss, window.correct, window.masked, window.tokens, window.short_loss,
                          window.short_masked], dtype=torch.float64)
    if t.d.world > 1:
        stats = stats.to(t.device)
        dist.all_reduce(stats)
        stats = stats.cpu()
    wl, wc, wm, wt, sl, sm = stats.tolist()
    elapsed = time.perf_counter() - window.t0
    last = {"step": step, "loss": wl / max(wm, 1), "acc": wc / max(wm, 1), "phase": info["phase"],
            "width_min": info["width_min"], "width_max": info["width_max"],
            "lr": t.sched.get_last_lr()[0], "tokens_per_s": wt / max(elapsed, 1e-9)}
    if long_kinds(cfg) and sm > 0:  # a run with longer windows: the loss of its regular windows alone
        last["loss_short"] = sl / sm
    if (step % cfg.eval_interval == 0 or step == cfg.steps) and t.d.main:
        last.update(evaluate(t.model, t.eval_encs, t.tokenizer, cfg.masking, step - 1, cfg.seed, t.device,
                             t.autocast))
    t.log.write(last)
    if t.bar:
        t.bar.set_postfix_str(
            f"loss {last['loss']:.3f} acc {last['acc']:.3f} phase {last['phase'] + 1} "
            f"w {last['width_min']}-{last['width_max']} lr {last['lr']:.1e} "
            f"{last['tokens_per_s']:,.0f} tok/s", refresh=False)
        if "eval_loss" in last:
            t.bar.write(f"step {step}: loss {last['loss']:.4f} acc {last['acc']:.4f} | eval loss "
                        f"{last['eval_loss']:.4f} acc {last['eval_acc']:.4f}")
    return last


def phase_note(masking: MaskingConfig, step: int, info: dict) -> str:
    return (f"step {step}: {mask_strategy(masking).title} phase {info['phase'] + 1}/{masking.phases}, "
            f"span widths {info['width_min']}..{info['width_max']}, centre probability {info['centre_prob']:.4f}")


# ------------------------------------------------------------------------------------------ the loop
def pretrain(cfg: PretrainConfig, resume: bool | str = False, init_from: str | None = None) -> dict[str, Any]:
    """Run (or resume) pre-training; returns the last logged figures.

    ``resume``: False starts a run (refused where the folder has checkpoints), True continues from the
    latest checkpoint (there must be one), ``"auto"`` continues when there is one and starts otherwise.
    The run folder is locked meanwhile (`folder_lock`): a second process on it stops with an error.
    """
    cfg.validate()
    # Rank 0 alone holds the lock: under torchrun every rank shares the folder.
    with folder_lock(Path(cfg.out_dir), "pre-training run", enabled=int(os.environ.get("RANK", "0")) == 0):
        return _pretrain(cfg, resume, init_from)


def _pretrain(cfg: PretrainConfig, resume: bool | str, init_from: str | None) -> dict[str, Any]:
    d = setup_distributed(cfg.device)
    device = pick_device(cfg.device)
    if device.type == "cuda" and d.world > 1:
        device = torch.device("cuda", d.local_rank)
    run_dir = Path(cfg.out_dir)
    tokenizer = from_name(cfg.tokenizer)
    check_masking(tokenizer, cfg.masking)
    # The masking planned over this run's steps in the tokenizer's span unit. `cfg` is from here on the
    # effective config (what config.yaml and the checkpoints record), a new object: the caller's is untouched.
    cfg = replace(cfg, masking=plan(cfg.masking, cfg.steps, tokenizer.span_unit))
    masking = cfg.masking

    state = check_resume(cfg, run_dir, resume)
    if state is not None:
        tokenizer = ckpt.tokenizer_from_state(run_dir, state)
    pre = ckpt.open_run(init_from) if init_from and state is None else None
    if pre is not None:
        # Its vocabulary in its own id order (an imported DNABERT's differs from ours), read our way.
        try:
            tokenizer = tokenizer.with_vocab(pre.tokenizer.vocab)
        except RandomMaskError:
            raise RandomMaskError(f"{init_from}: its tokenizer is {pre.tokenizer.name}, not {cfg.tokenizer} "
                                  "(another vocabulary)") from None
    mconf = model_shape(cfg, tokenizer, state, pre)
    if d.main:
        write_run_folder(run_dir, cfg, tokenizer)
    if cfg.deterministic:
        use_deterministic(device)
    torch.manual_seed(cfg.seed + d.rank)

    # --- data, model, optimizer
    store = open_store(cfg, run_dir, d)
    tokenizer = calibrate(tokenizer, store, cfg)
    train_sampler, long_samplers = samplers(cfg, store, tokenizer, d)
    window_nt = tokenizer.fill_bases(cfg.data.max_tokens - 2)
    eval_encs = eval_batches(store, window_nt, tokenizer, cfg) if d.main else []
    model = BertForMaskedLM(mconf).to(device)
    model.bert.gradient_checkpointing = cfg.activation_checkpointing
    if pre is not None:
        load_hf_state_dict(model, pre.model_state)
    opt = make_optimizer(model, cfg, fused=device.type == "cuda")
    sched = linear_schedule(opt, warmup_steps(cfg), cfg.steps, *decay_end(cfg))
    start_step = restore(state, model, opt, sched, d, device) if state is not None else 0
    ddp_model = model
    if d.world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = autocast_for(device)
    train_model = ddp_model
    if cfg.compile:
        train_model = compile_model(ddp_model, _probe_batch(cfg, mconf.vocab_size, device), autocast, d.main)
    loader = batch_loader(MaskedBatches(train_sampler, tokenizer, masking, cfg, d.rank, start_step, long_samplers),
                          cfg, device)
    # Lines past the start are dropped: a resumed run's after its checkpoint, a new run's left by a killed start.
    log = MetricsLog(run_dir / "metrics.jsonl", start_step, enabled=d.main)
    if d.main:
        n_params = num_parameters(model)
        global_batch = cfg.batch_size * cfg.grad_accum * d.world
        print(f"randommask pretrain: {cfg.preset} model ({n_params / 1e6:.2f}M parameters), tokenizer "
              f"{tokenizer.name}, masking {masking.strategy}, {cfg.steps} steps x {global_batch} windows of "
              f"{cfg.data.max_tokens} tokens on {device.type}"
              + "".join(long_note(cfg, kind) for kind in long_samplers) + (f" x {d.world} ranks" if d.world > 1 else "")
              + (f", resuming at step {start_step}" if start_step else ""), flush=True)
    bar = None
    if d.main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True)
    t = Training(cfg, d, device, run_dir, tokenizer, model, ddp_model, train_model, opt, sched, autocast, log, bar,
                 eval_encs)

    # --- step / log / evaluate / save
    last: dict[str, Any] = {}
    window, last_phase, bad_steps = Window(), None, 0
    it = iter(loader)
    step = start_step
    with StopSignal() as stop:
        while step < cfg.steps:
            info = describe(masking, step)
            if d.main and info["phase"] != last_phase and mask_strategy(masking).phased:
                t.say(phase_note(masking, step, info))
                last_phase = info["phase"]
            model.train()
            forward_backward(t, it, step, window)
            bad_steps = update(t, step, bad_steps)
            step += 1
            if step % cfg.log_interval == 0 or step == cfg.steps:
                last = log_window(t, step, info, window)
                window = Window()
            if bar:
                bar.update(1)
            if step % cfg.save_interval == 0 or step == cfg.steps or stop.requested:
                save(run_dir, step, model, opt, sched, cfg, tokenizer, d)
            if stop.requested:
                if d.main:
                    t.say(f"stopped by signal at step {step}; checkpoint saved. Resume with: "
                          f"randommask pretrain --config {run_dir / 'config.yaml'} --resume")
                break
    if bar:
        bar.close()
    if d.world > 1:
        dist.barrier()
    last["stopped_early"] = step < cfg.steps
    return last


def save(run_dir: Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any,
         cfg: PretrainConfig, tokenizer: Tokenizer, d: Dist) -> None:
    """Gather every rank's RNG states (CPU, and CUDA's where the model runs there) and write the checkpoint
    from rank 0."""
    device = next(model.parameters()).device
    rng = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    if d.world > 1:
        states = [None] * d.world
        dist.all_gather_object(states, rng)
    else:
        states = [rng]
    if not d.main:
        return
    state = {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "rng": {"torch": [c for c, _ in states], "cuda": [g for _, g in states]},
             "config": to_dict(cfg), "model_config": model.config.to_dict(),
             "tokenizer": tokenizer.spec,
             "vocab": list(tokenizer.vocab), "kind": "pretrain"}
    ckpt.save_checkpoint(run_dir, step, state, keep=cfg.keep_checkpoints)
