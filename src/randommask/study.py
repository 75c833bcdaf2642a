"""``randommask study``: the paper's experiment grid at equal compute, and one report on it.

Pre-training arms (same model, steps, batch and windows for each):

==============  =========================  ===========
arm             tokens                     masking
==============  =========================  ===========
ov-bert         overlapping 6-mers         bert
ov-dnabert      overlapping 6-mers         dnabert
ov-randommask   overlapping 6-mers         randommask
nov-bert        non-overlapping 6-mers     bert (span masking means nothing without overlap)
==============  =========================  ===========

Every pre-trained arm is then fine-tuned with overlapping and with non-overlapping tokens (same
vocabulary, see `randommask.finetune`) on the chosen GUE tasks over several seeds, beside the
from-scratch baseline. The report states the paper's three observations and RandomMask's claim as
sentences, each with the measured figures and a verdict: supported, not supported, or inconclusive
(a difference over seeds that Welch's t-test does not find significant at 0.05), and it says whether
the run reached the regime where the overlapping-k-mer shortcut is learned at all: the ``ov-dnabert``
arm's masked-token loss against its floor (one hidden base per span: ln 4, about 1.39) and the step at
which it fell below 2.

Each arm is its own resumable job (``--arm NAME`` runs one; ``--report-only`` merges whatever has
finished), so a grid can be spread over several short device calls.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from randommask import checkpoint as ckpt
from randommask.config import load_yaml, save_yaml
from randommask.errors import RandomMaskError
from randommask.files import atomic_write_text
from randommask.metrics import welch_t_test
from randommask.tokenizers import from_name, uniform_loss

ARMS: dict[str, tuple[str, str]] = {
    "ov-bert": ("kmer6", "bert"),
    "ov-dnabert": ("kmer6", "dnabert"),
    "ov-randommask": ("kmer6", "randommask"),
    "nov-bert": ("kmer6-nonoverlap", "bert"),
}
FLOOR = math.log(4)  # one base hidden per span: the loss cannot go much below ln 4
REGIME = 2.0  # the dnabert arm below this loss has learned the overlapping-k-mer shortcut
UNIFORM = uniform_loss(from_name("kmer6"))  # guessing uniformly among the 4,096 6-mers of every arm

PRESETS: dict[str, dict[str, Any]] = {
    # Minutes on 2 CPU cores; exercised in CI. Says nothing about the paper's regime.
    "cpu-smoke": {"model_preset": "tiny", "steps": 60, "batch_size": 8, "max_tokens": 64, "lr": 2e-3,
                  "warmup_steps": 6, "tasks": ["prom/prom_core_all"], "seeds": 3, "ft_max_steps": 20,
                  "ft_max_train": 256, "ft_max_eval": 128, "ft_lr": 1e-3, "ft_warmup": 2, "dropout": 0.1,
                  "ft_dropout": 0.1},
    # Two CPU cores, about 40 minutes per arm with three arms side by side: the fastest setting of a CPU search
    # of the ov-dnabert arm alone (docs/regime.md). Measured: its training loss ends at 2.06 (held-out 2.22),
    # at the edge of the shortcut regime, not under the line of 2.
    "cpu-regime": {"model_preset": "tiny", "steps": 9000, "batch_size": 64, "max_tokens": 64, "lr": 1.5e-3,
                   "warmup_steps": 100, "dropout": 0.0, "tasks": ["prom/prom_core_all"], "seeds": 3,
                   "ft_max_steps": 200, "ft_max_train": 0, "ft_max_eval": 0, "ft_lr": 5e-4, "ft_warmup": 30,
                   "ft_dropout": 0.1},
    # One GPU. Pre-training as in cpu-regime but over 15,000 steps (cpu-regime's 9,000 ended at 2.06). Its
    # ov-dnabert arm, run step for step on the CPU, fell below 2 at step 8,100 (docs/regime.md). Not yet run on
    # a GPU by this project (estimated a few minutes per arm). The GPU's time goes to fuller fine-tuning, on
    # the two 70-bp promoter tasks: 67 tokens, so only 3 positions lie beyond the 64-token windows.
    "gpu": {"model_preset": "tiny", "steps": 15000, "batch_size": 64, "max_tokens": 64, "lr": 1.5e-3,
            "warmup_steps": 100, "dropout": 0.0, "tasks": ["prom/prom_core_all", "prom/prom_core_notata"],
            "seeds": 3, "ft_max_steps": 2000, "ft_max_train": 0, "ft_max_eval": 0, "ft_lr": 5e-4, "ft_warmup": 50,
            "ft_dropout": 0.1},
    # The replication's machinery in minutes (CI): every kind of unit, nothing measured.
    "replication-smoke": {
        "design": "replication", "model_preset": "tiny", "steps": 24, "batch_size": 8, "max_tokens": 64,
        "long_max_tokens": 128, "long_every": 4, "lr": 2e-3, "warmup_steps": 4, "dropout": 0.0,
        "log_interval": 4, "eval_interval": 12, "main_seeds": [0, 1],
        "arms": ["ov-dnabert", "ov-randommask", "rm-no-curriculum", "bpe-bert"], "bpe_vocab_size": 256,
        "bpe_windows": 200,
        "tasks": ["prom/prom_core_all", "tf/0"], "emp_tasks": ["EMP/H3"], "seeds": 3, "end_seeds": 3,
        "ft_max_steps": 12, "ft_max_train": 128, "ft_max_eval": 64, "ft_lr": 1e-3, "ft_warmup": 2, "ft_dropout": 0.1,
        "ft_eval_steps": 4, "ft_patience": 2, "ft_select_dev": 32, "emp_max_steps": 6, "emp_steps": 4,
        "emp_batch_size": 2, "emp_max_tokens": 128, "emp_lr": 1e-3, "emp_warmup_steps": 1,
        "long_check_tasks": ["prom/prom_core_all"], "long_check_max_steps": 24, "long_check_patience": 4,
        "long_check_epochs": 10},
    # The replication (randommask.replication): two CPU cores over several sessions. The fastest measured path to
    # the shortcut regime (docs/regime.md: 64-token windows, batch 64, learning rate 1.5e-3, no dropout). Longer
    # windows mixed in from step 0 slowed the shortcut down (held-out 5.4 against 4.2 at step 3,000, 512- or
    # 128-token steps alike), so the interleaved 128-token steps (the positions of the 100-bp tasks) start at a
    # quarter of the run, before the first fine-tuned checkpoint; the last tenth is at 512 tokens (BERT's
    # recipe) for the 500-bp EMP tasks, which only the last checkpoints serve. The loss stalled above 2 until
    # the learning rate had decayed to ~46% of its peak (at 54% of the steps, twice), so the decay ends early:
    # at 60% of the steps, at a tenth of the peak, kept to the end (docs/regime.md).
    "cpu-replication": {
        "design": "replication", "model_preset": "tiny", "steps": 21000, "batch_size": 64, "max_tokens": 64,
        "long_max_tokens": 128, "long_every": 10, "long_from": 0.25, "long_fraction": 0.1, "tail_max_tokens": 512,
        "lr": 1.5e-3, "warmup_steps": 100, "decay_fraction": 0.6, "min_lr_ratio": 0.1, "dropout": 0.0,
        "log_interval": 100, "eval_interval": 500, "main_seeds": [0, 1],
        "arms": ["ov-dnabert", "ov-randommask", "ov-bert", "rm-no-curriculum", "rm-phases-2", "rm-phases-10",
                 "rm-widest-only", "bpe-bert"],
        "bpe_vocab_size": 4096, "bpe_windows": 20000,
        "tasks": ["prom/prom_core_all", "prom/prom_core_notata", "tf/0", "tf/1", "tf/2", "tf/4", "mouse/0",
                  "mouse/3", "mouse/4"],
        "emp_tasks": ["EMP/H3", "EMP/H3K14ac", "EMP/H4"],
        # Fine-tuning ends at its dev plateau (4 evaluations without a better dev MCC) or at 3,000 steps, with no
        # epoch limit (`ft_epochs` 100 never binds): under DNABERT-2's per-group epochs and a 1,500-step cap, 12 of
        # the first 33 fine-tunes had their best dev MCC at their last evaluation (10 reached a plateau), mouse/3
        # after only 300 steps and 3 evaluations (dev MCC still climbing; test MCC 25 and 58 across two seeds).
        "seeds": 3, "end_seeds": 5, "ft_max_steps": 3000, "ft_epochs": 100, "ft_max_train": 0, "ft_max_eval": 0,
        "ft_lr": 5e-4, "ft_warmup": 50, "ft_dropout": 0.1, "ft_eval_steps": 100, "ft_patience": 4,
        # No plateau before step 1,000: mouse/4's dev MCC sits near 0 for 500-900 steps before it rises, and
        # patience alone stopped it at step 800 at dev MCC 0.05 (from 5bf4df4).
        # EMP's fine-tunes stop at 600 steps (~14 epochs of their ~1,350 fallback training rows), before that minimum.
        "ft_min_steps": 1000, "ft_select_dev": 1000, "emp_max_steps": 600,
        # EMP's models: the end checkpoints continued on 512-token windows (randommask.replication, "EMP
        # continuation"): the tail above, at the floor learning rate, leaves positions 128-511 untrained. 1,500
        # steps trained them under DNABERT's masking but not under RandomMask's; 4,500 do (docs/regime.md).
        "emp_steps": 4500, "emp_batch_size": 8, "emp_max_tokens": 512, "emp_lr": 1e-3, "emp_warmup_steps": 100,
        # Does a longer fine-tuning run change the ranking? One task per group, every limit doubled (steps,
        # patience and epochs).
        "long_check_tasks": ["prom/prom_core_all", "tf/0", "mouse/0"], "long_check_max_steps": 6000,
        "long_check_patience": 8, "long_check_epochs": 200, "long_check_min_steps": 2000},
}


@dataclass
class StudyConfig:
    """The study grid. Empty or zero fields take the preset's value."""

    preset: str = "cpu-smoke"  # cpu-smoke (minutes, CI), cpu-regime (about 2 hours on 2 cores) or gpu
    fasta: list[str] = field(default_factory=list)  # genome FASTA files for pre-training
    store: str | None = None  # a prepared genome store (instead of fasta)
    gue: str = ""  # the GUE root folder
    out_dir: str = "runs/study"  # the study folder: pretrain/<arm>, finetune/<arm>.ft-<ov|nov>, report.md
    arms: list[str] = field(default_factory=lambda: list(ARMS))  # pre-training arms of the grid
    arm: str | None = None  # run only this arm (its pre-training and fine-tuning), then the report
    report_only: bool = False  # write the report from the arms that have finished; run nothing
    tasks: list[str] = field(default_factory=list)  # GUE tasks (default: the preset's)
    seeds: int = 0  # fine-tuning seeds per task, at least 3 (0: the preset's)
    steps: int = 0  # pre-training steps per arm (0: the preset's)
    batch_size: int = 0  # pre-training windows per step (0: the preset's)
    max_tokens: int = 0  # tokens per pre-training window (0: the preset's)
    model_preset: str = ""  # model shape (empty: the preset's)
    lr: float = 0.0  # pre-training peak learning rate (0: the preset's)
    dropout: float = -1.0  # pre-training dropout, hidden and attention (-1: the preset's)
    ft_max_steps: int = -1  # cap on fine-tuning steps (-1: the preset's, 0: no cap)
    seed: int = 0  # pre-training seed of every arm
    pretrain_seed: int = -1  # replication: run only this pre-training seed of --arm (-1: all of its seeds)
    stage: str = "all"  # replication: pretrain, finetune or all (a unit's fine-tunes need its pre-training)
    ft_unit: str = ""  # replication: only the fine-tuning units of this name (step-N, emp, step-N-long; empty: all)
    ft_seeds: str = ""  # replication: only these fine-tuning seeds, "A-B" or "A" (empty: all of each unit's)
    main_seeds: int = 0  # replication: the main arms' pre-training seeds are 0..N-1 (0: the preset's 2 or the folder's)
    device: str = "auto"  # auto, cpu or cuda
    progress: bool = False  # show progress bars

    def seed_range(self) -> range | None:
        """`ft_seeds` as a range of fine-tuning seeds (None: every seed of each unit)."""
        if not self.ft_seeds:
            return None
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", self.ft_seeds.strip())
        if m is None or int(m.group(2) or m.group(1)) < int(m.group(1)):
            raise RandomMaskError(f"study: --ft-seeds takes A-B or A (fine-tuning seeds, A <= B), got "
                                  f"{self.ft_seeds!r}")
        return range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)

    def folder_main_seeds(self) -> int:
        """1 + the highest pre-training seed of a main arm with a unit in the study folder (0: none)."""
        from randommask.replication_report import MAIN_ARMS

        pattern = re.compile(rf"(?:{'|'.join(map(re.escape, MAIN_ARMS))})\.s(\d+)")
        folder = Path(self.out_dir) / "pretrain"
        found = [int(m.group(1)) for d in (folder.iterdir() if folder.is_dir() else ())
                 if d.is_dir() and (m := pattern.fullmatch(d.name))]
        return max(found, default=-1) + 1

    def _main_seeds(self, p: dict[str, Any]) -> None:
        """More pre-training seeds of the main arms (a replication preset), and a --pretrain-seed the arm has."""
        if "main_seeds" not in p:
            if self.main_seeds:
                raise RandomMaskError(f"study: --main-seeds is for the replication presets, not {self.preset!r}")
            return
        if self.main_seeds < 0:
            raise RandomMaskError(f"study: --main-seeds takes a number of seeds (1 or more), got {self.main_seeds}")
        if self.main_seeds:
            p["main_seeds"] = list(range(self.main_seeds))
        elif (found := self.folder_main_seeds()) > len(p["main_seeds"]):
            # A folder where `--main-seeds N` pre-trained more runs: a later call without it (a report, a resume)
            # covers them too, or the report would silently drop finished runs.
            p["main_seeds"] = list(range(found))
        if self.pretrain_seed >= 0 and self.arm and self.arm != "scratch":
            from randommask.replication_report import MAIN_ARMS

            own = p["main_seeds"] if self.arm in MAIN_ARMS else p["main_seeds"][:1]
            if self.pretrain_seed not in own:
                raise RandomMaskError(
                    f"study: {self.arm} has pre-training seeds {', '.join(map(str, own))}, not {self.pretrain_seed}"
                    + (f" (--main-seeds {self.pretrain_seed + 1} gives the main arms seeds 0-{self.pretrain_seed})"
                       if self.arm in MAIN_ARMS else ""))

    def resolved(self) -> dict[str, Any]:
        if self.preset not in PRESETS:
            raise RandomMaskError(f"unknown study preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        p = dict(PRESETS[self.preset])
        for key in ("tasks", "seeds", "steps", "batch_size", "max_tokens", "model_preset", "lr"):
            if getattr(self, key):
                p[key] = getattr(self, key)
        if self.ft_max_steps >= 0:
            p["ft_max_steps"] = self.ft_max_steps
        if self.dropout >= 0:
            p["dropout"] = self.dropout
        if p["seeds"] < 3:
            raise RandomMaskError(f"study: seeds must be at least 3 (a mean and a spread), got {p['seeds']}")
        known = [*p["arms"], "scratch"] if "arms" in p else list(ARMS)
        unknown = [a for a in self.arms if a not in ARMS] if "arms" not in p else []
        if unknown or (self.arm and self.arm not in known):
            raise RandomMaskError(f"study: unknown arm {(unknown or [self.arm])[0]!r}; arms are {', '.join(known)}")
        if self.stage not in ("pretrain", "finetune", "all"):
            raise RandomMaskError(f"study: stage must be pretrain, finetune or all, got {self.stage!r}")
        self.seed_range()  # checked here, used by the replication
        self._main_seeds(p)
        if not self.report_only and not (self.fasta or self.store):
            raise RandomMaskError("study: give the genome (FASTA files or --store)")
        if not self.gue:
            raise RandomMaskError("study: give the GUE root folder (--gue)")
        return p


def _pretrain_arm(cfg: StudyConfig, p: dict, arm: str, root: Path) -> Path:
    from randommask.pretrain import load_config, pretrain

    tokenizer, strategy = ARMS[arm]
    run = root / "pretrain" / arm
    pcfg = load_config({
        "out_dir": str(run), "tokenizer": tokenizer, "preset": p["model_preset"], "steps": p["steps"],
        "batch_size": p["batch_size"], "seed": cfg.seed, "device": cfg.device, "progress": cfg.progress,
        "log_interval": max(1, p["steps"] // 50), "eval_interval": max(1, p["steps"] // 10), "eval_windows": 64,
        "save_interval": max(1, p["steps"] // 5), "keep_checkpoints": 0,
        "data": {"fasta": list(cfg.fasta), "store": cfg.store, "max_tokens": p["max_tokens"]},
        "optim": {"lr": p["lr"], "warmup_steps": p["warmup_steps"]},
        "masking": {"strategy": strategy},
        "model": {"hidden_dropout": p["dropout"], "attention_dropout": p["dropout"]},
    })
    latest = ckpt.latest_checkpoint(run)
    if latest is not None and ckpt.load_checkpoint(latest)["step"] >= p["steps"]:
        return run
    pretrain(pcfg, resume="auto")
    return run


def _finetune(cfg: StudyConfig, p: dict, model: Path | None, stride: int, name: str, root: Path) -> dict:
    from randommask.evaluate import benchmark, load_benchmark_config

    data: dict[str, Any] = {
        "gue": cfg.gue, "tasks": p["tasks"], "seeds": p["seeds"], "out_dir": str(root / "finetune" / name),
        "tokenizer_stride": stride, "device": cfg.device, "progress": cfg.progress, "learning_rate": p["ft_lr"],
        "warmup_steps": p["ft_warmup"], "dropout": p["ft_dropout"],
    }
    if model is None:
        data.update(from_scratch=True, tokenizer="kmer6", preset=p["model_preset"])
    else:
        data["model"] = str(model)
    for key, target in (("ft_max_steps", "max_steps"), ("ft_max_train", "max_train_examples"),
                        ("ft_max_eval", "max_eval_examples")):
        if p[key]:
            data[target] = p[key]
    return benchmark(load_benchmark_config(data))


def run_study(cfg: StudyConfig) -> dict[str, Any]:
    """Run what is asked (all arms, one arm, or nothing) and write the merged report."""
    p = cfg.resolved()
    root = Path(cfg.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, root / "study.yaml")
    if p.get("design") == "replication":
        from randommask import replication

        if not cfg.main_seeds and p["main_seeds"] != PRESETS[cfg.preset]["main_seeds"]:
            print(f"study: {root} holds pre-training seeds 0-{p['main_seeds'][-1]} of the main arms; all of them "
                  f"count (as with --main-seeds {len(p['main_seeds'])})", flush=True)

        p["name"] = cfg.preset
        return replication.run(p, root, arm=cfg.arm, pretrain_seed=cfg.pretrain_seed, stage=cfg.stage,
                               report_only=cfg.report_only, data={"fasta": list(cfg.fasta), "store": cfg.store},
                               gue=cfg.gue, device=cfg.device, progress=cfg.progress, ft_unit=cfg.ft_unit,
                               ft_seeds=cfg.seed_range())
    arms = [cfg.arm] if cfg.arm else list(cfg.arms)
    if not cfg.report_only:
        for arm in arms:
            t0 = time.perf_counter()
            print(f"== study arm {arm}: pre-training", flush=True)
            run = _pretrain_arm(cfg, p, arm, root)
            for stride, tag in ((1, "ov"), (6, "nov")):
                print(f"== study arm {arm}: fine-tuning with {'overlapping' if stride == 1 else 'non-overlapping'} "
                      "tokens", flush=True)
                _finetune(cfg, p, run, stride, f"{arm}.ft-{tag}", root)
            atomic_write_text(root / "pretrain" / arm / "study-arm-done.json",
                              json.dumps({"arm": arm, "wall_time_s": time.perf_counter() - t0}))
        if not cfg.arm:  # the baseline goes with the full grid (or its own call: --arm is for pre-trained arms)
            for stride, tag in ((1, "ov"), (6, "nov")):
                print(f"== study baseline: from scratch, {tag} tokens", flush=True)
                _finetune(cfg, p, None, stride, f"scratch.ft-{tag}", root)
    summary = collect(root, p)
    figure = draw_curves(root)
    report = render_report(summary, p, cfg.preset, figure)
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=2))
    atomic_write_text(root / "report.md", report)
    print(report)
    return summary


# ------------------------------------------------------------------------------------------ measures
def logged_steps(run: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl that carry a training loss (evaluations ride on these rows)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in rows if "loss" in r and "skipped" not in r]


def tokens_per_step(cfg: dict[str, Any]) -> int:
    """Token positions per optimizer step (per rank) of a saved pre-training config."""
    return cfg.get("batch_size", 0) * cfg.get("grad_accum", 1) * cfg.get("data", {}).get("max_tokens", 0)


def pretrain_measures(run: Path) -> dict[str, Any] | None:
    """Final losses and the regime: loss against the floor, first step with a training loss below 2."""
    rows = logged_steps(run)
    if not rows:
        return None
    evals = [r for r in rows if "eval_loss" in r]
    below = next((r["step"] for r in rows if r["loss"] < REGIME), None)
    out = {"steps": rows[-1]["step"], "loss": rows[-1]["loss"], "acc": rows[-1]["acc"],
           "eval_loss": evals[-1]["eval_loss"] if evals else None, "eval_acc": evals[-1]["eval_acc"] if evals else None,
           "first_loss": rows[0]["loss"], "step_below_2": below, "floor": FLOOR,
           "over_floor": rows[-1]["loss"] - FLOOR}
    latest = ckpt.latest_checkpoint(run)
    if latest is not None:
        state = ckpt.load_checkpoint(latest)
        out["tokens"] = int(state["step"]) * tokens_per_step(state.get("config") or {})
        out["silhouette"] = embedding_silhouette(state)
        out["layers"] = layer_measures(run)
    return out


def layer_measures(run: Path, windows: int = 8) -> dict[str, list[float]] | None:
    """Per layer, on held-out windows: mean attention entropy, top-1 share, output effective rank."""
    try:
        from randommask.analysis.probe import build_model, eval_encoding, open_store, probe
    except ImportError:
        return None
    r = ckpt.open_run(run)
    enc = eval_encoding(r, open_store(r), windows)
    d = probe(build_model(r.model_config, r.model_state), enc, top_k=(1,)).to_dict()
    return {"entropy": d["entropy_per_layer"], "uniform_entropy": d["uniform_entropy"],
            "top1": d["top_k_share_per_layer"]["1"], "effective_rank": d["effective_rank"][1:]}


def embedding_silhouette(state: dict) -> dict[str, float] | None:
    """How the k-mer embeddings cluster: by central dinucleotide, by first and by last base (cosine); None for
    tokens of varying width (BPE), where no base position is shared."""
    try:
        from randommask.analysis.measures import kmer_labels, silhouettes, token_width
    except ImportError:
        return None
    tok = ckpt.tokenizer_from_state(Path("."), state)
    if token_width([tok.vocab[i] for i in tok.kmer_ids]) is None:
        return None
    emb = state["model"]["bert.embeddings.word_embeddings.weight"].float().numpy()[tok.kmer_ids]
    kmers = [tok.vocab[i] for i in tok.kmer_ids]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(kmers), size=min(1024, len(kmers)), replace=False)
    labels = kmer_labels([kmers[i] for i in pick])
    return {k: float(v) for k, v in silhouettes(emb[pick], labels).items()}


def finetune_measures(folder: Path) -> dict[str, Any] | None:
    path = folder / "results.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    tasks = {t["task"]: {"mcc_mean": t["mcc_mean"], "mcc_std": t["mcc_std"], "mcc_per_seed": t["mcc_per_seed"],
                         "n": t["n"], "fallback": t["fallback"]} for t in summary.get("tasks", [])}
    if not tasks:
        return None
    # A unit still running (another arm's job, side by side) has finished more seeds on some tasks than on
    # others: the task average is taken over the seeds every task has, and the unit is marked partial.
    seeds_of = [dict(zip(t["seeds"], t["mcc_per_seed"], strict=True)) for t in summary["tasks"]]
    common = sorted(set.intersection(*(set(s) for s in seeds_of)))
    avg = np.array([np.mean([s[seed] for s in seeds_of]) for seed in common], dtype=float)
    partial = any(len(s) != len(common) for s in seeds_of)
    if avg.size == 0:
        return None
    return {"tasks": tasks, "mcc_mean": float(avg.mean()), "mcc_std": float(avg.std(ddof=1)) if avg.size > 1 else 0.0,
            "mcc_per_seed": avg.tolist(), "partial": partial}


def collect(root: Path, p: dict) -> dict[str, Any]:
    pre = {arm: pretrain_measures(root / "pretrain" / arm) for arm in ARMS}
    ft = {}
    for name in [*(f"{a}.ft-{t}" for a in ARMS for t in ("ov", "nov")), "scratch.ft-ov", "scratch.ft-nov"]:
        ft[name] = finetune_measures(root / "finetune" / name)
    return {"pretrain": pre, "finetune": ft, "settings": p}


ALPHA = 0.05  # a difference over seeds counts when Welch's t-test gives p below this


def compare(a: dict | None, b: dict | None) -> tuple[str, str]:
    """Verdict on 'a beats b' from the per-seed task-average MCC: Welch's t-test, two-sided, at ALPHA.

    With 3 seeds a side, a difference of one pooled standard deviation is far from significant (p ~ 0.3);
    it takes about 2.3 of them. Inside that, the verdict is "inconclusive", not a finding either way.
    """
    if not a or not b:
        return "not measured", "an arm has not finished"
    diff = a["mcc_mean"] - b["mcc_mean"]
    text = f"{100 * a['mcc_mean']:.1f} vs {100 * b['mcc_mean']:.1f} MCC (difference {100 * diff:+.1f}; sd " \
           f"{100 * a['mcc_std']:.1f} / {100 * b['mcc_std']:.1f} over {len(a['mcc_per_seed'])} / " \
           f"{len(b['mcc_per_seed'])} seeds"
    if min(len(a["mcc_per_seed"]), len(b["mcc_per_seed"])) < 2:
        return "inconclusive", text + "): one seed, no test"
    _, _, p = welch_t_test(a["mcc_per_seed"], b["mcc_per_seed"])
    text += f"; Welch t-test p = {p:.2g})"
    if p >= ALPHA:
        return "inconclusive", text + f": not significant at {ALPHA:g}"
    return ("supported" if diff > 0 else "not supported"), text


def verdicts(s: dict) -> list[dict[str, str]]:
    pre, ft = s["pretrain"], s["finetune"]
    out = []
    # 1. Overlapping fine-tuning beats non-overlapping, whatever the pre-training.
    pairs = [(a, compare(ft.get(f"{a}.ft-ov"), ft.get(f"{a}.ft-nov"))) for a in ARMS]
    done = [(a, v) for a, v in pairs if v[0] != "not measured"]
    kinds = {v[0] for _, v in done}
    v1 = "not measured" if not done else (kinds.pop() if len(kinds) == 1 else "mixed")
    out.append({"claim": "Fine-tuning with overlapping 6-mers beats non-overlapping, whatever the pre-training.",
                "verdict": v1, "figures": "; ".join(f"{a}: {v[1]}" for a, v in done) or "no arm finished"})
    # 2. Overlapping pre-training converges very fast (the loss collapses).
    ov, nov = pre.get("ov-dnabert"), pre.get("nov-bert")
    if ov and nov:
        fast = ov["loss"] < nov["loss"] and ov["step_below_2"] is not None
        v2 = "supported" if fast else ("not reached at this compute" if ov["step_below_2"] is None else "not supported")
        fig = (f"ov-dnabert loss {ov['first_loss']:.2f} -> {ov['loss']:.2f} (floor {FLOOR:.2f}; below 2 at step "
               f"{ov['step_below_2'] if ov['step_below_2'] is not None else 'never'}), nov-bert {nov['first_loss']:.2f}"
               f" -> {nov['loss']:.2f}")
        sil = ov.get("silhouette")
        if sil:
            fig += "; ov-dnabert embedding silhouette " + ", ".join(f"{k} {v:.2f}" for k, v in sil.items())
    else:
        v2, fig = "not measured", "an arm has not finished"
    out.append({"claim": "Pre-training with overlapping tokens converges very fast: the loss collapses and the "
                "token embeddings cluster by their central nucleotides.", "verdict": v2, "figures": fig})
    # 3. Intermediate layers end under-trained: attention concentrated on a few tokens, mostly in the middle.
    lay = {a: (pre.get(a) or {}).get("layers") for a in ("ov-dnabert", "ov-randommask")}
    if lay["ov-dnabert"]:
        top1 = lay["ov-dnabert"]["top1"]
        n = len(top1)
        middle = top1[1:-1] if n > 2 else top1
        edge = [top1[0], top1[-1]] if n > 2 else top1
        focused = float(np.mean(middle)) > float(np.mean(edge)) + 0.05
        v3 = "supported" if focused else "not supported"
        fig = "ov-dnabert top-1 attention share per layer " + ", ".join(f"{x:.2f}" for x in top1)
        if lay["ov-randommask"]:
            fig += "; ov-randommask " + ", ".join(f"{x:.2f}" for x in lay["ov-randommask"]["top1"])
        fig += f" (uniform attention: {1 / math.exp(lay['ov-dnabert']['uniform_entropy']):.3f})"
        if n <= 2:
            v3 = "not measurable" if n < 3 else v3
            fig += "; the model has no intermediate layers"
    else:
        v3, fig = "not measured", "the ov-dnabert arm has not finished"
    out.append({"claim": "The intermediate layers end under-trained: their attention focuses on a few tokens.",
                "verdict": v3, "figures": fig})
    # RandomMask's claim.
    v4, f4 = compare(ft.get("ov-randommask.ft-ov"), ft.get("ov-dnabert.ft-ov"))
    out.append({"claim": "RandomMask pre-training gives better fine-tuned models than DNABERT's masking.",
                "verdict": v4, "figures": f4})
    return out


def arm_curves(run: Path) -> dict[str, list[tuple[float, float]]] | None:
    """(tokens seen, loss) for the training log and the held-out evaluations of one pre-training arm."""
    rows = logged_steps(run)
    if not rows or not (run / "config.yaml").exists():
        return None
    per_step = tokens_per_step(load_yaml(run / "config.yaml"))
    return {"train": [(r["step"] * per_step, r["loss"]) for r in rows],
            "eval": [(r["step"] * per_step, r["eval_loss"]) for r in rows if "eval_loss" in r]}


def draw_curves(root: Path) -> Path | None:
    """curves.png: every finished (or running) arm's loss against tokens seen, floor and regime marked."""
    try:
        from randommask.analysis.figures import plot_arm_curves
    except ImportError:  # matplotlib is a dependency; a broken install should not cost the report
        return None
    arms = {arm: c for arm in ARMS if (c := arm_curves(root / "pretrain" / arm))}
    if not arms:
        return None
    return plot_arm_curves(arms, FLOOR, REGIME, UNIFORM, root / "curves.png")


def render_report(s: dict, p: dict, preset: str, figure: Path | None = None) -> str:
    lines = [f"# randommask study ({preset})", "",
             f"Pre-training per arm: `{p['model_preset']}` model, {p['steps']} steps x {p['batch_size']} windows of "
             f"{p['max_tokens']} tokens ({p['steps'] * p['batch_size'] * p['max_tokens'] / 1e6:.2f} M tokens), "
             f"peak learning rate {p['lr']:g}, dropout {p['dropout']:g}. "
             f"Fine-tuning: tasks {', '.join(p['tasks'])}, {p['seeds']} seeds, learning rate {p['ft_lr']:g}, dropout "
             f"{p['ft_dropout']:g}"
             + (f", at most {p['ft_max_steps']} steps" if p["ft_max_steps"] else "")
             + (f", at most {p['ft_max_train']} training examples (smoke run: not comparable to GUE)"
                if p["ft_max_train"] else "") + ".", "",
             "## Did the run reach the regime the paper describes?", ""]
    ov = s["pretrain"].get("ov-dnabert")
    if ov is None:
        lines.append("The ov-dnabert arm has not finished.")
    else:
        reached = ov["step_below_2"] is not None
        lines.append(f"The ov-dnabert arm's masked-token loss ended at {ov['loss']:.2f} nats, {ov['over_floor']:.2f} "
                     f"above the floor of about {FLOOR:.2f} (one hidden base per span); "
                     + (f"it fell below 2 at step {ov['step_below_2']}: the overlapping-k-mer shortcut was learned."
                        if reached else "it never fell below 2: the shortcut was not learned at this compute, so "
                        "the paper's effects cannot show here and no verdict below speaks for the paper's regime."))
    if figure is not None:
        lines += ["", f"![loss per arm against tokens seen]({figure.name})"]
    lines += ["", "| arm | steps | tokens | loss | eval loss | eval acc | below 2 at | central-dinucleotide "
              "silhouette |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm, m in s["pretrain"].items():
        if m is None:
            lines.append(f"| {arm} | not run | | | | | | |")
            continue
        sil = (m.get("silhouette") or {}).get("central dinucleotide")
        ev = f"{m['eval_loss']:.3f}" if m["eval_loss"] is not None else "-"
        ea = f"{m['eval_acc']:.3f}" if m["eval_acc"] is not None else "-"
        lines.append(f"| {arm} | {m['steps']} | {m.get('tokens', 0) / 1e6:.2f} M | {m['loss']:.3f} | {ev} | {ea} | "
                     f"{m['step_below_2'] if m['step_below_2'] is not None else 'never'} | "
                     f"{f'{sil:.3f}' if sil is not None else '-'} |")
    lines += ["", "## Fine-tuning (test MCC x 100, mean ± sd over seeds)", ""]
    task_names = sorted({t for m in s["finetune"].values() if m for t in m["tasks"]})
    lines.append("| model | fine-tuned with | " + " | ".join(task_names) + " | average |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in task_names) + " | --- |")
    for name, m in s["finetune"].items():
        arm, tag = name.split(".ft-")
        tok = "overlapping" if tag == "ov" else "non-overlapping"
        if m is None:
            lines.append(f"| {arm} | {tok} | " + " | ".join("" for _ in task_names) + " | not run |")
            continue
        cells = []
        for t in task_names:
            r = m["tasks"].get(t)
            cells.append("-" if r is None else f"{100 * r['mcc_mean']:.1f} ± {100 * (r['mcc_std'] or 0):.1f}"
                         + (" †" if r["fallback"] else ""))
        lines.append(f"| {arm} | {tok} | " + " | ".join(cells) + f" | {100 * m['mcc_mean']:.1f} ± "
                     f"{100 * m['mcc_std']:.1f}" + (" (unfinished: seeds every task has)" if m.get("partial") else "")
                     + " |")
    lines += ["", "† task without train.csv in this GUE copy: seeded fallback protocol, not comparable to published "
              "numbers.", "", "## The paper's observations, tested", "",
              "| claim | verdict | measured |", "| --- | --- | --- |"]
    for v in verdicts(s):
        lines.append(f"| {v['claim']} | **{v['verdict']}** | {v['figures']} |")
    lines += ["", f"Verdicts compare task-averaged test MCC over seeds with Welch's t-test (two-sided): a difference "
              f"with p >= {ALPHA:g} is inconclusive, not a finding either way.", ""]
    return "\n".join(lines)
