"""The GUE benchmark: ``randommask benchmark`` fine-tunes one model on every selected task and seed.

Each (task, seed) is one `randommask.finetune.finetune` run in ``<out>/runs/<task path>/seed-<s>/``,
finished when its ``results.json`` exists. A benchmark interrupted at any point resumes by running
only the (task, seed) pairs without one; a finished run made with other settings (another model,
learning rate, ...) is an error rather than being silently mixed into the tables.

After every run the tables are rewritten, each atomically (never left truncated):

* ``results.csv``: one row per task: group, protocol, fallback flag, seeds, and MCC, macro F1 and
  accuracy as mean and sample standard deviation over seeds (fractions, as `randommask.metrics`
  returns them; empty std for a single seed), plus the per-seed MCCs.
* ``results.json``: the same, plus every run's summary, the group averages (mean over the group's
  tasks of their seed means, as DNABERT-2's Table 4 averages its rows) and, with
  ``--compare-published``, the published group averages of `randommask.tasks.PUBLISHED` (MCC x 100).
* ``results.md``: the tables for people, metrics x 100 as the papers print them. Tasks trained on the
  fallback protocol (train.csv absent, see `randommask.tasks`) are marked with a dagger and a
  footnote, subsampled smoke runs with a double dagger; group averages over fewer tasks than the
  paper's groups hold, or over marked tasks, are not comparable with published numbers, and the table
  says so.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from randommask.config import from_dict, save_yaml, to_dict
from randommask.errors import RandomMaskError
from randommask.files import atomic_write_text
from randommask.finetune import (
    RESULTS,
    FinetuneConfig,
    FinetuneSettings,
    SplitCache,
    finetune,
    resolve_model,
    shift_positionals,
)
from randommask.tasks import GROUPS, PUBLISHED, find_tasks

__all__ = ["PAPER_GROUP_SIZES", "BenchmarkConfig", "aggregate", "benchmark", "render_csv", "render_markdown"]

#: Tasks per group in the full GUE (DNABERT-2, Table 4): a group average over fewer is not comparable.
PAPER_GROUP_SIZES: dict[str, int] = {"EMP": 10, "TF-H": 5, "TF-M": 5, "PD": 3, "CPD": 3, "Splice": 1, "Covid": 1}

FALLBACK_MARK = "\u2020"  # dagger
SMOKE_MARK = "\u2021"  # double dagger
METRICS = ("mcc", "f1", "accuracy")

# Config keys that may differ between a finished run and a resumed benchmark: they change no result.
_RESUMABLE = {"out_dir", "progress", "device", "save_model", "task", "eval_batch_size"}


@dataclass
class BenchmarkConfig(FinetuneSettings):
    """A model on a set of GUE tasks, over several seeds (fine-tuning settings as for ``finetune``)."""

    gue: str = ""  # the GUE root folder (EMP/, tf/, prom/, ...)
    tasks: list[str] = field(default_factory=list)  # selectors: group names, task paths, globs; empty = all
    seeds: int = 3  # seeds first_seed .. first_seed + seeds - 1
    first_seed: int = 0  # the first seed
    out_dir: str = "runs/benchmark"  # results.{csv,json,md} and one folder per run
    compare_published: bool = False  # put published DNABERT / NT / DNABERT-2 group averages beside ours
    keep_models: bool = False  # keep every run's best-dev checkpoint (a base model is ~350 MB a run)

    def validate(self) -> None:
        super().validate()
        if not self.gue:
            raise RandomMaskError("give the GUE root folder (GUE), e.g. data/GUE")
        if self.seeds < 1:
            raise RandomMaskError(f"config: seeds must be at least 1, got {self.seeds}")


def load_benchmark_config(data: dict) -> BenchmarkConfig:
    cfg = from_dict(BenchmarkConfig, shift_positionals(data, "model", "gue"))
    cfg.validate()
    return cfg


# ------------------------------------------------------------------------------------------ runs
def _settings(cfg: BenchmarkConfig) -> dict:
    """The fine-tuning settings shared by every run (model path made absolute: resume from anywhere)."""
    names = {f.name for f in fields(FinetuneSettings)}
    data = {k: v for k, v in to_dict(cfg).items() if k in names}
    if data["model"]:
        data["model"] = str(Path(data["model"]).resolve())
    return data


def _differences(saved: dict, current: dict) -> list[str]:
    # A key the saved config lacks (written before the setting existed) reads as the setting's default.
    defaults = {f.name: f.default for f in fields(FinetuneConfig)}
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if k not in _RESUMABLE and saved.get(k, defaults.get(k)) != current.get(k)]


def _read_finished(path: Path, fcfg: FinetuneConfig, source: dict) -> dict | None:
    """A finished run's results, checked against the settings it would be run with now."""
    try:
        done = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise RandomMaskError(f"{path}: unreadable run results ({e.__class__.__name__}); delete it to rerun") from None
    diffs = _differences(done.get("config") or {}, to_dict(fcfg))
    old = done.get("model") or {}
    if (old.get("checkpoint"), old.get("step")) != (source.get("checkpoint"), source.get("step")):
        diffs.append(f"model checkpoint ({old.get('checkpoint')} then, {source.get('checkpoint')} now)")
    if diffs:
        raise RandomMaskError(f"{path}: this finished run was made with other settings (differs in: "
                              f"{', '.join(diffs[:5])}); use another --out for these settings")
    return done


def benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Fine-tune on every selected task x seed (skipping finished runs), write and return the tables."""
    cfg.validate()
    t0 = time.perf_counter()
    root = Path(cfg.gue)
    folders = find_tasks(root, cfg.tasks or None)
    spec = resolve_model(cfg)
    out = Path(cfg.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RandomMaskError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    save_yaml(cfg, out / "config.yaml")
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
    settings = _settings(cfg)
    plan = []
    for folder in folders:
        rel = folder.relative_to(root).as_posix() if folder != root else folder.resolve().name
        for seed in seeds:
            fcfg = from_dict(FinetuneConfig, {**settings, "task": str(folder.resolve()),
                                              "out_dir": str(out / "runs" / rel / f"seed-{seed}"), "seed": seed,
                                              "save_model": cfg.keep_models})
            plan.append((rel, fcfg))
    records: list[dict] = []
    todo: list[tuple[str, FinetuneConfig]] = []
    for rel, fcfg in plan:
        done = _read_finished(Path(fcfg.out_dir) / RESULTS, fcfg, spec.source)
        if done is None:
            todo.append((rel, fcfg))
        else:
            records.append(done)
    print(f"randommask benchmark: {len(folders)} tasks x {len(seeds)} seeds = {len(plan)} runs; {len(records)} "
          f"already finished, {len(todo)} to run; output {out}", flush=True)
    cache = SplitCache()  # each task parsed and tokenized once for all its seeds
    for i, (rel, fcfg) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {rel}, seed {fcfg.seed}", flush=True)
        records.append(finetune(fcfg, spec, cache))
        write_tables(out, aggregate(records), cfg, spec.source)  # partial tables survive an interruption
    summary = aggregate(records)
    write_tables(out, summary, cfg, spec.source)
    summary["wall_time_s"] = time.perf_counter() - t0
    print(render_markdown(summary, cfg.compare_published, spec.source), flush=True)
    return summary


# ------------------------------------------------------------------------------------------ tables
def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; None for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else None


def aggregate(records: list[dict]) -> dict[str, Any]:
    """Per-task mean/std over seeds and per-group averages from finetune results (pure function)."""
    by_task: dict[str, list[dict]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)
    order = {g: i for i, g in enumerate((*GROUPS, "other"))}
    tasks = []
    for name in sorted(by_task, key=lambda n: (order.get(by_task[n][0]["group"], len(order)), n)):
        runs = sorted(by_task[name], key=lambda r: r["seed"])
        row: dict[str, Any] = {"task": name, "group": runs[0]["group"],
                               "fallback": any(r["fallback"] for r in runs),
                               "subsampled": any(r.get("subsampled") for r in runs),
                               "protocol": runs[0]["protocol"], "seeds": [r["seed"] for r in runs], "n": len(runs)}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std([r["test"][m] for r in runs])
        row["mcc_per_seed"] = [r["test"]["mcc"] for r in runs]
        row["dev_mcc_mean"] = _mean_std([r["best"]["dev"]["mcc"] for r in runs])[0]
        row["wall_time_s"] = float(sum(r.get("wall_time_s", 0.0) for r in runs))
        tasks.append(row)
    groups = []
    for g in (*GROUPS, "other"):
        rows = [t for t in tasks if t["group"] == g]
        if not rows:
            continue
        groups.append({"group": g, "tasks": len(rows), "paper_tasks": PAPER_GROUP_SIZES.get(g),
                       "fallback_tasks": sum(t["fallback"] for t in rows),
                       "subsampled": any(t["subsampled"] for t in rows),
                       **{f"{m}_mean": float(np.mean([t[f"{m}_mean"] for t in rows])) for m in METRICS}})
    runs = [{"task": r["task"], "seed": r["seed"], "fallback": r["fallback"], "subsampled": r.get("subsampled"),
             "best_step": r["best"]["step"], "dev": r["best"]["dev"], "test": r["test"],
             "steps": r["hparams"]["total_steps"], "wall_time_s": r.get("wall_time_s")} for r in records]
    return {"tasks": tasks, "groups": groups, "runs": sorted(runs, key=lambda r: (r["task"], r["seed"]))}


CSV_COLUMNS = ("task", "group", "protocol", "fallback", "subsampled", "n_seeds", "seeds", "mcc_mean", "mcc_std",
               "f1_mean", "f1_std", "accuracy_mean", "accuracy_std", "mcc_per_seed", "wall_time_s")


def render_csv(summary: dict) -> str:
    """results.csv: one row per task; metrics as fractions; protocol is "standard" or "fallback"."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for t in summary["tasks"]:
        def num(x: float | None) -> str:
            return "" if x is None else f"{x:.6f}"

        w.writerow([t["task"], t["group"], "fallback" if t["fallback"] else "standard", int(t["fallback"]),
                    int(t["subsampled"]), t["n"], ";".join(map(str, t["seeds"])),
                    *(num(t[f"{m}_{s}"]) for m in METRICS for s in ("mean", "std")),
                    ";".join(f"{x:.6f}" for x in t["mcc_per_seed"]), f"{t['wall_time_s']:.1f}"])
    return buf.getvalue()


def _pm(mean: float, std: float | None) -> str:
    return f"{100 * mean:.2f}" + (f" \u00b1 {100 * std:.2f}" if std is not None and not math.isnan(std) else "")


def _describe_model(source: dict) -> str:
    if source.get("run") is None:
        return f"from scratch ({source.get('preset')} preset, {source.get('tokenizer')} tokenizer, no pre-training)"
    what = "randomly initialised with the architecture of" if source.get("from_scratch") else "fine-tuned from"
    masking = f", pre-trained with {source['masking']} masking" if source.get("masking") else ""
    return f"{what} `{source['run']}` ({source.get('checkpoint')}, step {source.get('step')}{masking})"


def render_markdown(summary: dict, compare_published: bool, source: dict) -> str:
    """results.md: per-task and per-group tables, metrics x 100, marks and footnotes."""
    tasks, groups = summary["tasks"], summary["groups"]
    lines = ["# GUE benchmark", "", f"Model: {_describe_model(source)}.", "",
             "Test-set scores of the checkpoint with the best dev MCC; MCC, macro F1 and accuracy x 100, mean "
             "\u00b1 sample standard deviation over seeds.", "",
             "| task | group | protocol | seeds | MCC | F1 | accuracy |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    any_fallback = any_smoke = False
    for t in tasks:
        mark = (FALLBACK_MARK if t["fallback"] else "") + (SMOKE_MARK if t["subsampled"] else "")
        any_fallback |= t["fallback"]
        any_smoke |= t["subsampled"]
        lines.append(f"| {t['task']}{mark} | {t['group']} | {'fallback' if t['fallback'] else 'standard'} | {t['n']} | "
                     + " | ".join(_pm(t[f"{m}_mean"], t[f"{m}_std"]) for m in METRICS) + " |")
    models = list(PUBLISHED) if compare_published else []
    lines += ["", "## Group averages (MCC x 100, mean of the group's task means)", "",
              "| group | tasks (of the paper's) | ours |" + "".join(f" {m} |" for m in models),
              "| --- | --- | ---: |" + " ---: |" * len(models)]
    partial = False
    for g in groups:
        mark = (FALLBACK_MARK if g["fallback_tasks"] else "") + (SMOKE_MARK if g["subsampled"] else "")
        paper = g["paper_tasks"]
        partial |= paper is not None and g["tasks"] < paper
        count = f"{g['tasks']} of {paper}" if paper is not None else f"{g['tasks']}"
        pub = "".join(f" {PUBLISHED[m][g['group']]:.2f} |" if g["group"] in PUBLISHED[m] else " - |" for m in models)
        lines.append(f"| {g['group']}{mark} | {count} | {100 * g['mcc_mean']:.2f} |{pub}")
    notes = []
    if any_fallback:
        notes.append(f"{FALLBACK_MARK} Fallback protocol: this copy of the task has no train.csv, so the model was "
                     "trained on dev.csv minus a seeded, class-stratified holdout (used for model selection) and "
                     "scored on test.csv. Not comparable to published full-train numbers.")
    if any_smoke:
        notes.append(f"{SMOKE_MARK} Subsampled splits (--max-train-examples / --max-eval-examples: a smoke run or a "
                     "low-data check): not comparable to GUE's published numbers.")
    if partial:
        notes.append("A group average over fewer tasks than the paper's group is not comparable to the published "
                     "average either.")
    if models:
        notes.append("Published numbers: DNABERT-2 paper (Zhou et al., ICLR 2024), Table 4, group averages of MCC x "
                     "100; RandomMask: its reported EMP average.")
    for n in notes:
        lines += ["", n]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, summary: dict, cfg: BenchmarkConfig, source: dict) -> None:
    """results.csv, results.json and results.md, each written atomically."""
    data = {**summary, "model": source, "seeds": list(range(cfg.first_seed, cfg.first_seed + cfg.seeds)),
            "config": to_dict(cfg), "metrics_scale": "fractions (x 100 in results.md)"}
    if cfg.compare_published:
        data["published_mcc_x100"] = PUBLISHED
    atomic_write_text(out / "results.csv", render_csv(summary))
    atomic_write_text(out / "results.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(out / "results.md", render_markdown(summary, cfg.compare_published, source))
