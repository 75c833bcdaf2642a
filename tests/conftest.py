"""Fixtures shared by the fine-tuning and benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest

LAMBDA = Path(__file__).resolve().parents[2] / "shared" / "data" / "genomes" / "lambda_NC_001416.fa.gz"


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory) -> Path:
    if not LAMBDA.is_file():
        pytest.skip("shared lambda genome not present")
    from randommask.pretrain import load_config, pretrain

    out = tmp_path_factory.mktemp("pre") / "run"
    pretrain(load_config({"out_dir": str(out), "steps": 4, "batch_size": 4, "progress": False, "log_interval": 2,
                          "eval_interval": 4, "save_interval": 4, "eval_windows": 4,
                          "data": {"fasta": [str(LAMBDA)], "max_tokens": 32}}))
    return out
