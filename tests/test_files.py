"""randommask.files: crash-safe writes and the run-folder lock (a unit started twice must not run twice)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from randommask.errors import RandomMaskError
from randommask.files import LOCK, atomic_write_text, folder_lock

HOLD = """
import sys, time
from pathlib import Path
from randommask.files import folder_lock
with folder_lock(Path(sys.argv[1]), "test job"):
    print("held", flush=True)
    time.sleep(60)
"""


def holder(folder: Path) -> subprocess.Popen:
    """Another process holding the folder's lock (it says so, then sleeps)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_and_a_killed_one_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "unit"
    proc = holder(folder)
    try:
        with pytest.raises(RandomMaskError) as e, folder_lock(folder, "fine-tuning run"):
            pass
        msg = str(e.value)
        assert str(folder) in msg and f"process {proc.pid}" in msg and "fine-tuning run" in msg
        assert "\n" not in msg
    finally:
        proc.send_signal(signal.SIGKILL)  # as a session's end kills a job: no cleanup code runs
        proc.wait()
    assert (folder / LOCK).exists()  # the file stays; the lock went with its process
    with folder_lock(folder, "fine-tuning run"):
        assert f"process {os.getpid()}" in (folder / LOCK).read_text()


def test_the_lock_is_released_on_exit_and_on_error(tmp_path):
    folder = tmp_path / "unit"
    with pytest.raises(ValueError), folder_lock(folder, "run"):
        atomic_write_text(folder / "results.json", "{}")
        raise ValueError("the job failed")
    # Free again; and in the same process too, a second hold of a held folder is refused.
    held = pytest.raises(RandomMaskError, match="already running")
    with folder_lock(folder, "run"), held, folder_lock(folder, "run"):
        pass
    assert sorted(os.listdir(folder)) == [LOCK, "results.json"]


def test_a_refused_start_leaves_no_folder_behind(tmp_path):
    folder = tmp_path / "typo"
    with pytest.raises(RandomMaskError), folder_lock(folder, "run"):
        raise RandomMaskError("bad model")
    assert not folder.exists()
    with folder_lock(folder, "run", enabled=False):
        pass
    assert not folder.exists()


def test_two_finetunes_on_one_folder(tmp_path, capsys):
    """The CLI: a fine-tune started on a folder another process is writing stops with one line, exit 2."""
    from randommask.cli import main

    folder = tmp_path / "ft"
    proc = holder(folder)
    try:
        task = tmp_path / "task"
        task.mkdir()
        for name in ("train.csv", "dev.csv", "test.csv"):
            (task / name).write_text("sequence,label\n" + "".join(f"{'ACGT' * 10},{i % 2}\n" for i in range(8)))
        code = main(["finetune", str(task), "--from-scratch", "--tokenizer", "kmer3", "--out", str(folder),
                     "--max-steps", "2", "--progress", "false"])
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"process {proc.pid}" in err[0] and str(folder) in err[0], err
        assert not (folder / "metrics.jsonl").exists()  # the running job's folder was not touched
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
