"""The study: the cpu-smoke grid end to end, and the verdict logic on hand-made figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from randommask.errors import RandomMaskError
from randommask.study import ARMS, StudyConfig, arm_curves, compare, run_study

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GENOME = DATA / "genomes" / "lambda_NC_001416.fa.gz"


def test_compare_reads_the_spread():
    a = {"mcc_mean": 0.60, "mcc_std": 0.02}
    assert compare(a, {"mcc_mean": 0.50, "mcc_std": 0.02})[0] == "supported"
    assert compare({"mcc_mean": 0.50, "mcc_std": 0.02}, a)[0] == "not supported"
    assert compare(a, {"mcc_mean": 0.59, "mcc_std": 0.03})[0] == "inconclusive"
    assert compare(a, None)[0] == "not measured"


@pytest.mark.skipif(not (GENOME.exists() and (DATA / "GUE").exists()), reason="shared data folder not present")
def test_cpu_smoke_study(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two fighting
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        summary = run_study(StudyConfig(preset="cpu-smoke", fasta=[str(GENOME)], gue=str(DATA / "GUE"),
                                        out_dir=str(tmp_path), steps=30))
    finally:
        torch.set_num_threads(threads)
    assert set(summary["pretrain"]) == set(ARMS) and all(summary["pretrain"].values())
    assert all(m is not None and len(m["mcc_per_seed"]) == 3 for m in summary["finetune"].values())
    report = (tmp_path / "report.md").read_text()
    for claim in ("overlapping 6-mers beats non-overlapping", "converges very fast", "intermediate layers",
                  "RandomMask pre-training gives better"):
        assert claim in report
    assert "never fell below 2" in report  # 30 CPU steps do not reach the shortcut regime, and it says so
    assert "![loss per arm against tokens seen](curves.png)" in report
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = arm_curves(tmp_path / "pretrain" / "ov-dnabert")
    assert curves["train"][-1][0] == 30 * 8 * 64  # tokens seen = steps x batch x window
    assert all(1.0 < loss < 9.5 for _, loss in curves["train"] + curves["eval"]) and curves["eval"]
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["steps"] == 30
    # Resumable: a second call finds every arm finished and only rewrites the report.
    mtime = (tmp_path / "pretrain" / "ov-dnabert" / "metrics.jsonl").stat().st_mtime
    run_study(StudyConfig(preset="cpu-smoke", fasta=[str(GENOME)], gue=str(DATA / "GUE"), out_dir=str(tmp_path),
                          steps=30))
    assert (tmp_path / "pretrain" / "ov-dnabert" / "metrics.jsonl").stat().st_mtime == mtime


def test_presets_resolve_and_gpu_pretrains_like_cpu_regime_for_longer():
    base = {"fasta": ["genome.fa"], "gue": "GUE"}
    regime = StudyConfig(preset="cpu-regime", **base).resolved()
    gpu = StudyConfig(preset="gpu", **base).resolved()
    pretraining = ("model_preset", "batch_size", "max_tokens", "lr", "warmup_steps", "dropout")
    assert {k: gpu[k] for k in pretraining} == {k: regime[k] for k in pretraining}
    assert gpu["steps"] > regime["steps"]
    assert regime["dropout"] == 0.0 and regime["ft_dropout"] == 0.1
    assert StudyConfig(preset="cpu-regime", dropout=0.2, steps=10, **base).resolved()["dropout"] == 0.2
    with pytest.raises(RandomMaskError, match="seeds must be at least 3"):
        StudyConfig(preset="gpu", seeds=2, **base).resolved()
