"""A pytest plugin (loaded by conftest.py): any skip whose reason does not name CUDA or a GPU fails the run.

Tests may skip only where the machine has no CUDA GPU; missing data, a missing package or an unfinished
feature is a failure, so that a skip cannot silently stand in for a test again.
"""

from __future__ import annotations

import re

import pytest

ALLOWED = re.compile(r"\b(CUDA|GPUs?)\b")
_bad: list[tuple[str, str]] = []


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _check(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        if not ALLOWED.search(reason):
            _bad.append((report.nodeid, reason))


def pytest_runtest_logreport(report) -> None:
    _check(report)


def pytest_collectreport(report) -> None:
    _check(report)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _bad and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if _bad:
        terminalreporter.write_sep("=", "FAILED: skips that do not name CUDA or a GPU", red=True)
        for nodeid, reason in _bad:
            terminalreporter.write_line(f"{nodeid}: {reason}")
