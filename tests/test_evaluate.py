"""The benchmark: real GUE tasks end to end (files, columns, fallback mark, resume), tables and errors."""

import csv
import io
import json
from pathlib import Path

import pytest

from randommask.cli import main
from randommask.evaluate import CSV_COLUMNS, aggregate, render_csv, render_markdown
from randommask.tasks import PUBLISHED
from realdata import GUE

TASKS = ("prom/prom_core_all", "EMP/H3")  # one with train.csv, one on the fallback protocol

# Smoke settings: a few steps on subsampled splits, short inputs (EMP's 500 nt are truncated).
SMOKE = ["--max-steps", "2", "--eval-steps", "2", "--batch-size", "8", "--max-train-examples", "32",
         "--max-eval-examples", "32", "--max-length", "24", "--eval-batch-size", "32", "--progress", "false"]


def _mtimes(out: Path) -> dict[str, int]:
    return {p.parent.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.glob("runs/**/results.json")}


def test_benchmark_on_gue_tasks_with_resume(pretrained, tmp_path, capsys):
    out = tmp_path / "bench"
    def argv(seeds: int = 1, *extra: str) -> list[str]:
        return ["benchmark", str(pretrained), str(GUE), "--tasks", *TASKS, "--seeds", str(seeds), "--out", str(out),
                "--compare-published", *SMOKE, *extra]

    assert main(argv()) == 0
    assert "2 runs; 0 already finished, 2 to run" in capsys.readouterr().out

    # results.csv: one row per task, the documented columns, the fallback flag.
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_task = {r["task"]: r for r in rows}
    assert set(by_task) == set(TASKS)
    assert by_task["EMP/H3"]["fallback"] == "1" and by_task["EMP/H3"]["protocol"] == "fallback"
    assert by_task["prom/prom_core_all"]["fallback"] == "0" and by_task["prom/prom_core_all"]["group"] == "CPD"
    for r in rows:
        assert -1 <= float(r["mcc_mean"]) <= 1 and 0 <= float(r["accuracy_mean"]) <= 1
        assert r["mcc_std"] == "" and r["n_seeds"] == "1" and r["subsampled"] == "1"

    data = json.loads((out / "results.json").read_text())
    assert {g["group"] for g in data["groups"]} == {"EMP", "CPD"}
    assert data["published_mcc_x100"] == PUBLISHED and len(data["runs"]) == 2
    md = (out / "results.md").read_text()
    assert "| EMP/H3\u2020" in md and "\u2020 Fallback protocol" in md and "| prom/prom_core_all\u2021 |" in md
    assert "DNABERT-2" in md and "55.98" in md and "1 of 10" in md

    # Per-run results; a finished benchmark reruns nothing.
    runs = _mtimes(out)
    assert set(runs) == {"runs/EMP/H3/seed-0", "runs/prom/prom_core_all/seed-0"}
    run = json.loads((out / "runs/EMP/H3/seed-0/results.json").read_text())
    assert run["fallback"] is True and run["truncated"]["test"] == 32 and run["checkpoint"] is None
    assert main(argv()) == 0
    assert "0 to run" in capsys.readouterr().out and _mtimes(out) == runs

    # An interruption (a run without results.json) and a new seed: only those two run.
    (out / "runs/EMP/H3/seed-0/results.json").unlink()
    assert main(argv(2)) == 0
    assert "4 runs; 1 already finished, 3 to run" in capsys.readouterr().out
    after = _mtimes(out)
    assert after["runs/prom/prom_core_all/seed-0"] == runs["runs/prom/prom_core_all/seed-0"]
    assert len(after) == 4
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert all(r["n_seeds"] == "2" and r["seeds"] == "0;1" and r["mcc_std"] != "" for r in rows)

    # Finished runs made with other settings are an error, not mixed into the table.
    assert main(argv(1, "--lr", "1e-3")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made with other settings (differs in: learning_rate)" in err[0]

    # A run written before a setting existed (its config lacks the key) reads as that setting's default: kept.
    done = out / "runs/prom/prom_core_all/seed-0/results.json"
    old = json.loads(done.read_text())
    assert old["config"].pop("min_steps") == 0
    done.write_text(json.dumps(old))
    assert main(argv(2)) == 0 and "4 already finished, 0 to run" in capsys.readouterr().out
    assert main(argv(2, "--min-steps", "3")) == 2
    assert "(differs in: min_steps)" in capsys.readouterr().err


def _record(task: str, group: str, seed: int, mcc: float, fallback: bool = False) -> dict:
    return {"task": task, "group": group, "seed": seed, "fallback": fallback, "subsampled": False,
            "protocol": "fallback (...)" if fallback else "standard GUE protocol", "wall_time_s": 1.0,
            "test": {"mcc": mcc, "f1": mcc, "accuracy": 0.5}, "best": {"step": 1, "dev": {"mcc": 0.1}},
            "hparams": {"total_steps": 10}}


def test_aggregate_means_stds_and_groups():
    recs = [_record("tf/0", "TF-H", 0, 0.5), _record("tf/0", "TF-H", 1, 0.7), _record("tf/1", "TF-H", 0, 0.2),
            _record("EMP/H3", "EMP", 0, 0.4, fallback=True)]
    s = aggregate(recs)
    assert [t["task"] for t in s["tasks"]] == ["EMP/H3", "tf/0", "tf/1"]  # GUE group order, then name
    tf0 = s["tasks"][1]
    assert tf0["mcc_mean"] == pytest.approx(0.6) and tf0["mcc_std"] == pytest.approx(0.1414213562)  # ddof=1
    assert tf0["seeds"] == [0, 1] and s["tasks"][2]["mcc_std"] is None
    groups = {g["group"]: g for g in s["groups"]}
    assert groups["TF-H"]["mcc_mean"] == pytest.approx(0.4) and groups["TF-H"]["tasks"] == 2  # mean of task means
    assert groups["EMP"]["fallback_tasks"] == 1 and groups["TF-H"]["paper_tasks"] == 5

    text = render_csv(s)
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    md = render_markdown(s, compare_published=False, source={"run": None, "preset": "tiny", "tokenizer": "kmer6"})
    assert "from scratch" in md and "| tf/0 | TF-H | standard | 2 | 60.00 \u00b1 14.14 |" in md
    assert "| EMP/H3\u2020 |" in md and "DNABERT-2" not in md and "2 of 5" in md
    with_pub = render_markdown(s, compare_published=True, source={"run": "/r", "checkpoint": "step-1.pt", "step": 1})
    assert "| TF-H | 2 of 5 | 40.00 | 64.17 | 63.33 | 70.11 | - |" in with_pub


def test_benchmark_errors(tmp_path, capsys):
    assert main(["benchmark", "--from-scratch", "--out", str(tmp_path / "b")]) == 2
    assert "GUE root folder" in capsys.readouterr().err
    assert main(["benchmark", str(GUE), "--from-scratch", "--tasks", "nosuchgroup", "--out",
                 str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown selector 'nosuchgroup'" in err[0]
    assert main(["benchmark", str(tmp_path / "missing"), "--from-scratch", "--out", str(tmp_path / "b")]) == 2
    assert "GUE folder not found" in capsys.readouterr().err
