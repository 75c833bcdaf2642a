"""Fixtures shared by several test files, and the rule that only a missing CUDA GPU may skip a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from realdata import GENOME, chr20
from skip_guard import (  # noqa: F401  (pytest hooks: a skip for any reason but a missing GPU fails the run)
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: on a shared 2-core machine two threads are many times slower than one
    for the tiny models these tests train."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory) -> Path:
    from randommask.pretrain import load_config, pretrain

    out = tmp_path_factory.mktemp("pre") / "run"
    pretrain(load_config({"out_dir": str(out), "steps": 4, "batch_size": 4, "progress": False, "log_interval": 2,
                          "eval_interval": 4, "save_interval": 4, "eval_windows": 4,
                          "data": {"fasta": [str(GENOME)], "max_tokens": 32}}))
    return out


@pytest.fixture(scope="session")
def chr20_store(tmp_path_factory):
    """Chromosome 20 prepared once into a genome store (about 60 MB) for the tests that need all of it."""
    from randommask.genome import prepare

    return prepare([chr20()], tmp_path_factory.mktemp("chr20") / "store")
