"""The suite's own rules: only a missing CUDA GPU may skip a test; `slow` tests are deselected by default."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(folder: Path, test_text: str) -> subprocess.CompletedProcess:
    (folder / "conftest.py").write_text("from skip_guard import *  # noqa: F403\n")
    (folder / "test_x.py").write_text(test_text)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_a_skip_for_a_missing_gpu_passes(tmp_path):
    done = run_pytest(tmp_path, "import pytest\n\n"
                                "@pytest.mark.skipif(True, reason='needs a CUDA GPU')\ndef test_a():\n    pass\n\n"
                                "def test_b():\n    pytest.skip('no GPU here')\n\ndef test_c():\n    pass\n")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout


def test_any_other_skip_fails_the_run(tmp_path):
    done = run_pytest(tmp_path, "import pytest\n\n"
                                "def test_a():\n    pytest.skip('shared data folder not present')\n\n"
                                "def test_b():\n    pass\n")
    assert done.returncode == 1, done.stdout
    assert "skips that do not name CUDA or a GPU" in done.stdout and "shared data folder not present" in done.stdout


def test_a_module_skipped_at_import_fails_the_run(tmp_path):
    done = run_pytest(tmp_path, "import pytest\n\nnope = pytest.importorskip('no_such_module_here')\n\n"
                                "def test_a():\n    pass\n")
    assert done.returncode == 1, done.stdout
    assert "no_such_module_here" in done.stdout


def test_slow_tests_are_deselected_by_default():
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert '-m "not slow"' in opts["addopts"]
