"""Where the tests find real DNA.

Every test runs on a fresh clone after `scripts/setup.sh`, with nothing beside the checkout:

* ``GENOME``: 100 kb of human chromosome 20, committed (``tests/data/genomes``), for tiny training runs;
* ``GUE``: real excerpts of four GUE tasks, committed (``tests/data/GUE``, 200 rows a split);
* ``chr20()``: the whole chromosome 20 that `scripts/setup.sh` puts into ``data/genomes/20.fa.gz``.

``SHARED`` (``../shared/data``) is only ever extra coverage, used when it is there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"
GENOME = TEST_DATA / "genomes" / "chr20-excerpt.fa.gz"
GUE = TEST_DATA / "GUE"
SHARED = ROOT.parent / "shared" / "data"
CHR20_SETUP = ROOT / "data" / "genomes" / "20.fa.gz"


def chr20() -> Path:
    """Human chromosome 20 (GRCh37) as `scripts/setup.sh` fetches it; a missing file fails the test."""
    for path in (CHR20_SETUP, SHARED / "genomes" / "20.fa.gz"):
        if path.is_file():
            return path
    pytest.fail(f"{CHR20_SETUP} not found: run scripts/setup.sh, which fetches human chromosome 20", pytrace=False)
