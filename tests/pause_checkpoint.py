"""Run the ``randommask`` command with every checkpoint write held just before its rename.

The crash tests (tests/test_reliability.py) start this instead of ``python -m randommask.cli`` to kill the
process while a checkpoint is complete on disk under its temporary name but not yet published: the
product code has no switch for it, the pause is patched in here.

    python tests/pause_checkpoint.py SECONDS COMMAND [ARGS...]
"""

from __future__ import annotations

import os
import sys
import time
import types

import randommask.checkpoint
from randommask.cli import main


def hold_renames(seconds: float) -> None:
    """Make `randommask.checkpoint` sleep before it renames a written checkpoint into place."""
    def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if os.path.basename(str(src)).startswith(".step-"):
            time.sleep(seconds)
        os.replace(src, dst)

    randommask.checkpoint.os = types.SimpleNamespace(**{**vars(os), "replace": replace})


if __name__ == "__main__":
    hold_renames(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
