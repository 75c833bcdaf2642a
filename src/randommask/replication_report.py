"""The replication study's report: whatever has finished, merged; unfinished units marked, never a failure.

Reads only files (the units' ``metrics.jsonl`` and ``results.json``), so it can run beside the units,
from any commit. Statistics:

* per task, RandomMask against DNABERT's masking: Welch's t-test over the fine-tuning runs (every
  fine-tuning seed of every pre-training seed);
* across tasks: the per-task mean differences, paired by task: Wilcoxon's signed-rank test, and their
  mean with a 95% t-interval (the effect size in MCC points);
* with the pre-training runs as the unit (two a side for the main arms): per run, the mean over the tasks
  every run has of its fine-tuning seeds' mean; the arms' difference with Student's t interval over the runs.
  The task-paired interval treats each arm's pre-trained models as fixed, so it says nothing about a second
  pre-training run; this one does (with few degrees of freedom), and the verdict needs both;
* the 95% interval of a mean over seeds is Student's t interval.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from randommask.bpe import REPORT_FILE
from randommask.files import atomic_write_text

MAIN_ARMS = ("ov-dnabert", "ov-randommask")  # the comparison the study is for (randommask.replication)

ALPHA = 0.05
REGIME = 2.0
CHANCE = 0.05  # a fine-tune below this test MCC never left the constant prediction
EMP_SUFFIX = ".emp"  # the EMP continuation of a pre-training unit (randommask.replication.emp_unit_name)
DEV_CURVE_TASKS = ("prom/prom_core_all", "tf/0", "mouse/0")  # one task per group


# ------------------------------------------------------------------------------------------ reading
def bpe_folder(root: Path) -> Path:
    """Where the study keeps its BPE vocabulary (one for every BPE unit)."""
    return root / "tokenizer"


def bases_per_token(root: Path) -> float | None:
    """The study BPE vocabulary's held-out compression (its ``tokenizer-report.json``), once it is learnt."""
    report = bpe_folder(root) / REPORT_FILE
    if not report.is_file():
        return None
    return float(json.loads(report.read_text())["heldout"]["bases_per_token"])


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a crash ends the readable part
    return out


def pretrain_summary(run: Path) -> dict[str, Any] | None:
    """Loss curve (tokens, loss), first step below 2, last step, for one pre-training unit."""
    rows = [r for r in _rows(run / "metrics.jsonl") if "loss" in r and "skipped" not in r]
    if not rows:
        return None
    from randommask.config import load_yaml

    cfg = load_yaml(run / "config.yaml") if (run / "config.yaml").exists() else {}
    per_step = cfg.get("batch_size", 0) * cfg.get("grad_accum", 1) * cfg.get("data", {}).get("max_tokens", 0)
    below = next((r["step"] for r in rows if r["loss"] < REGIME), None)
    # The held-out windows have the short length only; the training loss also averages the long-window steps,
    # whose far positions are learnt later, so it lags the held-out loss (both are reported).
    below_eval = next((r["step"] for r in rows if r.get("eval_loss", math.inf) < REGIME), None)
    below_short = next((r["step"] for r in rows if r.get("loss_short", math.inf) < REGIME), None)
    return {"steps_done": rows[-1]["step"], "planned": cfg.get("steps"), "loss": rows[-1]["loss"],
            "step_below_2": below, "eval_below_2": below_eval, "short_below_2": below_short,
            "eval_loss": next((r["eval_loss"] for r in reversed(rows) if "eval_loss" in r), None),
            "tokens_per_step": per_step,
            "curve": [(r["step"] * per_step, r["loss"]) for r in rows],
            "eval": [(r["step"] * per_step, r["eval_loss"]) for r in rows if "eval_loss" in r]}


def tail_note(p: dict[str, Any], step: int) -> str:
    """Why the last training loss of a unit in its long-window tail is high: it is the loss of those windows."""
    if not p.get("tail_max_tokens") or step <= p["steps"] * (1 - p.get("long_fraction", 0.0)):
        return ""
    return (f" (of its {p['tail_max_tokens']}-token tail windows, whose positions past {p['long_max_tokens']} are "
            "barely trained: docs/regime.md)")


def finetune_records(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """Every finished (task, seed) run of one fine-tuning unit."""
    out = []
    for path in sorted(Path(unit["folder"]).glob("runs/**/seed-*/results.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # being written: counted as unfinished
        out.append({"arm": unit["arm"], "pretrain_seed": unit["pretrain_seed"], "step": unit["step"],
                    "emp": bool(unit.get("emp")), "long": bool(unit.get("long")), "task": r["task"],
                    "seed": r["seed"], "mcc": r["test"]["mcc"],
                    "best_step": r["best"]["step"], "steps_run": r.get("steps_run"),
                    "plateau": r.get("stopped_at") is not None,
                    "wall_s": r.get("wall_time_s", 0.0), "metrics": path.parent / "metrics.jsonl"})
    return out


# ------------------------------------------------------------------------------------------ statistics
def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student t interval (nan with fewer than 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def _p(pvalue: float) -> str:
    return "-" if math.isnan(pvalue) else f"{pvalue:.2g}"


def welch(a: list[float], b: list[float]) -> float:
    from scipy import stats

    if min(len(a), len(b)) < 2:
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired_tasks(by_task_a: dict[str, list[float]], by_task_b: dict[str, list[float]]) -> dict[str, Any] | None:
    """Across tasks, paired by task: Wilcoxon signed-rank p and the mean difference with its 95% interval."""
    from scipy import stats

    tasks = sorted(t for t in by_task_a if t in by_task_b and by_task_a[t] and by_task_b[t])
    if len(tasks) < 2:
        return None
    diffs = [float(np.mean(by_task_a[t]) - np.mean(by_task_b[t])) for t in tasks]
    mean, half = t_interval(diffs)
    p = float(stats.wilcoxon(diffs).pvalue) if any(d != 0 for d in diffs) else 1.0
    return {"tasks": len(tasks), "mean_diff": mean, "ci": half, "wilcoxon_p": p,
            "wins": sum(d > 0 for d in diffs), "diffs": dict(zip(tasks, diffs, strict=True))}


def run_mean(by_task: dict[str, list[float]], tasks: list[str]) -> float:
    """One pre-training run's mean MCC over ``tasks``, each task first averaged over its fine-tuning seeds."""
    return float(np.mean([np.mean(by_task[t]) for t in tasks]))


def run_means(recs: list[dict], step: int) -> dict[tuple[str, int], dict[str, list[float]]]:
    """The main arms' fine-tunes at one point, by pre-training run (arm, seed), then task: their test MCCs."""
    runs = sorted({(r["arm"], r["pretrain_seed"]) for r in recs if r["arm"] in MAIN_ARMS and r["step"] == step})
    return {(arm, sd): _by(recs, arm=arm, step=step, pretrain_seed=sd) for arm, sd in runs}


def floor_compared(p: dict[str, Any], recs: list[dict], emp: list[dict]) -> list[tuple[str, str, dict[str, Any]]]:
    """Does pre-training help at all here? Each main pre-training run at the end of pre-training (short tasks)
    and its EMP fine-tunes, against the from-scratch floor, paired by task: (group, run, paired_tasks) for each
    run with two or more tasks in common with the floor."""
    out = []
    for group, pool in (("short tasks", recs), ("EMP", emp)):
        floor = _by(pool, arm="scratch")
        for arm, sd in sorted({(r["arm"], r["pretrain_seed"]) for r in pool
                               if r["arm"] in MAIN_ARMS and r["step"] == p["steps"]}):
            pair = paired_tasks(_by(pool, arm=arm, step=p["steps"], pretrain_seed=sd), floor) if floor else None
            if pair is not None:
                out.append((group, f"{arm}.s{sd}", pair))
    return out


def floor_section(floor: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The table of `floor_compared`: each pre-training run minus from scratch, paired by task."""
    out = ["## Pre-training against none: the from-scratch floor", "",
           "Each pre-training run at the end of pre-training (EMP: its continuation) minus the same model fine-tuned "
           "from random weights, paired by task over the tasks both have (each task: the mean over its fine-tuning "
           "seeds); MCC x 100.", ""]
    if not floor:
        return [*out, "No from-scratch fine-tune has finished yet.", ""]
    out += ["| tasks | run | tasks in common | pre-trained higher on | pre-trained minus scratch | 95% interval | "
            "Wilcoxon p |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for group, run, pair in floor:
        d, half = 100 * pair["mean_diff"], 100 * pair["ci"]
        out.append(f"| {group} | {run} | {pair['tasks']} | {pair['wins']} | {d:+.2f} | {d - half:+.2f} to "
                   f"{d + half:+.2f} | {_p(pair['wilcoxon_p'])} |")
    return [*out, "", "Not adjusted for multiplicity (one test per run and group); with 3 EMP tasks the signed-rank "
            "test cannot go below 0.25.", ""]


def runs_compared(runs: dict[tuple[str, int], dict[str, list[float]]]) -> dict[str, Any] | None:
    """RandomMask against DNABERT's masking with each pre-training run as one observation.

    Per run, the mean over the tasks that every run has (each task: the mean over its fine-tuning seeds); then
    the difference of the arms' means with a 95% Student t interval on ``runs a + runs b - 2`` degrees of
    freedom, and the two-sided p. Pre-training runs of one masking differ (seed, data order), and the difference
    between maskings must be told from that: this interval holds it, the task-paired one does not. None with
    fewer than two runs on a side (no run-to-run variance to weigh against)."""
    from scipy import stats

    if not runs:
        return None
    tasks = sorted(set.intersection(*(set(by_task) for by_task in runs.values())))
    means = {k: run_mean(by_task, tasks) for k, by_task in runs.items()} if tasks else {}
    a = [m for (arm, _), m in means.items() if arm == "ov-randommask"]
    b = [m for (arm, _), m in means.items() if arm == "ov-dnabert"]
    if min(len(a), len(b)) < 2:
        return None
    df = len(a) + len(b) - 2
    pooled = ((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / df
    se = math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
    return {"tasks": len(tasks), "runs": means, "mean_diff": float(np.mean(a) - np.mean(b)),
            "ci": float(stats.t.ppf(0.975, df) * se), "df": df,
            "p": float(stats.ttest_ind(a, b, equal_var=True).pvalue) if se > 0 else math.nan}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (nan stays nan)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    out = list(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        out[i] = running
    return out


# ------------------------------------------------------------------------------------------ the report
def points_of(plan: list[dict[str, Any]], arm: str) -> list[int]:
    """The pre-training steps an arm is fine-tuned from (short tasks), in order."""
    return sorted({u["step"] for u in plan if u["arm"] == arm and not u.get("emp")})


def collect(root: Path, pretrain_units: dict[str, Path], units: list[dict[str, Any]]) -> dict[str, Any]:
    pre = {name: pretrain_summary(run) for name, run in pretrain_units.items()}
    records, status = [], []
    for u in units:
        recs = finetune_records(u)
        records += recs
        expected = len(u["tasks"]) * u["seeds"]
        status.append({"unit": str(Path(u["folder"]).relative_to(root)), "done": len(recs), "expected": expected})
    return {"pretrain": pre, "records": records, "status": status}


def _by(records: list[dict], **match: Any) -> dict[str, list[float]]:
    """MCCs by task for the records matching every given field."""
    out: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if all(r[k] == v for k, v in match.items()):
            out[r["task"]].append(r["mcc"])
    return dict(out)


def _mean_sd(v: list[float]) -> str:
    """A table cell: mean ± sample sd of MCCs x 100 with their count, or '-' for none."""
    if not v:
        return "-"
    return f"{100 * np.mean(v):.1f} ± {100 * (np.std(v, ddof=1) if len(v) > 1 else 0.0):.1f} ({len(v)})"


def task_average_samples(records: list[dict], tasks: list[str], **match: Any) -> list[float]:
    """Per (pre-training seed, fine-tuning seed) the mean MCC over tasks, where every task has that run."""
    cells: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in records:
        if all(r[k] == v for k, v in match.items()):
            cells[(r["pretrain_seed"], r["seed"])][r["task"]] = r["mcc"]
    return [float(np.mean([c[t] for t in tasks])) for c in cells.values() if all(t in c for t in tasks)]


def long_steps_note(p: dict[str, Any]) -> str:
    """The preset's longer-window steps in words (each holds as many tokens as a short step)."""
    parts = []
    if p.get("long_every"):
        parts.append(f"every {p['long_every']}th step" + (f" from {p['long_from']:.0%} of the steps on"
                                                          if p.get("long_from") else "")
                     + f" at {p['long_max_tokens']}-token windows")
    if p.get("long_fraction"):
        parts.append(f"the last {p['long_fraction']:.0%} of steps at "
                     f"{p.get('tail_max_tokens') or p['long_max_tokens']}-token windows")
    return (" and ".join(parts) + ", same tokens per step") if parts else "no longer windows"


def equal_compute_section(p: dict[str, Any], recs: list[dict], tasks: list[str], plan: list[dict],
                          bases_per_token: float | None) -> list[str]:
    """BPE beside the k-mer arms under the two readings of equal compute: same tokens, same bases read."""
    steps, tokens_per_step = p["steps"], p["batch_size"] * p["max_tokens"]
    L = ["## BPE (DNABERT-2's tokenizer) beside overlapping 6-mers: what equal compute means", "",
         "All arms pre-train with the same tokens per step and the same steps: the same model cost (FLOPs, time). "
         "An overlapping 6-mer adds one base to what the model reads, a BPE token "
         + (f"{bases_per_token:.2f} bases (the study vocabulary on held-out windows)" if bases_per_token else
            "several (its compression is measured when the vocabulary is learnt)")
         + ", so at equal tokens BPE has read more DNA. The other reading, equal bases read, is the BPE "
         "checkpoint whose bases are nearest the k-mer arms' at their end.", "",
         "| arm | step | tokens | bases read (approx.) | pairs | mean MCC over tasks |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
    # ov-bert is the k-mer arm with BPE's masking: the tokenizer is all that differs between the two.
    rows = [(a, steps, 1.0) for a in ("ov-bert", "ov-dnabert", "ov-randommask")]
    rows += [("bpe-bert", st, bases_per_token or float("nan")) for st in points_of(plan, "bpe-bert")]
    for arm, step, bpt in rows:
        samples = task_average_samples(recs, tasks, arm=arm, step=step)
        tokens = step * tokens_per_step
        reading = "" if arm != "bpe-bert" else (" (equal tokens)" if step == steps else " (equal bases)")
        L.append(f"| {arm}{reading} | {step} | {tokens / 1e6:.1f} M | "
                 + ("-" if math.isnan(bpt) else f"{tokens * bpt / 1e6:.0f} M") + f" | {len(samples)} | "
                 f"{_fmt(*t_interval(samples))} |")
    return L + [""]


def _fmt(mean: float, half: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f}" + ("" if math.isnan(half) else f" ± {100 * half:.1f}")


def write_report(p: dict[str, Any], root: Path, commit: str, arms: dict[str, Any], pretrain_units: dict[str, Path],
                 plan: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``report.md`` (+ figures, ``summary.json``) into the study folder; return the summary.

    ``arms`` (name -> an object with ``name`` and ``what``), ``pretrain_units`` (unit name -> run folder) and
    ``plan`` (the fine-tuning units) come from `randommask.replication`, which calls this."""
    def points(_: dict, arm: str) -> list[int]:
        return points_of(plan, arm)

    s = collect(root, pretrain_units, plan)
    recs = [r for r in s["records"] if not r["emp"] and not r["long"]]
    longer = [r for r in s["records"] if r["long"]]
    emp = [r for r in s["records"] if r["emp"]]
    tasks = list(p["tasks"])
    tokens_per_step = p["batch_size"] * p["max_tokens"]
    L: list[str] = [
        f"# The replication study (`{p.get('name', 'cpu-replication')}`)", "",
        f"Code: commit `{commit}`. Pre-training per unit: `{p['model_preset']}` model, {p['steps']} steps x "
        f"{p['batch_size']} windows of {p['max_tokens']} tokens (" + long_steps_note(p) + "), "
        f"{p['steps'] * tokens_per_step / 1e6:.1f} M tokens, peak learning rate {p['lr']:g} ("
        + (f"linear decay to {p['min_lr_ratio']:g} of it at {p['decay_fraction']:.0%} of the steps, then constant"
           if p.get("decay_fraction", 1.0) < 1.0 else "linear decay to zero") + "), dropout "
        f"{p['dropout']:g}. Fine-tuning: learning rate {p['ft_lr']:g}, dropout {p['ft_dropout']:g}, dev MCC every "
        f"{p['ft_eval_steps']} steps on {p['ft_select_dev']} seeded dev rows, stopped after {p['ft_patience']} "
        f"evaluations without a better one"
        + (f" (not before step {p['ft_min_steps']})" if p.get("ft_min_steps") else "")
        + f" or at {p['ft_max_steps']} steps"
        + (f" or {p['ft_epochs']:g} epochs" if p.get("ft_epochs") else " or the task group's DNABERT-2 epochs")
        + "; the best-dev model scored once on all of dev and test.", ""]
    # --- regime
    L += ["## Regime: did DNABERT's masking learn the shortcut before half of pre-training?", ""]
    for name, m in s["pretrain"].items():
        if not name.startswith("ov-dnabert") or name.endswith(EMP_SUFFIX):
            continue
        if m is None:
            L.append(f"- {name}: not started.")
            continue
        half = p["steps"] // 2
        below = m["step_below_2"]
        verdict = ("yes" if below is not None and below <= half
                   else "no" if m["steps_done"] >= half else "not yet known")
        ev = m["eval_below_2"]
        L.append(f"- {name}: training loss below 2 at step {below if below is not None else 'never (so far)'}, "
                 f"held-out loss at step {ev if ev is not None else 'never (so far)'}"
                 + (f", training loss of the regular (short-window) steps at step {m['short_below_2']}"
                    if m.get("short_below_2") is not None else "") + f" (half: {half}); "
                 f"{m['steps_done']} of {m['planned']} steps done, training loss {m['loss']:.3f}"
                 + tail_note(p, m["steps_done"])
                 + (f", held-out {m['eval_loss']:.3f}" if m["eval_loss"] is not None else "") + f" -> **{verdict}**.")
    # --- central figure
    L.append("")
    fig = draw_central(p, s, recs, tasks, arms, plan, root)
    if fig:
        L += [f"![mean test MCC over tasks against pre-training tokens]({fig.name})", ""]
    L += ["## Mean test MCC over the tasks against pre-training compute", "",
          "Mean over the (pre-training seed, fine-tuning seed) pairs of the task-average MCC x 100, ± the 95% t "
          "interval; only pairs with every task finished count.", "",
          "| arm | step | tokens | pairs | mean MCC over tasks |", "| --- | ---: | ---: | ---: | ---: |"]
    curve: dict[str, list[tuple[int, float, float, int]]] = {}
    for arm in arms.values():
        for step in points(p, arm.name):
            samples = task_average_samples(recs, tasks, arm=arm.name, step=step)
            mean, half = t_interval(samples)
            curve.setdefault(arm.name, []).append((step, mean, half, len(samples)))
            L.append(f"| {arm.name} | {step} | {step * tokens_per_step / 1e6:.1f} M | {len(samples)} | "
                     f"{_fmt(mean, half)} |")
    sc = task_average_samples(recs, tasks, arm="scratch")
    L.append(f"| from scratch | 0 | 0 | {len(sc)} | {_fmt(*t_interval(sc))} |")
    # --- table task x arm at the end
    L += ["", "## Test MCC per task at the end of pre-training (mean ± sd over all seeds, n runs)", ""]
    cols = [(a.name, p["steps"]) for a in arms.values()] + [("scratch", 0)]
    L.append("| task | " + " | ".join(a for a, _ in cols) + " |")
    L.append("| --- |" + " ---: |" * len(cols))
    for t in tasks:
        cells = []
        for a, step in cols:
            cells.append(_mean_sd(_by(recs, arm=a, step=step).get(t, [])))
        L.append(f"| {t} | " + " | ".join(cells) + " |")
    # --- the comparison
    L += ["", "## RandomMask against DNABERT's masking", ""]
    comparisons = 0
    compared: dict[int, dict[str, Any] | None] = {}
    by_runs: dict[int, dict[str, Any] | None] = {}
    courses: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
    for step in points(p, "ov-dnabert"):
        a, b = _by(recs, arm="ov-randommask", step=step), _by(recs, arm="ov-dnabert", step=step)
        pair = compared[step] = paired_tasks(a, b)
        if pair is not None:
            pair["pretrain_seeds"] = sorted(set.intersection(*({r["pretrain_seed"] for r in recs
                                                                 if r["step"] == step and r["arm"] == arm}
                                                                for arm in MAIN_ARMS)))  # seeds both arms have
            main = [u for u in plan if u["arm"] in MAIN_ARMS and u["step"] == step and not u.get("emp")
                    and not u.get("long")]
            pair["fine_tunes"] = (sum(r["arm"] in MAIN_ARMS and r["step"] == step for r in recs),
                                  sum(len(u["tasks"]) * u["seeds"] for u in main))
        L.append(f"### Step {step} ({step * tokens_per_step / 1e6:.1f} M tokens)")
        L.append("")
        if pair is None:
            L += ["Not enough finished tasks on both sides yet.", ""]
            continue
        per_task = sorted(pair["diffs"])
        ps = [welch(a[t], b[t]) for t in per_task]
        adj = holm(ps)
        comparisons += len(ps) + 1
        L += ["| task | RandomMask | DNABERT masking | difference | Welch p | Holm-adjusted |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for t, pv, pa in zip(per_task, ps, adj, strict=True):
            L.append(f"| {t} | {100 * np.mean(a[t]):.1f} ({len(a[t])}) | {100 * np.mean(b[t]):.1f} ({len(b[t])}) | "
                     f"{100 * pair['diffs'][t]:+.1f} | {_p(pv)} | {_p(pa)} |")
        if any(math.isnan(pv) for pv in ps):
            L += ["", "-: no Welch test, fewer than two fine-tuning runs on a side."]
        L += ["", f"Across {pair['tasks']} tasks, paired by task: RandomMask higher on {pair['wins']}; mean difference "
              f"**{100 * pair['mean_diff']:+.2f} MCC** (95% interval {100 * (pair['mean_diff'] - pair['ci']):+.2f} to "
              f"{100 * (pair['mean_diff'] + pair['ci']):+.2f}); Wilcoxon signed-rank p = {pair['wilcoxon_p']:.3g}.", ""]
        by_run = run_means(recs, step)
        for run, by_task in by_run.items():
            if all(t in by_task for t in tasks):
                courses[run].append((step, run_mean(by_task, tasks)))
        by_runs[step] = runs_compared(by_run)
        comparisons += by_runs[step] is not None
        L += pretrain_runs_lines(by_run, by_runs[step], tasks if step == p["steps"] else None)
    L += [f"Comparisons made in this section: {comparisons} (a Welch test per task, one signed-rank test per "
          "step, and one t-test over the pre-training runs per step where each arm has two or more); per-task p-values "
          "are Holm-adjusted within a step, the across-task and across-run tests are not adjusted.", ""]
    # --- verdict
    floor = floor_compared(p, recs, emp)
    L += floor_section(floor)
    L += ["## Verdict", "", *verdict_lines(p, compared, courses, by_runs, floor), ""]
    # --- ablations
    L += ablation_section(p, recs, arms, tasks)
    # --- BPE
    if "bpe-bert" in arms:
        L += ["", *equal_compute_section(p, recs, tasks, plan, bases_per_token(root))]
    # --- EMP
    if p.get("emp_tasks"):
        L += ["", "## The paper's headline group: epigenetic marks (EMP), fallback protocol", "",
              "**Not comparable with published numbers** (the paper's 68.16, DNABERT's 49.10): this GUE copy has no "
              "EMP train split, so these models train on dev minus a seeded 10% held out for selection, and the "
              "model is 1M parameters pre-trained on one human chromosome. Compare them only with each other.", "",
              *emp_continuation_note(p, s["pretrain"]),
              "| task | " + " | ".join(f"{a}.s{s}" for a in MAIN_ARMS for s in p["main_seeds"]) + " | scratch |",
              "| --- |" + " ---: |" * (len(MAIN_ARMS) * len(p["main_seeds"]) + 1)]
        columns = [{"arm": a, "pretrain_seed": sd} for a in MAIN_ARMS for sd in p["main_seeds"]] + [{"arm": "scratch"}]
        by_column = [_by(emp, **c) for c in columns]
        for t in p["emp_tasks"]:
            L.append(f"| {t} | " + " | ".join(_mean_sd(b.get(t, [])) for b in by_column) + " |")
        # The group's mean per column, over the fine-tuning seeds that have every EMP task (GUE's group average).
        means = [task_average_samples(emp, p["emp_tasks"], **c) for c in columns]
        L += [f"| mean over the {len(p['emp_tasks'])} tasks | " + " | ".join(_mean_sd(m) for m in means) + " |", "",
              "Test MCC x 100, mean ± sd over fine-tuning seeds (n); the last row averages the tasks per fine-tuning "
              "seed first."]
    # --- dev curves, and the longer runs
    dev_fig = draw_dev_curves(recs, root)
    ended = plateau_lines([r for r in s["records"] if not r["long"]])
    if dev_fig or longer or ended:
        L += ["", "## Fine-tuning until dev MCC plateaus", "", *ended]
    if dev_fig:
        L += ["", f"![dev MCC during fine-tuning, one task per group]({dev_fig.name})"]
    if longer:
        L += ["", *longer_run_check(p, recs, longer)]
    # --- status
    L += ["", "## Units", "", "| unit | finished runs |", "| --- | ---: |"]
    for name, m in s["pretrain"].items():
        L.append(f"| pretrain/{name} | " + ("not started" if m is None else
                 f"step {m['steps_done']} of {m['planned']}" + ("" if m["steps_done"] >= (m["planned"] or 0)
                                                                else " (unfinished)")) + " |")
    for st in s["status"]:
        mark = "" if st["done"] == st["expected"] else " (unfinished)"
        L.append(f"| {st['unit']} | {st['done']} of {st['expected']}{mark} |")
    ft_wall = sum(r["wall_s"] for r in s["records"])
    L += ["", f"Fine-tuning wall time so far: {ft_wall / 3600:.2f} core-hours over {len(s['records'])} runs.", ""]
    report = "\n".join(L)
    summary = {"commit": commit, "curve": curve, "status": s["status"],
               "pretrain": {k: (None if v is None else {x: v[x] for x in ("steps_done", "planned", "loss",
                                                                            "step_below_2")})
                            for k, v in s["pretrain"].items()},
               "records": [{k: v for k, v in r.items() if k != "metrics"} for r in s["records"]]}
    atomic_write_text(root / "report.md", report)
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=1, default=str))
    print(report, flush=True)
    return summary


def _diff_cell(pair: dict[str, Any] | None) -> str:
    """A paired-by-task difference as a table cell: MCC x 100, its 95% interval, the signed-rank p and the
    number of tasks it is over; '-' where fewer than two tasks are in common."""
    if pair is None:
        return "-"
    d, half = 100 * pair["mean_diff"], 100 * pair["ci"]
    return f"{d:+.2f} ({d - half:+.2f} to {d + half:+.2f}; p = {pair['wilcoxon_p']:.2g}; {pair['tasks']} tasks)"


def ablation_section(p: dict[str, Any], recs: list[dict], arms: dict[str, Any], tasks: list[str]) -> list[str]:
    """Which part of RandomMask carries the effect: each arm besides the main two, at the end of pre-training,
    minus ``ov-randommask`` and ``ov-dnabert`` pre-trained from the same seed (the same initial weights and data
    order, so only the masking differs) and minus the from-scratch floor, paired by task. One run per ablation
    cannot hold the spread between pre-training runs, so the section also gives it, from the main arms' runs (each
    later seed against the first): the size a difference must pass before a masking, not a seed, can be named as
    its cause."""
    end = p["steps"]
    out = ["## Which part of RandomMask carries the effect (end of pre-training)", "",
           "Each arm below is pre-trained once, from the first pre-training seed: the same initial weights and data "
           "order as the main arms' run from that seed, so against those only the masking differs. Differences are "
           "paired by task (each task: the mean over its fine-tuning seeds), MCC x 100, with their 95% interval, "
           "the Wilcoxon signed-rank p and the tasks they are over; not adjusted for the number of comparisons.",
           ""]
    spread = []
    for arm in MAIN_ARMS:
        seeds = sorted({r["pretrain_seed"] for r in recs if r["arm"] == arm and r["step"] == end})
        for other in seeds[1:]:  # each later run against the first, the seed the ablations share
            pair = paired_tasks(_by(recs, arm=arm, step=end, pretrain_seed=other),
                                _by(recs, arm=arm, step=end, pretrain_seed=seeds[0]))
            if pair is not None:
                spread.append((f"{arm}.s{other} minus {arm}.s{seeds[0]}", pair))
    if spread:
        out += ["Between pre-training runs of one masking (the yardstick): "
                + "; ".join(f"{name} {_diff_cell(pair)}" for name, pair in spread)
                + ". An ablation whose difference from `ov-randommask` is smaller than the largest of these cannot "
                "be told from a change of pre-training seed, whatever its interval over tasks.", ""]
    widest = max((abs(pair["mean_diff"]) for _, pair in spread), default=None)
    floor = _by(recs, arm="scratch")
    refs = ("ov-randommask", "ov-dnabert")
    rows, readings = [], []
    for arm in arms.values():
        if arm.name in MAIN_ARMS:
            continue
        for sd in arm.seeds:
            own = _by(recs, arm=arm.name, step=end, pretrain_seed=sd)
            samples = task_average_samples(recs, tasks, arm=arm.name, step=end, pretrain_seed=sd)
            pairs = [paired_tasks(own, _by(recs, arm=ref, step=end, pretrain_seed=sd)) for ref in refs]
            pairs.append(paired_tasks(own, floor) if floor else None)
            rows.append(f"| {arm.name}.s{sd} | {arm.what} | {_fmt(*t_interval(samples))} | "
                        + " | ".join(_diff_cell(pair) for pair in pairs) + " |")
            vs_rm = pairs[0]
            if vs_rm is not None and vs_rm["tasks"] == len(tasks):
                lo, hi = vs_rm["mean_diff"] - vs_rm["ci"], vs_rm["mean_diff"] + vs_rm["ci"]
                side = "above" if lo > 0 else "below" if hi < 0 else None
                if side is None:
                    words = "not told from it over the tasks"
                elif widest is not None and abs(vs_rm["mean_diff"]) <= widest:
                    words = (f"{side} it over the tasks, by less than two runs of one masking differ "
                             f"({100 * widest:.2f}): not attributable to the masking")
                else:
                    words = f"{side} it over the tasks" + ("" if widest is None else
                                                           f", by more than two runs of one masking differ "
                                                           f"({100 * widest:.2f})")
                readings.append(f"- {arm.name}.s{sd} against ov-randommask.s{sd}: {words}.")
    first = p["main_seeds"][0]  # every ablation arm's one pre-training seed (replication.arms_of)
    out += [f"| run | what | mean MCC over tasks | minus ov-randommask.s{first} | minus ov-dnabert.s{first} | "
            "minus from scratch |", "| --- | --- | ---: | --- | --- | --- |", *rows, ""]
    if readings:
        out += ["Read over all the tasks (arms with every task finished):", "", *readings, ""]
    return out


def verdict_lines(p: dict[str, Any], compared: dict[int, dict[str, Any] | None],
                  courses: dict[tuple[str, int], list[tuple[int, float]]],
                  runs: dict[int, dict[str, Any] | None] | None = None,
                  floor: list[tuple[str, str, dict[str, Any]]] | None = None) -> list[str]:
    """The comparison in plain words: at each fine-tuned point, which masking is ahead (the across-task mean
    difference's 95% interval excludes zero, the signed-rank test agrees at 0.05 and, where each arm has two or more
    pre-training runs, the interval over the runs excludes zero on the same side) or that none is, with the
    size of effect the intervals rule out; what the trend over pre-training says, and each pre-training run's
    own course (``courses``: per (arm, seed), its mean MCC over the tasks at each point where it has them all);
    whether pre-training beats none (``floor``: `floor_compared`); where the evidence stops."""
    runs = runs or {}
    tps = p["batch_size"] * p["max_tokens"]
    main_seeds, n_tasks = len(p["main_seeds"]), len(p["tasks"])
    lines, end = [], None
    for step, pair in sorted(compared.items()):
        where = f"At {step * tps / 1e6:.0f} M tokens ({step / p['steps']:.0%} of pre-training)"
        if pair is None:
            lines.append(f"- {where}: not enough finished fine-tuning runs to compare yet.")
            continue
        d, half = 100 * pair["mean_diff"], 100 * pair["ci"]
        lo, hi = d - half, d + half
        leader = "RandomMask" if lo > 0 else "DNABERT's masking" if hi < 0 else None
        by_run = runs.get(step)
        run_txt, bound = "", max(abs(lo), abs(hi))
        if by_run is not None:
            rd, rh = 100 * by_run["mean_diff"], 100 * by_run["ci"]
            run_leader = "RandomMask" if rd - rh > 0 else "DNABERT's masking" if rd + rh < 0 else None
            run_txt = f"; over the pre-training runs {rd:+.2f}, 95% interval {rd - rh:+.2f} to {rd + rh:+.2f}"
            bound = max(bound, abs(rd - rh), abs(rd + rh))
        established = leader is not None and pair["wilcoxon_p"] < ALPHA
        if established and by_run is not None and run_leader != leader:
            what = (f"**leaning to {leader}, not established**: it is ahead on the tasks, but pre-training runs "
                    "of one masking differ about as much (the interval over the runs includes zero)")
            established = False
        elif established:
            what = f"**{leader} is ahead**"
        elif leader:  # the t interval and the rank test disagree (with few tasks the rank test cannot reach 0.05)
            what = (f"**leaning to {leader}, not established**: the 95% interval excludes zero but the signed-rank "
                    "test does not confirm it")
        else:
            what = (f"**no difference detected**: an effect beyond {bound:.1f} MCC either way is ruled out at 95%"
                    if not math.isnan(half) else "**no difference detected**")
        seeds = pair.get("pretrain_seeds", [])
        partial = [] if pair["tasks"] == n_tasks else [f"{pair['tasks']} of {n_tasks} tasks"]
        if len(seeds) < main_seeds:
            partial.append(f"{len(seeds)} of {main_seeds} pre-training seeds")
        done, planned = pair.get("fine_tunes", (0, 0))
        if done < planned:
            partial.append(f"{done} of {planned} fine-tunes")
        lines.append(f"- {where}: {what} (RandomMask minus DNABERT masking {d:+.2f} MCC, 95% interval {lo:+.2f} to "
                     f"{hi:+.2f}, over {pair['tasks']} tasks; Wilcoxon p = {pair['wilcoxon_p']:.2g}{run_txt})"
                     + (f"; **provisional**: {', '.join(partial)} so far" if partial else "") + ".")
        if step == p["steps"]:
            end = (leader, established, bound, bool(partial))
    firsts = [(s, pr) for s, pr in sorted(compared.items()) if pr is not None]
    if len(firsts) > 1:
        (s0, a), (s1, b) = firsts[0], firsts[-1]
        sa, sb = a.get("pretrain_seeds", []), b.get("pretrain_seeds", [])
        unlike = ("" if sa == sb else f" Not the same pre-training runs yet (step {s0}: seeds "
                  f"{', '.join(map(str, sa))}; step {s1}: seeds {', '.join(map(str, sb))}): each step's per-run "
                  "table compares like with like.")
        lines.append(f"- Over pre-training, the difference went from {100 * a['mean_diff']:+.2f} MCC (step {s0}) to "
                     f"{100 * b['mean_diff']:+.2f} (step {s1}). The paper's mechanism predicts it to widen once "
                     "DNABERT's masking has learnt the shortcut (it stops improving while RandomMask keeps learning)."
                     + unlike)
    for (arm, sd), pts in sorted(courses.items()):  # like with like: one run across the points
        if len(pts) > 1:
            lines.append(f"- {arm}.s{sd}, mean MCC over the {n_tasks} tasks: "
                         + ", ".join(f"{100 * m:.1f} at step {st}" for st, m in pts)
                         + f" ({100 * (pts[-1][1] - pts[0][1]):+.1f} from the first point to the last).")
    def side(pair: dict[str, Any]) -> str:  # where the 95% interval of run minus scratch lies
        lo, hi = pair["mean_diff"] - pair["ci"], pair["mean_diff"] + pair["ci"]
        return ("above" if lo > 0 else "below" if hi < 0 else "not told from") + " the floor"

    for group in ("short tasks", "EMP"):
        rows = [(run, pair) for g, run, pair in (floor or []) if g == group]
        if rows:
            lines.append(f"- **Against no pre-training** ({group}, paired by task): " + "; ".join(
                f"{run} {100 * pair['mean_diff']:+.2f} MCC over {pair['tasks']} tasks ({side(pair)})"
                for run, pair in rows) + ".")
    tokens = p["steps"] * tps
    if end is None:
        lines.append("- **Which masking to use: not known yet**; the end-of-pre-training comparison has not run.")
    else:
        leader, established, bound, partial = end
        use = (f"use {leader}" if established else f"either (leaning to {leader}, not established)" if leader
               else f"either: they do not differ by more than {bound:.1f} MCC here")
        lines.append(f"- **Which masking to use at this compute** ({tokens / 1e6:.0f} M tokens, a "
                     f"`{p['model_preset']}` model): {use}"
                     + (" (provisional until every unit has finished)" if partial else "") + ".")
    lines.append(f"- Where the evidence stops: a `{p['model_preset']}` model pre-trained on {tokens / 1e6:.0f} M "
                 f"tokens of one human chromosome, about 1/{round(1e11 / tokens):,} of the paper's ~10^11 tokens, with "
                 f"a fraction of its model's parameters; {n_tasks} short GUE tasks; EMP only under the fallback "
                 "protocol (no train split here). Nothing here says what happens at the paper's scale.")
    return lines


def plateau_lines(recs: list[dict]) -> list[str]:
    """How the study's fine-tunes ended, by task: at their dev plateau (patience ran out), or at a step or epoch
    limit before it (the protocol's failure case), and of those how many had their best dev MCC at the very last
    evaluation (still rising)."""
    by_task: dict[str, list[int]] = {}
    for r in recs:
        counts = by_task.setdefault(r["task"], [0, 0, 0])
        if r.get("plateau"):
            counts[0] += 1
        else:
            counts[1] += 1
            counts[2] += r["best_step"] == r["steps_run"]
    if not by_task:
        return []
    total = [sum(c[i] for c in by_task.values()) for i in range(3)]
    lines = [f"How the {sum(total[:2])} finished fine-tunes ended (every point and arm, the longer check aside): "
             f"**{total[0]} at their dev plateau**, **{total[1]} at a step or epoch limit before it** ({total[2]} "
             "of them with their best dev MCC at the last evaluation: still rising).", "",
             "| task | plateau | limit first | of which still rising |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {t} | {c[0]} | {c[1]} | {c[2]} |" for t, c in sorted(by_task.items())]
    # A plateau at chance: dev MCC stayed at ~0 (one class predicted) until patience ran out. They count in the
    # means like any run (the protocol's outcome), but they are named, since one moves a mean over 9 tasks by ~4.
    chance = sorted((r for r in recs if r["mcc"] < CHANCE),
                    key=lambda r: (r["arm"], str(r["pretrain_seed"]), r["step"], r["task"], r["seed"]))
    if chance:
        lines += ["", f"**{len(chance)} fine-tune(s) never left chance** (test MCC below {CHANCE:g}: the classifier "
                  "predicts about one class; counted in every mean like any other run): "
                  + "; ".join(f"{r['arm']}" + (f".s{r['pretrain_seed']}" if r["pretrain_seed"] is not None else "")
                              + f" step {r['step']} {r['task']} seed {r['seed']} (test MCC {100 * r['mcc']:.1f}, "
                              f"stopped at step {r['steps_run']})" for r in chance) + "."]
    return lines


def longer_run_check(p: dict[str, Any], recs: list[dict], longer: list[dict]) -> list[str]:
    """The same fine-tunes (main arms, end of pre-training, fine-tuning seed 0) with every limit doubled, per
    pre-training seed: does RandomMask minus DNABERT masking keep its sign on each task?"""
    def run(arm: str, task: str, seed: int, pool: list[dict]) -> dict | None:
        return next((r for r in pool if r["arm"] == arm and r["task"] == task and r["seed"] == 0
                     and r["pretrain_seed"] == seed and r["step"] == p["steps"]), None)

    def cell(r: dict | None) -> str:
        return "-" if r is None else f"{100 * r['mcc']:.1f} ({r['steps_run']})"

    out = [f"Longer fine-tuning (at most {p['long_check_max_steps']} steps, {p['long_check_epochs']} epochs, "
           f"patience {p['long_check_patience']}"
           + (f", not before step {p['long_check_min_steps']}" if p.get("long_check_min_steps") else "")
           + ": every limit doubled) against the study's, fine-tuning seed 0 at the end of pre-training, on "
           "each pair of pre-training runs (seed s of both arms); test MCC x 100 (steps run):", "",
           "| task | pre-training seed | ov-randommask | ov-dnabert | difference | longer: ov-randommask | "
           "longer: ov-dnabert | difference | same sign |", "| --- | ---: |" + " ---: |" * 6 + " --- |"]
    same = total = 0
    diffs: list[tuple[float, float]] = []  # (study's, longer) RandomMask minus DNABERT, per finished row
    gains: list[float] = []  # longer minus the study's run, each arm
    for task in p["long_check_tasks"]:
        for seed in p["main_seeds"]:
            cells = [run(a, task, seed, pool) for pool in (recs, longer) for a in ("ov-randommask", "ov-dnabert")]
            if cells[2] is None and cells[3] is None:
                continue  # no longer run on this pair of pre-training runs yet: no row
            if any(c is None for c in cells):
                out.append(f"| {task} | {seed} | {cell(cells[0])} | {cell(cells[1])} | - | {cell(cells[2])} | "
                           f"{cell(cells[3])} | - | not finished |")
                continue
            d, dl = cells[0]["mcc"] - cells[1]["mcc"], cells[2]["mcc"] - cells[3]["mcc"]
            diffs.append((d, dl))
            gains += [cells[2]["mcc"] - cells[0]["mcc"], cells[3]["mcc"] - cells[1]["mcc"]]
            total += 1
            same += (d > 0) == (dl > 0)
            out.append(f"| {task} | {seed} | {cell(cells[0])} | {cell(cells[1])} | {100 * d:+.1f} | "
                       f"{cell(cells[2])} | {cell(cells[3])} | {100 * dl:+.1f} | "
                       f"{'yes' if (d > 0) == (dl > 0) else '**no**'} |")
    if not total:
        return [*out, "", "No pair of longer runs has finished yet."]
    study, longer_mean = (100 * float(np.mean(x)) for x in zip(*diffs, strict=True))
    out += ["", f"The ranking is the same under the longer run on {same} of {total} (task, pre-training seed) pairs. "
            f"Over those rows, RandomMask minus DNABERT masking is {study:+.2f} MCC in the study's runs and "
            f"{longer_mean:+.2f} in the longer ones (the quantity the verdict compares); the longer runs score "
            f"{100 * float(np.mean(gains)):+.2f} MCC against the study's on average (both arms; range "
            f"{100 * min(gains):+.1f} to {100 * max(gains):+.1f}): what the study's stopping rule leaves on the table."]
    return out


def emp_continuation_note(p: dict[str, Any], pre: dict[str, Any]) -> list[str]:
    """What the EMP models were pre-trained on beyond the main run, and whether their far positions learnt:
    the continuation's held-out loss on its long windows beside the main run's on its short ones."""
    if not p.get("emp_steps"):
        return []
    out = [f"The EMP models are the main units' end checkpoints continued for {p['emp_steps']:,} steps of "
           f"{p['emp_batch_size']} windows of {p['emp_max_tokens']} tokens (learning rate warmed up to "
           f"{p['emp_lr']:g}, then decayed to zero; RandomMask at its last phase), so that the positions of a 500-bp "
           f"sequence are trained: the main run's 512-token tail, at {p.get('min_lr_ratio', 0):g} of the peak learning "
           "rate, left positions "
           "128-511 near the uniform loss (docs/regime.md). Held-out masked-token loss:", ""]
    for name, m in pre.items():
        if not name.endswith(EMP_SUFFIX):
            continue
        main = pre.get(name[: -len(EMP_SUFFIX)])
        main_txt = f"{main['eval_loss']:.3f} on {p['max_tokens']}-token windows" if main and main["eval_loss"] else "-"
        cont_txt = ("not started" if m is None else
                    f"{m['eval_loss']:.3f} on {p['emp_max_tokens']}-token windows at step {m['steps_done']} of "
                    f"{m['planned']}" if m["eval_loss"] is not None else f"step {m['steps_done']}, no evaluation yet")
        out.append(f"- {name}: {cont_txt} (the main run's end: {main_txt})")
    return [*out, ""]


def pretrain_runs_lines(by_run: dict[tuple[str, int], dict[str, list[float]]], runs: dict[str, Any] | None,
                        tasks: list[str] | None) -> list[str]:
    """Each pre-training run of the main arms at one point, and the arms' difference weighed against the
    difference between runs of one masking; with ``tasks``, also the task x run table (mean over fine-tuning
    seeds, their number in brackets)."""
    if not by_run:
        return []
    name = {k: f"{k[0]}.s{k[1]}" for k in by_run}
    common = sorted(set.intersection(*(set(v) for v in by_run.values())))
    out = [f"Per pre-training run, the mean test MCC over the {len(common)} tasks every run has: "
           + "; ".join(f"{name[k]} {100 * run_mean(v, common):.1f}" if common else
                       f"{name[k]} -" for k, v in by_run.items()) + ".", ""]
    if tasks:
        keys = list(by_run)
        out += ["| task | " + " | ".join(name[k] for k in keys) + " |", "| --- |" + " ---: |" * len(keys)]
        for t in tasks:
            out.append(f"| {t} | " + " | ".join(f"{100 * np.mean(by_run[k][t]):.1f} ({len(by_run[k][t])})"
                                              if by_run[k].get(t) else "-" for k in keys) + " |")
        out.append("")

    def diff(x: tuple[str, int], y: tuple[str, int]) -> str:
        pair = paired_tasks(by_run[x], by_run[y])
        if pair is None:
            return f"{name[x]} minus {name[y]} - (fewer than 2 tasks in common)"
        mean, half = 100 * pair["mean_diff"], 100 * pair["ci"]
        return (f"{name[x]} minus {name[y]} {mean:+.2f}, 95% {mean - half:+.2f} to {mean + half:+.2f} "
                f"({pair['tasks']} tasks)")

    seeds = {arm: sorted(sd for a, sd in by_run if a == arm) for arm in MAIN_ARMS}
    within = [diff((arm, sd), (arm, seeds[arm][0])) for arm in MAIN_ARMS for sd in seeds[arm][1:]]
    across = [diff(("ov-randommask", sd), ("ov-dnabert", sd)) for sd in seeds["ov-randommask"]
              if sd in seeds["ov-dnabert"]]
    if within:
        out.append("- Between pre-training runs of one masking, paired by task: " + "; ".join(within) + ".")
    if across:
        out.append("- Between maskings at the same pre-training seed, paired by task: " + "; ".join(across) + ".")
    if runs is None:
        out.append("- With the pre-training runs as the unit: needs two runs of each masking with tasks in common; "
                   "so far " + ", ".join(f"{arm} {len(seeds[arm])}" for arm in MAIN_ARMS) + ".")
    else:
        d, half = 100 * runs["mean_diff"], 100 * runs["ci"]
        out.append(f"- **With the pre-training runs as the unit** (over {runs['tasks']} tasks, Student t, "
                   f"{runs['df']} degrees of freedom): RandomMask minus DNABERT masking {d:+.2f} MCC, 95% interval "
                   f"{d - half:+.2f} to {d + half:+.2f}, p = {_p(runs['p'])}.")
    return [*out, ""]


# ------------------------------------------------------------------------------------------ figures
def draw_central(p: dict[str, Any], s: dict, recs: list[dict], tasks: list[str], arms: dict, plan: list[dict],
                 root: Path) -> Path | None:
    """Mean test MCC over tasks (95% interval) against pre-training tokens per arm; ov-dnabert's loss under it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tps = p["batch_size"] * p["max_tokens"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    drawn = False
    for arm in arms.values():
        xs, ys, hs = [], [], []
        for step in points_of(plan, arm.name):
            samples = task_average_samples(recs, tasks, arm=arm.name, step=step)
            if samples:
                mean, half = t_interval(samples)
                xs.append(step * tps / 1e6)
                ys.append(100 * mean)
                hs.append(0 if math.isnan(half) else 100 * half)
        if xs:
            line = top.errorbar(xs, ys, yerr=hs, marker="o", capsize=3, label=arm.name)
            drawn = True
            seeds = sorted({r["pretrain_seed"] for r in recs if r["arm"] == arm.name}) if arm.name in MAIN_ARMS else []
            for sd in seeds:
                runs = [(step * tps / 1e6, 100 * float(np.mean(v))) for step in points_of(plan, arm.name)
                        if (v := task_average_samples(recs, tasks, arm=arm.name, step=step, pretrain_seed=sd))]
                if runs:  # each pre-training run's own means, joined: how far apart two runs of one masking
                    # land, and each run's own course (the arm's line may average other runs at other points)
                    top.plot(*zip(*runs, strict=True), marker="x", markersize=5, linestyle=":", linewidth=0.9,
                             color=line[0].get_color(), alpha=0.7)
                    top.annotate(f"s{sd}", runs[-1], xytext=(5, -3), textcoords="offset points", fontsize=7,
                                 color=line[0].get_color())
    sc = task_average_samples(recs, tasks, arm="scratch")
    if sc:
        top.axhline(100 * float(np.mean(sc)), color="grey", linestyle=":", label="from scratch")
        drawn = True
    top.set_ylabel("mean test MCC over tasks (x100)\n(x, dotted: one pre-training run)")
    if top.get_legend_handles_labels()[0]:
        top.legend(fontsize=8)
    else:
        top.text(0.5, 0.5, "no fine-tuning unit has finished yet", ha="center", va="center", transform=top.transAxes)
    top.set_title("Fine-tuning quality against pre-training compute")
    # The training loss of the 512-token tail is that of windows whose far positions are barely trained (5-6
    # nats, read as a failed run): it is left off, the tail shaded, and the held-out loss (short windows) runs on.
    tail = p["steps"] * (1 - p.get("long_fraction", 0.0)) * tps / 1e6 if p.get("tail_max_tokens") else math.inf
    # ov-dnabert's runs in colours of their own: the top panel's colours stand for the arms.
    runs = [(name, m) for name, m in s["pretrain"].items()
            if m and name.startswith("ov-dnabert") and not name.endswith(EMP_SUFFIX)]
    for (name, m), colour in zip(runs, ("tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:pink"),
                                 strict=False):
        pts = [(x / 1e6, y) for x, y in m["curve"] if x / 1e6 <= tail]
        if pts:
            bottom.plot(*zip(*pts, strict=True), color=colour, label=f"{name} training loss")
        if m["eval"]:
            x, y = zip(*m["eval"], strict=True)
            bottom.plot(np.array(x) / 1e6, y, linestyle="--", marker=".", markersize=3, linewidth=0.8, color=colour,
                        label=f"{name} held-out loss")
        drawn = True
    if math.isfinite(tail):
        bottom.axvspan(tail, p["steps"] * tps / 1e6, color="grey", alpha=0.12,
                       label=f"{p['tail_max_tokens']}-token tail (training loss off the plot)")
    bottom.axhline(REGIME, color="red", linestyle="--", linewidth=0.8, label="loss 2 (regime)")
    bottom.axhline(math.log(4), color="black", linestyle=":", linewidth=0.8, label="ln 4 floor")
    bottom.set_xlim(0, 1.02 * p["steps"] * tps / 1e6)  # the whole plan: a running unit shows how far it is
    bottom.set_xlabel("pre-training tokens (M)")
    bottom.set_ylabel("masked-token loss")
    bottom.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    out = root / "replication.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def draw_dev_curves(recs: list[dict], root: Path) -> Path | None:
    """Dev MCC against fine-tuning steps for one task per group (main arms at the end, fine-tuning seed 0)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    end = max((r["step"] for r in recs), default=0)
    chosen = [r for r in recs if r["task"] in DEV_CURVE_TASKS and r["seed"] == 0 and r["step"] == end
              and r["arm"] in ("ov-dnabert", "ov-randommask") and r["pretrain_seed"] == 0]
    if not chosen:
        return None
    colors = {"ov-dnabert": "tab:blue", "ov-randommask": "tab:orange"}  # one colour per arm in every panel
    fig, axes = plt.subplots(1, len(DEV_CURVE_TASKS), figsize=(12, 3.5))
    for ax, task in zip(axes, DEV_CURVE_TASKS, strict=True):
        for r in sorted(chosen, key=lambda r: r["arm"]):
            if r["task"] != task:
                continue
            pts = [(x["step"], x["dev_mcc"]) for x in _rows(r["metrics"]) if "dev_mcc" in x]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", color=colors[r["arm"]], label=r["arm"])
                ax.axvline(r["best_step"], linestyle=":", linewidth=0.7, color=colors[r["arm"]])
        ax.set_title(task)
        ax.set_xlabel("fine-tuning step")
    axes[0].set_ylabel("dev MCC (selection rows)")
    handles = [plt.Line2D([], [], color=c, marker=".", label=a) for a, c in colors.items()]
    fig.legend(handles=handles, loc="center right", fontsize=8, title="dotted: best\ndev step", title_fontsize=7)
    out = root / "dev-curves.png"
    fig.tight_layout(rect=(0, 0, 0.89, 1))  # room on the right for the legend
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
