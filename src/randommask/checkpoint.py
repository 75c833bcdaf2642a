"""Run folders and crash-safe checkpoints.

A run folder holds everything a later command needs::

    config.yaml           the effective config of the run
    vocab.txt             the tokenizer's vocabulary (id = line number)
    metrics.jsonl         one JSON object per logged step
    checkpoints/step-N.pt model, optimizer, scheduler, RNG states, step, config, vocabulary
    checkpoints/latest    the file name of the newest complete checkpoint, written last

A checkpoint is written to a temporary file, flushed to disk, then renamed over its final name; the
``latest`` pointer is replaced the same way only afterwards. A crash at any moment therefore leaves
the previous checkpoint and pointer intact. Checkpoints hold only tensors and plain data, so they load
with ``torch.load(weights_only=True)``: opening a checkpoint never runs code.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from randommask.errors import RandomMaskError
from randommask.files import atomic_write_text, fsync_dir
from randommask.tokenizers import Tokenizer, from_spec

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Save ``state`` as ``checkpoints/step-<step>.pt``, move ``latest`` to it, prune old ones.

    ``keep`` is how many checkpoints to keep (0: all). The newest is never pruned before the pointer
    has moved to it.
    """
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RandomMaskError(f"{ckpt_dir}: cannot create checkpoint folder ({e.strerror or e})") from None
    path = ckpt_dir / f"step-{step}.pt"
    tmp = ckpt_dir / f".step-{step}.pt.tmp-{os.getpid()}"
    for stale in ckpt_dir.glob(".step-*.pt.tmp-*"):  # left by a process killed mid-write
        if stale.name.rsplit("-", 1)[-1] != str(os.getpid()):
            stale.unlink(missing_ok=True)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        raise RandomMaskError(f"{path}: cannot write checkpoint ({getattr(e, 'strerror', None) or e}); "
                              "the previous checkpoint is kept") from None
    fsync_dir(ckpt_dir)
    atomic_write_text(ckpt_dir / LATEST, path.name + "\n")
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            if old != path:
                old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points to (or, if the pointer is missing, the newest complete one)."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    pointer = ckpt_dir / LATEST
    if pointer.is_file():
        name = pointer.read_text().strip()
        if _STEP_RE.match(name) and (ckpt_dir / name).is_file():
            return ckpt_dir / name
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file (tensors and plain data only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RandomMaskError(f"{path}: checkpoint not found") from None
    except Exception as e:  # a truncated or foreign file: pickle, zip and torch errors alike
        raise RandomMaskError(f"{path}: not a readable randommask checkpoint ({e.__class__.__name__})") from None


@dataclass
class Run:
    """A run folder (pre-trained, fine-tuned or imported) opened at one checkpoint: what every later
    command reads. ``state`` is the whole checkpoint, for the entries only some readers need (kind, task,
    labels, max_length, source)."""

    path: Path
    checkpoint: Path
    state: dict
    tokenizer: Tokenizer
    model_config: dict
    model_state: dict
    config: dict
    step: int

    @property
    def kind(self) -> str:
        return str(self.state.get("kind", "pretrain"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def max_tokens(self) -> int:
        """Tokens per pre-training window ([CLS] and [SEP] included), else the model's positions."""
        return int((self.config.get("data") or {}).get("max_tokens", self.model_config["max_position_embeddings"]))

    @property
    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.path)

    @property
    def metrics(self) -> list[dict]:
        return read_metrics(self.path / "metrics.jsonl")


def read_metrics(path: Path) -> list[dict]:
    """``metrics.jsonl`` as a list of dicts; a line cut short by a crash ends the list."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def tokenizer_from_state(run_dir: Path, state: dict) -> Tokenizer:
    """The tokenizer a checkpoint stores (its spec and vocabulary; the oldest folders: ``vocab.txt``)."""
    return from_spec(state.get("tokenizer") or {}, state.get("vocab"), Path(run_dir) / "vocab.txt")


def open_run(run: str | Path, checkpoint: str | Path | None = None) -> Run:
    """Open a randommask run folder at its latest checkpoint, or at ``checkpoint`` (a path, or a file name
    under ``checkpoints/``). ``run`` may also be one ``checkpoints/step-N.pt`` file of a run (fine-tuning
    from a point part-way through pre-training). The one reader of run folders: every command uses it.

    Reads the checkpoint once: a base model's file is hundreds of MB.
    """
    run_dir = Path(run)
    path: Path | None
    if checkpoint is None and run_dir.is_file() and run_dir.suffix == ".pt":  # <run>/checkpoints/step-N.pt
        path, run_dir = run_dir, run_dir.parent.parent
    elif not run_dir.is_dir():
        raise RandomMaskError(f"{run_dir}: model folder not found")
    elif checkpoint:
        path = Path(checkpoint)
        if not path.exists() and (run_dir / CHECKPOINT_DIR / path).exists():  # --checkpoint step-500.pt
            path = run_dir / CHECKPOINT_DIR / path
    else:
        path = latest_checkpoint(run_dir)
    if path is None:
        hint = ""
        if (run_dir / "config.json").exists():
            hint = " (it looks like a Hugging Face folder: use `randommask import`)"
        raise RandomMaskError(f"{run_dir}: not a randommask run folder, no checkpoints/step-N.pt{hint}")
    state = load_checkpoint(path)
    for key in ("model", "model_config", "tokenizer"):
        if key not in state:
            raise RandomMaskError(f"{path}: not a randommask checkpoint (no {key!r} entry)")
    return Run(path=run_dir, checkpoint=path, state=state, tokenizer=tokenizer_from_state(run_dir, state),
               model_config=dict(state["model_config"]), model_state=state["model"],
               config=dict(state.get("config") or {}), step=int(state.get("step", 0)))


#: The name earlier code and scripts know `open_run` by.
load_pretrained = open_run
