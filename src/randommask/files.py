"""Crash-safe file writes (a reader sees the old file or the new one, never half of one) and run-folder locks."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from randommask.errors import RandomMaskError


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RandomMaskError(f"{path}: cannot write ({e.strerror or e}); the previous version is kept") from None
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


LOCK = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, enabled: bool = True) -> Iterator[None]:
    """Hold ``folder/.lock`` while a job writes into ``folder``: a second process given the same folder (two
    workers started on one unit of a study) stops with a one-line error instead of both writing it.

    An advisory ``flock``: the system drops it when its process ends, however it ends (SIGKILL, a session
    stopped), so a killed job leaves no stale lock and resuming needs no cleanup. On a system without
    ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        enabled = False
    if not enabled:
        yield
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RandomMaskError(f"{folder}: cannot write the run folder ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RandomMaskError(f"{folder}: {holder} is already running this {what}; wait for it to end or "
                                  "stop it (a job started twice?)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
        if created and os.listdir(folder) == [LOCK]:  # refused before writing anything: leave no trace
            with contextlib.suppress(OSError):
                (folder / LOCK).unlink()
                folder.rmdir()
