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
bpe-bert            DNABERT-2's tokenizer instead: BPE (``bpe_vocab_size`` tokens, learnt from the
                    same genome's training windows by `randommask.bpe_train`), BERT's masking
==================  ==========================================================================

Equal compute across tokenizers means the same tokens per step and the same steps: the same model, the
same FLOPs and time per step. A BPE token covers ~4 bases where an overlapping 6-mer adds one, so at equal
tokens the BPE arm has read ~4 times the DNA; the other reading (the same bases read) is its checkpoint
nearest to ``steps / bases_per_token`` steps, which is fine-tuned too, and the report gives both.

The two main arms (ov-dnabert, ov-randommask) are pre-trained with two seeds, so that a difference
between maskings can be told from a difference between pre-training runs. Each is fine-tuned from its
checkpoints at one third, two thirds and the end of pre-training (the others at the end), on every
short GUE task with a train split, over several seeds: fine-tuning quality against pre-training
compute, the paper's mechanism itself.

The 500-bp EMP tasks start from each main unit's end checkpoint continued on 512-token windows (its own
unit, ``pretrain/<arm>.s<seed>.emp``; see "EMP continuation" below). Whether a longer fine-tuning run
would change the ranking is checked on one task per group (``finetune/<arm>.s<seed>/step-<end>-long``,
every fine-tuning limit doubled).

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
from randommask.bpe import REPORT_FILE
from randommask.errors import RandomMaskError
from randommask.replication_report import EMP_SUFFIX, MAIN_ARMS, bases_per_token, bpe_folder, write_report


@dataclass(frozen=True)
class Arm:
    """One pre-training arm: its masking (a `MaskingConfig` override) and its pre-training seeds."""

    name: str
    masking: dict[str, Any]
    seeds: tuple[int, ...]
    what: str  # one line for the report
    tokenizer: str = "kmer6"  # "bpe": the study's BPE vocabulary (learnt into OUT/tokenizer)


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
    arms = {name: Arm(name, m, s, w) for name, m, s, w in table if name in p["arms"]}
    if "bpe-bert" in p["arms"]:
        arms["bpe-bert"] = Arm("bpe-bert", {"strategy": "bert"}, other, f"BPE ({p.get('bpe_vocab_size', 4096):,} "
                               "tokens, DNABERT-2's tokenizer) with BERT's masking", tokenizer="bpe")
    return arms


def learn_bpe(p: dict[str, Any], root: Path, data: dict[str, Any], progress: bool) -> Path:
    """The study's BPE vocabulary, learnt once from the pre-training genome (skipped when there)."""
    from randommask.bpe_train import TokenizerTrainConfig, train_tokenizer

    folder = bpe_folder(root)
    if not (folder / REPORT_FILE).is_file():
        print("== replication: learning the BPE vocabulary", flush=True)
        train_tokenizer(TokenizerTrainConfig(fasta=list(data.get("fasta") or []), store=data.get("store") or None,
                                             out=str(folder), vocab_size=p.get("bpe_vocab_size", 4096),
                                             windows=p.get("bpe_windows", 20000), force=True, progress=progress))
    return folder


def unit_name(arm: str, seed: int) -> str:
    return f"{arm}.s{seed}"


def pretrain_config(p: dict[str, Any], arm: Arm, seed: int, run: Path, data: dict[str, Any], device: str,
                    progress: bool) -> dict[str, Any]:
    """The pre-training config of one unit: identical across arms but for the masking and the seed."""
    steps = p["steps"]
    return {
        "out_dir": str(run), "preset": p["model_preset"], "steps": steps,
        "batch_size": p["batch_size"], "seed": seed, "device": device, "progress": progress,
        "log_interval": p["log_interval"], "eval_interval": p["eval_interval"], "eval_windows": 64,
        # Checkpoints at every twelfth of the run, all kept: the fine-tuning points (thirds) are among them, and
        # a stopped unit loses at most a twelfth of its work.
        "save_interval": max(1, steps // 12), "keep_checkpoints": 0,
        "data": {**data, "max_tokens": p["max_tokens"], "long_max_tokens": p["long_max_tokens"],
                 "long_every": p.get("long_every", 0), "long_from": p.get("long_from", 0.0),
                 "long_fraction": p.get("long_fraction", 0.0),
                 "tail_max_tokens": p.get("tail_max_tokens", 0)},
        "optim": {"lr": p["lr"], "warmup_steps": p["warmup_steps"], "decay_fraction": p.get("decay_fraction", 1.0),
                  "min_lr_ratio": p.get("min_lr_ratio", 0.0)},
        "masking": dict(arm.masking),
        "model": {"hidden_dropout": p["dropout"], "attention_dropout": p["dropout"]},
        "tokenizer": f"bpe:{bpe_folder(run.parent.parent)}" if arm.tokenizer == "bpe" else arm.tokenizer,
    }


def pretrain_unit(p: dict[str, Any], arm: Arm, seed: int, root: Path, data: dict[str, Any], device: str,
                  progress: bool) -> Path:
    """Pre-train one arm with one seed, or resume it, or skip it when finished; returns its run folder."""
    from randommask.pretrain import load_config, pretrain

    run = root / "pretrain" / unit_name(arm.name, seed)
    if arm.tokenizer == "bpe":
        learn_bpe(p, root, data, progress)
    cfg = load_config(pretrain_config(p, arm, seed, run, data, device, progress))
    latest = ckpt.latest_checkpoint(run)
    if latest is not None and ckpt.load_checkpoint(latest)["step"] >= p["steps"]:
        return run
    # A changed config is refused by pretrain's resume check (one line naming the differing keys).
    pretrain(cfg, resume="auto")
    return run


def pretrain_units(p: dict[str, Any], root: Path) -> dict[str, Path]:
    """Every pre-training unit's name and run folder (the EMP continuations after their main units)."""
    names = []
    for a in arms_of(p).values():
        for s in a.seeds:
            names.append(unit_name(a.name, s))
            if has_emp_continuation(p, a.name):
                names.append(emp_unit_name(a.name, s))
    return {name: root / "pretrain" / name for name in names}


# ------------------------------------------------------------------------------------------ EMP continuation
# The EMP tasks are 500 bp: ~500 overlapping 6-mers, so their models need position embeddings trained up to
# 512. The main schedule's 512-token tail runs at the floor learning rate (a tenth of the peak), and measured on
# ov-dnabert.s0 (docs/regime.md) that leaves positions 128-511 at near-uniform loss (7.1 nats against 1.8 below
# 128) after its 2,100 steps. So the EMP models are the main units' end checkpoints continued on 512-token
# windows at a raised learning rate: the same continuation for every arm, used by the EMP fine-tunes only.
def has_emp_continuation(p: dict[str, Any], arm: str) -> bool:
    return arm in MAIN_ARMS and bool(p.get("emp_tasks")) and p.get("emp_steps", 0) > 0


def emp_unit_name(arm: str, seed: int) -> str:
    return unit_name(arm, seed) + EMP_SUFFIX


def emp_pretrain_config(p: dict[str, Any], arm: Arm, seed: int, run: Path, data: dict[str, Any], device: str,
                        progress: bool) -> dict[str, Any]:
    """The EMP continuation of one unit: ``emp_steps`` steps of ``emp_batch_size`` windows of ``emp_max_tokens``
    tokens (as many tokens a step as the main run), warm-up to ``emp_lr`` and linear decay to zero, the arm's
    masking as it was at the end of the main run (RandomMask's last phase: no curriculum)."""
    masking = dict(arm.masking)
    if masking.get("strategy") == "randommask":
        masking["curriculum"] = False  # the widths the main run ended with, from the continuation's first step
    steps = p["emp_steps"]
    return {
        "out_dir": str(run), "preset": p["model_preset"], "steps": steps, "batch_size": p["emp_batch_size"],
        "seed": seed, "device": device, "progress": progress, "log_interval": p["log_interval"],
        "eval_interval": max(1, steps // 6), "eval_windows": 64, "save_interval": max(1, steps // 3),
        "keep_checkpoints": 0,
        "data": {**data, "max_tokens": p["emp_max_tokens"]},
        "optim": {"lr": p["emp_lr"], "warmup_steps": p["emp_warmup_steps"]},
        "masking": masking,
        "model": {"hidden_dropout": p["dropout"], "attention_dropout": p["dropout"]},
        "tokenizer": f"bpe:{bpe_folder(run.parent.parent)}" if arm.tokenizer == "bpe" else arm.tokenizer,
    }


def emp_checkpoint(p: dict[str, Any], root: Path, arm: str, seed: int) -> Path:
    """The checkpoint the EMP fine-tunes of one unit start from: its continuation's end (its own end without one)."""
    if has_emp_continuation(p, arm):
        return root / "pretrain" / emp_unit_name(arm, seed) / "checkpoints" / f"step-{p['emp_steps']}.pt"
    return root / "pretrain" / unit_name(arm, seed) / "checkpoints" / f"step-{p['steps']}.pt"


def emp_pretrain_unit(p: dict[str, Any], arm: Arm, seed: int, root: Path, data: dict[str, Any], device: str,
                      progress: bool) -> Path | None:
    """Continue one finished main unit for EMP, or resume it, or skip it when done; None while the main unit
    has not finished."""
    from randommask.pretrain import load_config, pretrain

    source = root / "pretrain" / unit_name(arm.name, seed) / "checkpoints" / f"step-{p['steps']}.pt"
    if not source.is_file():
        print(f"== replication: {source} not there yet; the EMP continuation waits for it", flush=True)
        return None
    run = root / "pretrain" / emp_unit_name(arm.name, seed)
    cfg = load_config(emp_pretrain_config(p, arm, seed, run, data, device, progress))
    latest = ckpt.latest_checkpoint(run)
    if latest is not None and ckpt.load_checkpoint(latest)["step"] >= p["emp_steps"]:
        return run
    pretrain(cfg, resume="auto", init_from=str(source))
    return run


def points(p: dict[str, Any], arm: str, root: Path) -> list[int]:
    """The pre-training steps fine-tuned from: thirds for the main arms, the end for the others; for a BPE
    arm also the checkpoint that has read about as many bases as the k-mer arms by their end (once the
    vocabulary's compression is known)."""
    steps = p["steps"]
    if arm in MAIN_ARMS:
        return [steps // 3, 2 * steps // 3, steps]
    bpt = bases_per_token(root) if arm == "bpe-bert" else None
    if bpt is None:
        return [steps]
    return sorted({equal_bases_step(p, bpt), steps})


def equal_bases_step(p: dict[str, Any], bases_per_token: float) -> int:
    """The checkpoint step (a multiple of the save interval, a twelfth of the run) nearest to the one where
    BPE has read as many bases as an overlapping k-mer arm (one new base a token) by the end."""
    every = max(1, p["steps"] // 12)
    return max(every, min(p["steps"], every * round(p["steps"] / bases_per_token / every)))


def finetune_settings(p: dict[str, Any], gue: str, device: str, progress: bool) -> dict[str, Any]:
    """Fine-tuning settings shared by every fine-tune of the study: dev MCC scored every ``ft_eval_steps``
    on a seeded subset of dev, stopped when it has not improved for ``ft_patience`` evaluations (a plateau; not
    before ``ft_min_steps``), capped at ``ft_max_steps`` (and at ``ft_epochs`` where given, else the task group's
    DNABERT-2 epochs); the best-dev model is scored once on all of dev and test."""
    return {"gue": gue, "device": device, "progress": progress, "learning_rate": p["ft_lr"],
            "warmup_steps": p["ft_warmup"], "dropout": p["ft_dropout"], "max_steps": p["ft_max_steps"],
            "eval_steps": p["ft_eval_steps"], "patience": p["ft_patience"], "select_dev_examples": p["ft_select_dev"],
            **({"min_steps": p["ft_min_steps"]} if p.get("ft_min_steps") else {}),
            **({"epochs": p["ft_epochs"]} if p.get("ft_epochs") else {}),
            **({"max_train_examples": p["ft_max_train"]} if p.get("ft_max_train") else {}),
            **({"max_eval_examples": p["ft_max_eval"]} if p.get("ft_max_eval") else {})}


def finetune_plan(p: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """Every fine-tuning unit of the study, in the order they are run: (folder, model, tasks, seeds).

    A unit is one model x task list x seed count, run by `randommask.evaluate.benchmark` into its folder, whose
    (task, seed) runs each finish on their own (results.json) and are skipped when done."""
    plan = []
    for arm in arms_of(p).values():
        for seed in arm.seeds:
            unit = unit_name(arm.name, seed)
            for step in points(p, arm.name, root):
                seeds = p["end_seeds"] if step == p["steps"] and arm.name in MAIN_ARMS else p["seeds"]
                plan.append({"folder": root / "finetune" / unit / f"step-{step}", "arm": arm.name,
                             "pretrain_seed": seed, "step": step, "tasks": list(p["tasks"]), "seeds": seeds,
                             "model": root / "pretrain" / unit / "checkpoints" / f"step-{step}.pt"})
            if arm.name in MAIN_ARMS and p.get("emp_tasks"):
                plan.append({"folder": root / "finetune" / unit / "emp", "arm": arm.name, "pretrain_seed": seed,
                             "step": p["steps"], "tasks": list(p["emp_tasks"]), "seeds": p["seeds"], "emp": True,
                             "model": emp_checkpoint(p, root, arm.name, seed)})
    # Does a longer fine-tuning run change the ranking? Every limit doubled, one task per group, fine-tuning
    # seed 0 at the end (after every unit above), for each of the main arms' pre-training seeds: a session can
    # continue only the pre-training runs its CPU reproduces (docs/findings.md, "Reproducibility"), so the
    # check is planned on every run and the report reads whichever pairs of runs have finished.
    for arm in [a for a in arms_of(p).values() if a.name in MAIN_ARMS and p.get("long_check_tasks")]:
        for seed in arm.seeds:
            unit = unit_name(arm.name, seed)
            plan.append({"folder": root / "finetune" / unit / f"step-{p['steps']}-long", "arm": arm.name,
                         "pretrain_seed": seed, "step": p["steps"], "tasks": list(p["long_check_tasks"]),
                         "seeds": 1, "long": True,
                         "model": root / "pretrain" / unit / "checkpoints" / f"step-{p['steps']}.pt"})
    plan.append({"folder": root / "finetune" / "scratch" / "short", "arm": "scratch", "pretrain_seed": None, "step": 0,
                 "tasks": list(p["tasks"]), "seeds": p["end_seeds"], "model": None})
    if p.get("emp_tasks"):
        plan.append({"folder": root / "finetune" / "scratch" / "emp", "arm": "scratch", "pretrain_seed": None,
                     "step": 0, "tasks": list(p["emp_tasks"]), "seeds": p["seeds"], "model": None, "emp": True})
    return plan


def finetune_unit(p: dict[str, Any], unit: dict[str, Any], gue: str, device: str, progress: bool,
                  seeds: range | None = None) -> None:
    """Run (or resume) one fine-tuning unit, seed by seed: every task with fine-tuning seed 0, then every task
    with seed 1, ..., so that a first comparison over all tasks comes soonest; `seeds` (a range) runs only
    those of the unit's seeds. Its pre-training checkpoint must exist. Each (task, seed) run is the same
    whatever the order (its data order and initial head are functions of its seed)."""
    from randommask.evaluate import benchmark, load_benchmark_config

    wanted = range(unit["seeds"]) if seeds is None else range(seeds.start, min(seeds.stop, unit["seeds"]))
    data = {**finetune_settings(p, gue, device, progress), "tasks": unit["tasks"], "out_dir": str(unit["folder"])}
    if unit.get("emp"):
        data["max_steps"] = p["emp_max_steps"]
    if unit.get("long"):
        data.update(max_steps=p["long_check_max_steps"], patience=p["long_check_patience"],
                    epochs=p["long_check_epochs"], **({"min_steps": p["long_check_min_steps"]}
                                                      if p.get("long_check_min_steps") else {}))
    if unit["model"] is None:
        data.update(from_scratch=True, tokenizer="kmer6", preset=p["model_preset"])
    else:
        data["model"] = str(unit["model"])
    for seed in wanted:
        benchmark(load_benchmark_config({**data, "seeds": 1, "first_seed": seed}))
    if len(wanted) > 1:  # the unit's tables (results.md, .csv) over the seeds run, all finished: nothing reruns
        benchmark(load_benchmark_config({**data, "seeds": len(wanted), "first_seed": wanted.start}))


def unit_finished(unit: dict[str, Any]) -> bool:
    """Whether every (task, seed) run of a fine-tuning unit has written its results.json (evaluate's layout)."""
    from randommask.finetune import RESULTS

    folder = Path(unit["folder"]) / "runs"
    return all((folder / task / f"seed-{s}" / RESULTS).exists()
               for task in unit["tasks"] for s in range(unit["seeds"]))


def code_commit() -> str:
    """The commit of the code running the study (the report names it), or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(p: dict[str, Any], root: Path, arm: str | None, pretrain_seed: int, stage: str, report_only: bool,
        data: dict[str, Any], gue: str, device: str, progress: bool, ft_unit: str = "",
        ft_seeds: range | None = None) -> dict[str, Any]:
    """Run the asked units (one arm, one of its seeds, or everything; pre-training, fine-tuning or both; only
    the fine-tuning units named `ft_unit`, only the fine-tuning seeds `ft_seeds`), then write the report from
    whatever has finished."""
    arms = arms_of(p)
    names = sorted({u["folder"].name for u in finetune_plan(p, root)})
    if ft_unit and ft_unit not in names:
        raise RandomMaskError(f"study: no fine-tuning unit is named {ft_unit!r}; the names are {', '.join(names)}")

    def asked(unit: dict[str, Any]) -> bool:
        return not ft_unit or unit["folder"].name == ft_unit

    chosen = [] if arm == "scratch" else [arms[arm]] if arm else list(arms.values())
    if not report_only:
        for a in chosen:
            seeds = [pretrain_seed] if pretrain_seed >= 0 else list(a.seeds)
            for seed in seeds:
                own = [u for u in finetune_plan(p, root) if u["arm"] == a.name and u["pretrain_seed"] == seed]
                if stage in ("pretrain", "all") and own and all(unit_finished(u) for u in own):
                    # Nothing left to fine-tune: pre-training it again (its checkpoints may be gone, on another
                    # CPU another model) would only overwrite the loss curve its fine-tunes came from.
                    print(f"== replication: {unit_name(a.name, seed)}: every fine-tune has finished; not "
                          f"pre-trained again", flush=True)
                    continue
                if stage in ("pretrain", "all"):
                    print(f"== replication: pre-training {unit_name(a.name, seed)}", flush=True)
                    pretrain_unit(p, a, seed, root, data, device, progress)
                    if has_emp_continuation(p, a.name):
                        print(f"== replication: continuing {unit_name(a.name, seed)} for EMP", flush=True)
                        emp_pretrain_unit(p, a, seed, root, data, device, progress)
                if stage in ("finetune", "all"):
                    for unit in finetune_plan(p, root):
                        if unit["arm"] != a.name or unit["pretrain_seed"] != seed or not asked(unit):
                            continue
                        if not unit["model"].exists():
                            print(f"== replication: {unit['model']} not there yet (pre-train first); skipped",
                                  flush=True)
                            continue
                        print(f"== replication: fine-tuning {unit['folder'].relative_to(root)}", flush=True)
                        finetune_unit(p, unit, gue, device, progress, ft_seeds)
        if (not arm or arm == "scratch") and stage in ("finetune", "all"):  # the floor: no pre-training
            for unit in finetune_plan(p, root):
                if unit["arm"] == "scratch" and asked(unit):
                    print(f"== replication: fine-tuning {unit['folder'].relative_to(root)}", flush=True)
                    finetune_unit(p, unit, gue, device, progress, ft_seeds)
    return write_report(p, root, code_commit(), arms, pretrain_units(p, root), finetune_plan(p, root))
