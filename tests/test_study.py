"""The study: the cpu-smoke grid end to end, and the verdict logic on hand-made figures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from randommask.errors import RandomMaskError
from randommask.metrics import welch_t_test
from randommask.study import ARMS, StudyConfig, arm_curves, compare, run_study
from realdata import GENOME, GUE


def test_compare_uses_welch_t_test_over_seeds():
    def arm(*mcc):
        sd = float(np.std(mcc, ddof=1)) if len(mcc) > 1 else 0.0
        return {"mcc_mean": sum(mcc) / len(mcc), "mcc_std": sd, "mcc_per_seed": list(mcc)}

    a = arm(0.60, 0.62, 0.58)
    assert compare(a, arm(0.50, 0.52, 0.48))[0] == "supported"
    assert compare(arm(0.50, 0.52, 0.48), a)[0] == "not supported"
    # One pooled standard deviation apart over 3 seeds is not a finding (p ~ 0.3).
    verdict, text = compare(a, arm(0.58, 0.60, 0.56))
    assert verdict == "inconclusive" and "p = 0.29" in text
    assert compare(a, arm(0.55))[0] == "inconclusive"  # one seed: no test
    assert compare(a, None)[0] == "not measured"


def test_welch_t_test_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    for _ in range(200):
        n1, n2 = rng.integers(2, 9, 2)
        a, b = rng.normal(0, rng.uniform(0.1, 3), n1), rng.normal(rng.uniform(-3, 3), rng.uniform(0.1, 3), n2)
        t, _, p = welch_t_test(a, b)
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert t == pytest.approx(ref.statistic, rel=1e-9) and p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert welch_t_test([1, 1], [1, 1])[2] == 1.0 and welch_t_test([1, 1], [2, 2])[2] == 0.0


def test_cpu_smoke_study(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two fighting
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        summary = run_study(StudyConfig(preset="cpu-smoke", fasta=[str(GENOME)], gue=str(GUE),
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
    run_study(StudyConfig(preset="cpu-smoke", fasta=[str(GENOME)], gue=str(GUE), out_dir=str(tmp_path),
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
