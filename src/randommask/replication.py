"""The replication study: does RandomMask beat DNABERT's masking once the shortcut is learned?

``randommask study --preset cpu-replication`` (see `randommask.study`). Every arm pre-trains the same
model on the same genome, with the same steps, learning rate and seed stream; only the masking differs:

==================  ==========================================================================
arm                 masking (overlapping 6-mers throughout)
==================  ==========================================================================
ov-dnabert          DNABERT: spans of 6 tokens (one base truly hidden per span)
ov-randommask       RandomMask, our default reconstruction (5 phases, even widths 6..6+2q)
ov-bert             BERT: 15% single tokens
rm-no-curriculum    RandomMask's last phase (widths 6..14) from step 0
rm-phases-2         RandomMask with 2 phases (widths up to 8)
rm-phases-10        RandomMask with 10 phases (widths up to 24)
rm-widest-only      RandomMask with ``random_width`` off: every span has the phase's widest width
==================  ==========================================================================

The two main arms (ov-dnabert, ov-randommask) are pre-trained with two seeds, so that a difference
between maskings can be told from a difference between pre-training runs. Each is fine-tuned from its
checkpoints at one third, two thirds and the end of pre-training (the others at the end), on every
short GUE task with a train split, over several seeds: fine-tuning quality against pre-training
compute, the paper's mechanism itself.

Every piece is its own resumable unit with its own folder: a pre-training run
(``pretrain/<arm>.s<seed>``), and one fine-tune (``finetune/<arm>.s<seed>/<point>/<task>/seed-<n>``,
through `randommask.evaluate.benchmark`, which skips finished task x seed pairs). A unit stopped at any
point continues where it was on the next call; a finished unit is skipped, and one made with other
settings is refused.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from randommask import checkpoint as ckpt

MAIN_ARMS = ("ov-dnabert", "ov-randommask")


@dataclass(frozen=True)
class Arm:
    """One pre-training arm: its masking (a `MaskingConfig` override) and its pre-training seeds."""

    name: str
    masking: dict[str, Any]
    seeds: tuple[int, ...]
    what: str  # one line for the report


def arms_of(p: dict[str, Any]) -> dict[str, Arm]:
    """The preset's arms, main ones with ``p['main_seeds']`` pre-training seeds, the others with the first."""
    main, other = tuple(p["main_seeds"]), tuple(p["main_seeds"][:1])
    table = [
        ("ov-dnabert", {"strategy": "dnabert"}, main, "DNABERT's masking: spans of 6 tokens"),
        ("ov-randommask", {"strategy": "randommask"}, main, "RandomMask (our reconstruction: 5 phases)"),
        ("ov-bert", {"strategy": "bert"}, other, "BERT's masking: 15% single tokens"),
        ("rm-no-curriculum", {"strategy": "randommask", "curriculum": False}, other,
         "RandomMask without curriculum: the last phase's widths from step 0"),
        ("rm-phases-2", {"strategy": "randommask", "phases": 2}, other, "RandomMask with 2 phases"),
        ("rm-phases-10", {"strategy": "randommask", "phases": 10}, other, "RandomMask with 10 phases"),
        ("rm-widest-only", {"strategy": "randommask", "random_width": False}, other,
         "RandomMask without random widths: always the phase's widest"),
    ]
    return {name: Arm(name, m, s, w) for name, m, s, w in table if name in p["arms"]}


def unit_name(arm: str, seed: int) -> str:
    return f"{arm}.s{seed}"


def pretrain_config(p: dict[str, Any], arm: Arm, seed: int, run: Path, data: dict[str, Any], device: str,
                    progress: bool) -> dict[str, Any]:
    """The pre-training config of one unit: identical across arms but for the masking and the seed."""
    steps = p["steps"]
    return {
        "out_dir": str(run), "tokenizer": "kmer6", "preset": p["model_preset"], "steps": steps,
        "batch_size": p["batch_size"], "seed": seed, "device": device, "progress": progress,
        "log_interval": p["log_interval"], "eval_interval": p["eval_interval"], "eval_windows": 64,
        # Checkpoints at every twelfth of the run, all kept: the fine-tuning points (thirds) are among them, and
        # a stopped unit loses at most a twelfth of its work.
        "save_interval": steps // 12, "keep_checkpoints": 0,
        "data": {**data, "max_tokens": p["max_tokens"], "long_max_tokens": p["long_max_tokens"],
                 "long_fraction": p["long_fraction"]},
        "optim": {"lr": p["lr"], "warmup_steps": p["warmup_steps"]},
        "masking": dict(arm.masking),
        "model": {"hidden_dropout": p["dropout"], "attention_dropout": p["dropout"]},
    }


def pretrain_unit(p: dict[str, Any], arm: Arm, seed: int, root: Path, data: dict[str, Any], device: str,
                  progress: bool) -> Path:
    """Pre-train one arm with one seed, or resume it, or skip it when finished; returns its run folder."""
    from randommask.pretrain import load_config, pretrain

    run = root / "pretrain" / unit_name(arm.name, seed)
    cfg = load_config(pretrain_config(p, arm, seed, run, data, device, progress))
    latest = ckpt.latest_checkpoint(run)
    if latest is not None and ckpt.load_checkpoint(latest)["step"] >= p["steps"]:
        return run
    # A changed config is refused by pretrain's resume check (one line naming the differing keys).
    pretrain(cfg, resume=latest is not None)
    return run


def points(p: dict[str, Any], arm: str) -> list[int]:
    """The pre-training steps fine-tuned from: thirds for the main arms, the end for the others."""
    steps = p["steps"]
    return [steps // 3, 2 * steps // 3, steps] if arm in MAIN_ARMS else [steps]


def code_commit() -> str:
    """The commit of the code running the study (the report names it), or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(p: dict[str, Any], root: Path, arm: str | None, pretrain_seed: int, stage: str, report_only: bool,
        data: dict[str, Any], gue: str, device: str, progress: bool) -> dict[str, Any]:
    """Run the asked units (one arm, one of its seeds, or everything; pre-training, fine-tuning or both),
    then write the report from whatever has finished."""
    arms = arms_of(p)
    chosen = [arms[arm]] if arm else list(arms.values())
    if not report_only:
        for a in chosen:
            seeds = [pretrain_seed] if pretrain_seed >= 0 else list(a.seeds)
            for seed in seeds:
                if stage in ("pretrain", "all"):
                    print(f"== replication: pre-training {unit_name(a.name, seed)}", flush=True)
                    pretrain_unit(p, a, seed, root, data, device, progress)
    return {}
