"""Fine-tuning a pre-trained model on one GUE task: ``randommask finetune``.

The recipe is DNABERT-2's for k-mer models (its ``finetune/train.py`` with ``run_dnabert1.sh``): full
fine-tuning of BERT + pooler + a new linear classifier with AdamW (lr 3e-5, weight decay 0.01), batch
32, linear warm-up then linear decay to zero over the task group's number of epochs
(`randommask.tasks.default_hparams`), the dev set scored every ``eval_steps`` steps and at the end,
and the model with the best dev MCC kept (in memory; it is the checkpoint written). The test set is
scored once, at the end, with that model. Every hyper-parameter can be overridden; ``max_steps``
caps training (short CPU and test runs), and ``max_train_examples`` / ``max_eval_examples`` subsample
the splits (smoke runs; a low-data check cuts only the training split): results.json records it, and
such numbers are not comparable to GUE's.

Inputs are tokenized with the model's own tokenizer. ``tokenizer_stride`` switches between
overlapping (1) and non-overlapping (k) k-mers at fine-tuning time: the vocabulary is the same for a
given k, so a model pre-trained with one can be fine-tuned with the other (the RandomMask paper's
first finding compares exactly that); a BPE vocabulary has no stride, and giving one is an error. The
maximum input length is the task's sequence length in tokens (``max_length_nt`` of its group; the
longest sequence for tasks outside GUE's groups), capped at the model's position embeddings; longer
inputs are truncated from the 3' end and counted in results.json. For BPE, whose token count depends
on the bases, that length is the bound of one token a base; truncation is counted by encoding every
sequence, and results.json records the longest input actually given (``longest_input``).

``from_scratch`` is the no-pre-training baseline: the same architecture, randomly initialised (taken
from ``model`` when a run folder is given, else from ``tokenizer`` and ``preset``).

The fine-tuned run folder follows `randommask.checkpoint`'s layout::

    config.yaml, vocab.txt     the effective config; the tokenizer's vocabulary
    metrics.jsonl              training loss every log_interval steps, dev metrics at each evaluation
    checkpoints/step-N.pt      the best-dev model (N = its step): kind "finetune", task, labels, ...
    results.json               dev best, test metrics, protocol, fallback flag, seed, wall time

results.json is written last: a folder without it holds an unfinished run, which a new run into the
same folder restarts from scratch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from randommask import checkpoint as ckpt
from randommask.config import from_dict, save_yaml, to_dict
from randommask.errors import RandomMaskError
from randommask.files import atomic_write_text, folder_lock
from randommask.metrics import classification_metrics
from randommask.model import (
    BertForSequenceClassification,
    ModelConfig,
    load_hf_state_dict,
    model_config,
    num_parameters,
)
from randommask.runtime import adamw, autocast_for, linear_schedule, pick_device
from randommask.tasks import Split, Task, load_task
from randommask.tokenizers import Tokenizer, from_name

__all__ = [
    "FinetuneConfig",
    "FinetuneSettings",
    "ModelSpec",
    "build_classifier",
    "count_truncated",
    "finetune",
    "plan_training",
    "predict_logits",
    "resolve_model",
    "score_split",
]

RESULTS = "results.json"


# ------------------------------------------------------------------------------------------ config
@dataclass
class FinetuneSettings:
    """The model and hyper-parameters of fine-tuning (shared by ``finetune`` and ``benchmark``).

    Hyper-parameters left at None take the task's DNABERT-2 default (`randommask.tasks.default_hparams`):
    learning_rate 3e-5, batch_size 32, warmup_steps 30-50, epochs 3-10 by task group, eval_steps 200
    or 400, max_steps a cap only where DNABERT-2 set one (mouse: 1000); max_length (tokens, [CLS] and
    [SEP] included) from the task's sequence length.
    """

    model: str = ""  # a randommask run folder (pre-trained, fine-tuned or imported)
    from_scratch: bool = False  # random initialisation: the no-pre-training baseline
    tokenizer: str | None = None  # from scratch without a model folder: kmer6 (default), kmer3-nonoverlap, nt
    preset: str | None = None  # from scratch without a model folder: tiny (default), small, base
    tokenizer_stride: int | None = None  # 1 (overlapping) or k (non-overlapping); None: as pre-trained
    learning_rate: float | None = None  # peak learning rate (None: the task's DNABERT-2 default, 3e-5)
    batch_size: int | None = None  # sequences per step (None: 32)
    epochs: float | None = None  # passes over the training split (None: by task group)
    warmup_steps: int | None = None  # linear warm-up steps (None: by task group)
    max_steps: int | None = None  # cap on optimizer steps (replaces the task's own cap)
    eval_steps: int | None = None  # steps between dev evaluations (None: by task group)
    max_length: int | None = None  # tokens per sequence, [CLS] and [SEP] included (None: from the task)
    eval_batch_size: int = 256  # sequences per evaluation batch (changes no result, only speed)
    patience: int | None = None  # stop after this many dev evaluations without a better dev MCC (None: never)
    min_steps: int = 0  # patience cannot stop a run before this step: a small task's dev MCC can sit near
    # zero for its first hundreds of steps before it starts to rise
    patience_from_mcc: float | None = None  # patience counts only once the best dev MCC has passed this: a task
    # whose dev MCC sits at chance (0) for a number of steps that varies by seed is not stopped before it takes
    # off (None: from the first evaluation; the run is still capped by max_steps and epochs)
    select_dev_examples: int | None = None  # dev rows scored during training to pick the best step (seeded
    # subset; None: all); the best model is then scored on all of dev and on test
    weight_decay: float = 0.01  # AdamW weight decay
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    dropout: float | None = None  # hidden and attention dropout while fine-tuning (None: the model's own)
    dev_holdout: float = 0.1  # fallback protocol: share of dev.csv held out for model selection
    max_train_examples: int | None = None  # seeded subsample of the training split (smoke runs, low-data checks)
    max_eval_examples: int | None = None  # seeded subsample of dev and test (smoke runs only)
    log_interval: int = 50  # steps between log lines
    device: str = "auto"  # auto, cpu, cuda
    progress: bool = True  # show a progress bar

    def validate(self) -> None:
        if not self.model and not self.from_scratch:
            raise RandomMaskError("give a pre-trained run folder (MODEL), or --from-scratch for the baseline")
        if self.model and (self.tokenizer or self.preset):
            which = "--tokenizer" if self.tokenizer else "--preset"
            raise RandomMaskError(f"{which} is only for --from-scratch without a model folder; {self.model} "
                                  "fixes both (use --tokenizer-stride to switch overlapping/non-overlapping)")
        for name in ("batch_size", "warmup_steps", "max_steps", "eval_steps", "max_length", "max_train_examples",
                     "max_eval_examples", "patience", "select_dev_examples"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "warmup_steps" else 1):
                raise RandomMaskError(f"config: {name} must be at least {0 if name == 'warmup_steps' else 1}, "
                                      f"got {value}")
        if self.patience_from_mcc is not None and not -1 <= self.patience_from_mcc < 1:
            raise RandomMaskError(f"config: patience_from_mcc must be in [-1, 1) (an MCC), got "
                                  f"{self.patience_from_mcc}")
        if self.min_steps < 0:
            raise RandomMaskError(f"config: min_steps must be at least 0, got {self.min_steps}")
        for name in ("eval_batch_size", "log_interval"):
            if getattr(self, name) < 1:
                raise RandomMaskError(f"config: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("grad_clip", "weight_decay"):
            if getattr(self, name) < 0:
                raise RandomMaskError(f"config: {name} must be at least 0, got {getattr(self, name)}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise RandomMaskError(f"config: dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise RandomMaskError(f"config: learning_rate must be positive, got {self.learning_rate}")
        if self.epochs is not None and not self.epochs > 0:
            raise RandomMaskError(f"config: epochs must be positive, got {self.epochs}")
        if self.max_length is not None and self.max_length < 3:
            raise RandomMaskError(f"config: max_length must be at least 3 ([CLS], one token, [SEP]), "
                                  f"got {self.max_length}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise RandomMaskError(f"config: device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class FinetuneConfig(FinetuneSettings):
    """One fine-tuning run: settings plus the task, the output folder and the seed."""

    task: str = ""  # a task folder holding train.csv (or not: fallback protocol), dev.csv, test.csv
    out_dir: str = ""  # default: runs/finetune/<group folder>-<task>-seed<seed>
    seed: int = 0  # model init, batch order, dropout and the fallback protocol's holdout
    save_model: bool = True  # write the best-dev checkpoint (benchmark turns it off unless --keep-models)

    def validate(self) -> None:
        super().validate()
        if not self.task:
            raise RandomMaskError("give a task folder (TASK), e.g. GUE/prom/prom_core_all")


def shift_positionals(data: dict, first: str, second: str) -> dict:
    """Let ``--from-scratch`` take a single positional as the second one (``finetune TASK --from-scratch``).

    argparse reads ``--from-scratch TASK`` as the flag's value; that value is moved back to the positionals.
    """
    data = dict(data)
    values = [v for v in (data.get(first), data.get(second)) if v]
    fs = data.get("from_scratch")
    if isinstance(fs, str):  # not a YAML boolean: the positional argparse gave to the flag
        values.append(fs)
        data["from_scratch"] = True
    if data.get("from_scratch") and len(values) == 1:
        data[first], data[second] = "", values[0]
    elif len(values) == 2:
        data[first], data[second] = values
    elif len(values) > 2:
        raise RandomMaskError(f"too many positional arguments: {' '.join(map(str, values))}")
    return data


def load_finetune_config(data: dict) -> FinetuneConfig:
    cfg = from_dict(FinetuneConfig, shift_positionals(data, "model", "task"))
    cfg.validate()
    return cfg


# ------------------------------------------------------------------------------------------ the model
@dataclass
class ModelSpec:
    """Tokenizer, architecture and starting weights of fine-tuning, resolved once (benchmark reuses it)."""

    tokenizer: Tokenizer
    config: ModelConfig
    state: dict | None  # the run's weights; None from scratch
    source: dict  # where it came from, for results.json
    pretrain_max_tokens: int | None = None  # window length of pre-training: later positions are untrained


def resolve_model(s: FinetuneSettings) -> ModelSpec:
    """Open the model folder (or build the from-scratch architecture) once."""
    if s.model:
        pre = ckpt.open_run(s.model)
        tok = _with_stride(pre.tokenizer, s.tokenizer_stride, f"{s.model} was pre-trained with {pre.tokenizer.name}")
        source = {"run": str(Path(s.model).resolve()), "checkpoint": pre.checkpoint.name, "step": pre.step,
                  "kind": pre.kind, "from_scratch": s.from_scratch,
                  "masking": (pre.config.get("masking") or {}).get("strategy")}
        data = pre.config.get("data") or {}
        max_tokens = data.get("max_tokens") if pre.kind == "pretrain" else None
        steps, tail = int(pre.config.get("steps") or 0), float(data.get("long_fraction") or 0.0)
        every, long_tokens = int(data.get("long_every") or 0), int(data.get("long_max_tokens") or 0)
        if max_tokens and every and pre.step >= round(steps * float(data.get("long_from") or 0.0)) + every:
            max_tokens = max(max_tokens, long_tokens)  # the interleaved long steps trained these too
        if max_tokens and tail > 0 and pre.step > steps - round(steps * tail):
            max_tokens = max(max_tokens, int(data.get("tail_max_tokens") or 0) or long_tokens)  # and the tail
        return ModelSpec(tokenizer=tok, config=ModelConfig.from_dict(pre.model_config),
                         state=None if s.from_scratch else pre.model_state, source=source,
                         pretrain_max_tokens=None if s.from_scratch else max_tokens)
    base = from_name(s.tokenizer or "kmer6")
    tok = _with_stride(base, s.tokenizer_stride, f"the tokenizer is {base.name}")
    preset = s.preset or "tiny"
    source = {"run": None, "from_scratch": True, "preset": preset, "tokenizer": tok.name}
    return ModelSpec(tokenizer=tok, config=model_config(preset, tok.vocab_size, pad_token_id=tok.pad_id), state=None,
                     source=source)


def _with_stride(tok: Tokenizer, stride: int | None, what: str) -> Tokenizer:
    """The tokenizer read with ``stride``; a stride it cannot take (any, for BPE) is one line naming the option."""
    try:
        return tok.with_params(stride=stride)
    except RandomMaskError as e:
        raise RandomMaskError(f"--tokenizer-stride {stride}: {what}; {e}") from None


def build_classifier(spec: ModelSpec, num_labels: int, seed: int,
                     dropout: float | None = None) -> BertForSequenceClassification:
    """BertForSequenceClassification with the encoder from ``spec`` and a new pooler and classifier.

    ``dropout`` replaces the model's hidden and attention dropout (a model pre-trained without dropout,
    the fast CPU option, is usually fine-tuned with BERT's 0.1)."""
    torch.manual_seed(seed)  # the new layers' (and from scratch, all) initial weights follow the seed
    over = {} if dropout is None else {"hidden_dropout": float(dropout), "attention_dropout": float(dropout)}
    conf = ModelConfig.from_dict({**spec.config.to_dict(), "num_labels": int(num_labels), **over})
    model = BertForSequenceClassification(conf)
    if spec.state is not None:
        # A fine-tuned run's classifier belongs to its own task; its pooler is kept as a start.
        state = {k: v for k, v in spec.state.items() if not k.startswith("classifier.")}
        missing, _ = load_hf_state_dict(model, state, strict=False)
        lacking = [k for k in missing if not k.startswith(("bert.pooler.", "classifier."))]
        if lacking:
            raise RandomMaskError(f"{spec.source.get('run')}: checkpoint lacks encoder weights such as "
                                  f"{lacking[0]!r}; not a BERT model of this architecture")
    return model


# ------------------------------------------------------------------------------------------ data and plan
def subsample(split: Split, n: int | None, seed: int, salt: int) -> Split:
    """A seeded random subset of ``n`` rows in file order (smoke runs, low-data checks), or the split itself."""
    if n is None or len(split) <= n:
        return split
    keep = np.sort(np.random.default_rng([seed, salt]).choice(len(split), size=n, replace=False))
    return Split([split.sequences[i] for i in keep], split.labels[keep], split.source, split.rows[keep])


def count_truncated(tokenizer: Tokenizer, sequences: Sequence[str], max_length: int) -> int:
    """How many of these sequences give more than ``max_length`` tokens (counted by encoding them: BPE's
    token count depends on the bases, not only on the length)."""
    if not sequences:
        return 0
    return int(np.sum(tokenizer.encode_batch(list(sequences)).lengths + 2 > max_length))


@dataclass
class Encoded:
    """A split tokenized once: ids [N, T], attention mask (None when no row is padded) and labels [N]."""

    ids: torch.Tensor
    mask: torch.Tensor | None
    labels: torch.Tensor

    def rows(self, idx: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Rows ``idx``; no mask when none of them is padded (SDPA's fastest path)."""
        mask = None if self.mask is None else self.mask[idx]
        if mask is not None and bool(mask.all()):
            mask = None
        return self.ids[idx], mask, self.labels[idx]


def encode_split(tokenizer: Tokenizer, split: Split, max_length: int) -> Encoded:
    enc = tokenizer.encode_batch(split.sequences, max_length=max_length, truncation=True)
    mask = torch.from_numpy(enc.attention_mask)
    return Encoded(torch.from_numpy(enc.ids).long(), None if bool(mask.all()) else mask,
                   torch.from_numpy(np.asarray(split.labels)).long())


class SplitCache:
    """Tasks and tokenized splits kept across the runs of one process (a benchmark's seeds share them).

    A task's CSVs are parsed once, and each split tokenized once per tokenizer and length; fallback tasks
    depend on the seed (its held-out share of dev), so their key holds it.
    """

    def __init__(self) -> None:
        self.tasks: dict[tuple, Task] = {}
        self.encoded: dict[tuple, Encoded] = {}

    def task(self, folder: str, seed: int, dev_holdout: float) -> Task:
        key = (str(Path(folder).resolve()), dev_holdout)
        task = self.tasks.get(key) or self.tasks.get((*key, seed))
        if task is None:
            task = load_task(folder, seed=seed, dev_holdout=dev_holdout)
            self.tasks[(*key, seed) if task.fallback else key] = task
        return task

    def encode(self, tokenizer: Tokenizer, split: Split, max_length: int) -> Encoded:
        # The tokenizer's whole identity (its spec and vocabulary: two BPE vocabularies of one size share a
        # name), the length, and which rows of which file.
        key = (hash((json.dumps(tokenizer.spec, sort_keys=True, default=str), tuple(tokenizer.vocab))), max_length,
               str(split.source), len(split), hash(split.rows.tobytes()))
        if key not in self.encoded:
            self.encoded[key] = encode_split(tokenizer, split, max_length)
        return self.encoded[key]


def plan_training(s: FinetuneSettings, task: Task, tokenizer: Tokenizer, mconf: ModelConfig,
                  n_train: int) -> dict[str, Any]:
    """The effective hyper-parameters: the options given, else the task's DNABERT-2 defaults."""
    hp = task.hparams

    def pick(name: str) -> Any:
        value = getattr(s, name)
        return hp[name] if value is None else value

    batch = int(pick("batch_size"))
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = float(pick("epochs"))
    total = max(1, math.ceil(epochs * steps_per_epoch))
    cap = pick("max_steps")
    if cap is not None:
        total = min(total, int(cap))
    positions = mconf.max_position_embeddings
    if s.max_length is not None:
        if s.max_length > positions:
            raise RandomMaskError(f"max_length {s.max_length} is more than the model's {positions} positions")
        max_length = s.max_length
    else:
        nt = hp.get("max_length_nt")
        if nt is None:  # not a GUE group: fit the longest sequence of the task
            nt = max(max(len(x) for x in split.sequences) for split in (task.train, task.dev, task.test))
        max_length = min(tokenizer.num_tokens(int(nt)) + 2, positions)
    return {"learning_rate": float(pick("learning_rate")), "batch_size": batch, "epochs": epochs,
            "steps_per_epoch": steps_per_epoch, "max_steps": cap, "total_steps": total,
            "warmup_steps": min(int(pick("warmup_steps")), total), "eval_steps": int(pick("eval_steps")),
            "max_length": int(max_length), "weight_decay": s.weight_decay, "grad_clip": s.grad_clip}


@torch.no_grad()
def predict_logits(model: torch.nn.Module, tokenizer: Tokenizer, seqs: list[str], max_length: int,
                   batch_size: int, device: torch.device, autocast: Callable[[], Any]) -> np.ndarray:
    """Class logits [N, C] (float32) of a classifier for sequences, in batches, truncating to max_length."""
    model.eval()
    out = []
    for i in range(0, len(seqs), batch_size):
        enc = tokenizer.encode_batch(seqs[i : i + batch_size], max_length=max_length, truncation=True)
        ids = torch.from_numpy(enc.ids).to(device).long()
        mask = torch.from_numpy(enc.attention_mask).to(device)
        with autocast():
            logits = model(ids, mask).logits
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_labels), np.float32)


def score_split(model: torch.nn.Module, tokenizer: Tokenizer, split: Split, max_length: int, batch_size: int,
                device: torch.device, autocast: Callable[[], Any]) -> dict[str, float]:
    """MCC, macro F1, accuracy and mean cross-entropy loss of the model on a split."""
    return score_encoded(model, encode_split(tokenizer, split, max_length), batch_size, device, autocast)


@torch.inference_mode()
def score_encoded(model: torch.nn.Module, data: Encoded, batch_size: int, device: torch.device,
                  autocast: Callable[[], Any]) -> dict[str, float]:
    """`score_split` on a split tokenized once (the training loop scores dev many times)."""
    model.eval()
    out = []
    for i in range(0, len(data.labels), batch_size):
        ids, mask, _ = data.rows(slice(i, i + batch_size))
        with autocast():
            out.append(model(ids.to(device), None if mask is None else mask.to(device)).logits.float().cpu())
    logits = torch.cat(out) if out else torch.zeros((0, model.num_labels))
    loss = float(F.cross_entropy(logits, data.labels)) if len(data.labels) else float("nan")
    return {**classification_metrics(data.labels.numpy(), logits.argmax(-1).numpy()), "loss": loss}


# ------------------------------------------------------------------------------------------ run folder
def _task_slug(name: str) -> str:
    return name.replace("/", "-").replace("\\", "-")


def prepare_run_dir(out: Path, model_dir: str) -> None:
    """Refuse a finished run or another kind of run folder; clear an unfinished fine-tuning run."""
    if model_dir and out.resolve() == Path(model_dir).resolve():
        raise RandomMaskError(f"{out}: the output folder is the model folder; choose another --out")
    if (out / RESULTS).exists():
        raise RandomMaskError(f"{out}: already holds a finished fine-tuning run ({RESULTS}); choose another --out "
                              "or delete the folder")
    existing = ckpt.list_checkpoints(out)
    if existing:
        kind = ckpt.load_checkpoint(existing[-1]).get("kind")
        if kind != "finetune":
            raise RandomMaskError(f"{out}: holds the checkpoints of a {kind or 'pre-training'} run; choose another "
                                  "--out")
        for p in existing:  # an unfinished fine-tuning run: it starts over
            p.unlink()
        (out / ckpt.CHECKPOINT_DIR / ckpt.LATEST).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
    except OSError as e:
        raise RandomMaskError(f"{out}: cannot write the run folder ({e.strerror or e})") from None


def _log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------------------------ the loop
def finetune(cfg: FinetuneConfig, spec: ModelSpec | None = None, cache: SplitCache | None = None) -> dict[str, Any]:
    """Fine-tune on one task, score the best-dev model on test once, write the run folder; returns results.

    ``spec`` and ``cache`` let a benchmark open the model once and parse and tokenize each task once. The run
    folder is locked meanwhile (`folder_lock`): a second process on it (a unit started twice) stops with an error.
    """
    cfg.validate()
    t0 = time.perf_counter()
    cache = cache or SplitCache()
    task = cache.task(cfg.task, cfg.seed, cfg.dev_holdout)
    out = Path(cfg.out_dir or f"runs/finetune/{_task_slug(task.name)}-seed{cfg.seed}")
    with folder_lock(out, "fine-tuning run"):
        return _finetune(cfg, spec or resolve_model(cfg), cache, task, out, t0)


def _finetune(cfg: FinetuneConfig, spec: ModelSpec, cache: SplitCache, task: Task, out: Path,
              t0: float) -> dict[str, Any]:
    tok = spec.tokenizer
    full_sizes = {"train": len(task.train), "dev": len(task.dev), "test": len(task.test)}
    train = subsample(task.train, cfg.max_train_examples, cfg.seed, 1)
    dev = subsample(task.dev, cfg.max_eval_examples, cfg.seed, 2)
    test = subsample(task.test, cfg.max_eval_examples, cfg.seed, 3)
    sizes = {"train": len(train), "dev": len(dev), "test": len(test)}
    subsampled = sizes != full_sizes
    plan = plan_training(cfg, task, tok, spec.config, len(train))
    max_len, bs, total = plan["max_length"], plan["batch_size"], plan["total_steps"]
    truncated = {name: count_truncated(tok, split.sequences, max_len)
                 for name, split in (("train", train), ("dev", dev), ("test", test))}
    # Tokenized once; model selection may score a seeded subset of dev, the final scores use every row.
    train_enc = cache.encode(tok, train, max_len)
    dev_enc = cache.encode(tok, dev, max_len)
    select = subsample(dev, cfg.select_dev_examples, cfg.seed, 4)
    select_enc = cache.encode(tok, select, max_len)
    test_enc = cache.encode(tok, test, max_len)
    # The longest input actually given, [CLS] and [SEP] included: max_len is an upper bound for BPE, whose
    # token count is known only once encoded.
    longest = max(e.ids.shape[1] for e in (train_enc, dev_enc, test_enc))

    prepare_run_dir(out, cfg.model)
    save_yaml(cfg, out / "config.yaml")
    tok.save_vocab(out / "vocab.txt")
    metrics_path = out / "metrics.jsonl"

    device = pick_device(cfg.device)
    autocast = autocast_for(device)
    model = build_classifier(spec, task.num_classes, cfg.seed, cfg.dropout).to(device)
    opt = adamw(model, plan["learning_rate"], cfg.weight_decay, fused=device.type == "cuda")  # HF Trainer's betas, eps
    sched = linear_schedule(opt, plan["warmup_steps"], total)

    start = "from scratch" if spec.state is None else f"from {spec.source['run']} (step {spec.source['step']})"
    print(f"randommask finetune: {task.name} ({task.group}, {'FALLBACK' if task.fallback else 'standard'} "
          f"protocol), {sizes['train']} train / {sizes['dev']} dev / {sizes['test']} test, {task.num_classes} "
          f"classes{' (subsampled)' if subsampled else ''}; {num_parameters(model) / 1e6:.2f}M "
          f"parameters {start}, tokenizer {tok.name}; {total} steps x {bs}, lr {plan['learning_rate']:g}, "
          f"max {max_len} tokens, on {device.type}", flush=True)
    if task.fallback:
        print(f"  note: {task.protocol}", flush=True)
    if any(truncated.values()):
        print(f"  note: sequences longer than {max_len} tokens are truncated: " +
              ", ".join(f"{n} of {sizes[k]} {k}" for k, n in truncated.items()), flush=True)
    if spec.pretrain_max_tokens and longest > spec.pretrain_max_tokens:
        print(f"  note: the model was pre-trained on {spec.pretrain_max_tokens}-token windows; positions "
              f"{spec.pretrain_max_tokens}..{longest - 1} start untrained", flush=True)

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=False)
    best_mcc, best_step, best_dev, best_state = -math.inf, 0, {}, None
    window_loss, window_n = 0.0, 0
    order = np.arange(0)
    step = since_best = 0
    stopped_at = None
    while step < total:
        epoch, pos = divmod(step, plan["steps_per_epoch"])
        if pos == 0:  # a fresh shuffle each epoch, a pure function of (seed, epoch)
            order = np.random.default_rng([cfg.seed, 7, epoch]).permutation(len(train))
        ids, mask, labels = train_enc.rows(torch.from_numpy(order[pos * bs : (pos + 1) * bs]))
        ids, labels = ids.to(device), labels.to(device)
        mask = None if mask is None else mask.to(device)
        model.train()
        with autocast():
            loss = model(ids, mask, labels=labels).loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)  # 0: no clipping
        if not torch.isfinite(grad_norm):
            raise RandomMaskError(f"{task.name}, step {step}: non-finite gradient norm; lower --lr")
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        window_loss += float(loss.detach())
        window_n += 1
        if bar:
            bar.update(1)
        if step % cfg.log_interval == 0 or step == total:
            _log(metrics_path, {"step": step, "epoch": epoch, "loss": window_loss / window_n,
                                "lr": sched.get_last_lr()[0]})
            window_loss, window_n = 0.0, 0
        if step % plan["eval_steps"] == 0 or step == total:
            dev_m = score_encoded(model, select_enc, cfg.eval_batch_size, device, autocast)
            _log(metrics_path, {"step": step, **{f"dev_{k}": v for k, v in dev_m.items()}})
            if dev_m["mcc"] > best_mcc:  # ties keep the earlier model
                best_mcc, best_step, best_dev, since_best = dev_m["mcc"], step, dev_m, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            elif cfg.patience_from_mcc is None or best_mcc > cfg.patience_from_mcc:
                since_best += 1  # below the take-off threshold, no evaluation counts towards the plateau
            if bar:
                bar.set_postfix_str(f"dev MCC {dev_m['mcc']:.3f} (best {best_mcc:.3f} @ {best_step})", refresh=False)
            if cfg.patience is not None and since_best >= cfg.patience and step >= cfg.min_steps:
                stopped_at = step  # dev MCC has plateaued: the rest of the schedule would not be selected
                break
    if bar:
        bar.close()

    # The test set, once, with the best-dev model; dev again in full when selection used a subset of it.
    assert best_state is not None  # the last step always evaluates
    model.load_state_dict(best_state)
    best_selection = best_dev
    if len(select) != len(dev):
        best_dev = score_encoded(model, dev_enc, cfg.eval_batch_size, device, autocast)
    test_m = score_encoded(model, test_enc, cfg.eval_batch_size, device, autocast)
    labels_list = list(range(task.num_classes))
    checkpoint_name = None
    if cfg.save_model:
        state = {"step": best_step, "model": best_state, "model_config": model.config.to_dict(),
                 "tokenizer": tok.spec, "vocab": list(tok.vocab),
                 "kind": "finetune", "task": task.name, "labels": labels_list, "max_length": max_len,
                 "config": to_dict(cfg), "dev": best_dev, "source": spec.source}
        checkpoint_name = ckpt.save_checkpoint(out, best_step, state, keep=1).relative_to(out).as_posix()
    wall = time.perf_counter() - t0
    results = {
        "kind": "finetune", "task": task.name, "group": task.group, "task_path": str(task.path.resolve()),
        "num_classes": task.num_classes, "labels": labels_list, "fallback": task.fallback,
        "protocol": task.protocol, "seed": cfg.seed, "model": spec.source,
        "tokenizer": tok.spec,
        "sizes": sizes, "full_sizes": full_sizes, "subsampled": subsampled, "truncated": truncated,
        "longest_input": longest,
        "hparams": plan, "best": {"step": best_step, "dev": best_dev, "dev_selection": best_selection,
                                  "selection_rows": len(select)},
        "stopped_at": stopped_at, "steps_run": step, "test": test_m,
        "checkpoint": checkpoint_name, "device": device.type, "wall_time_s": wall, "config": to_dict(cfg),
    }
    atomic_write_text(out / RESULTS, json.dumps(results, indent=2) + "\n")
    print(f"  {task.name} seed {cfg.seed}: best dev MCC {best_dev['mcc']:.4f} at step {best_step}; test MCC "
          f"{test_m['mcc']:.4f}, F1 {test_m['f1']:.4f}, accuracy {test_m['accuracy']:.4f} ({wall:.0f} s); "
          f"{out / RESULTS}", flush=True)
    return results
