"""The base code table shared by the genome store and the tokenizers: its only definition.

    A=0  C=1  G=2  T=3 (U too)  N=4 (N and every other IUPAC ambiguity code)

Sequences may hold the IUPAC nucleotide codes ``ACGTUNRYSWKMBDHV`` in either case (lowercase is
soft-masked repeat sequence, read as uppercase); any other character is an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from randommask.errors import RandomMaskError

BASES = "ACGTN"
"""The letter of each code: ``BASES[code]``."""
N_CODE = 4
"""The code of N and of every other IUPAC ambiguity code."""
IUPAC_CODES = "ACGTUNRYSWKMBDHV"
"""The letters allowed in sequences (either case)."""

_INVALID = 255
_LUT = np.full(256, _INVALID, dtype=np.uint8)
for _letter in IUPAC_CODES:
    _code = BASES.find(_letter)
    if _letter == "U":
        _code = 3
    elif _code < 0:
        _code = N_CODE
    _LUT[ord(_letter)] = _code
    _LUT[ord(_letter.lower())] = _code
_LUT.setflags(write=False)
CODE_TABLE = _LUT
"""256-entry lookup: byte -> code (255 for a character that is not a nucleotide code)."""
INVALID = _INVALID
_LETTERS = np.frombuffer(BASES.encode("ascii"), dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, N_CODE], dtype=np.uint8)

_ALLOWED_MSG = f"allowed: IUPAC nucleotide codes {IUPAC_CODES} in either case"


def str_to_codes(seq: str | bytes, where: str = "") -> np.ndarray:
    """Convert a nucleotide string to uint8 codes (see the module's code table).

    Raises `RandomMaskError` naming the first invalid character and its 1-based position; `where`
    (for example ``"dev.csv line 12"``) starts the message when given.
    """
    prefix = f"{where}: " if where else ""
    if isinstance(seq, str):
        try:
            raw = seq.encode("ascii")
        except UnicodeEncodeError as exc:
            raise RandomMaskError(
                f"{prefix}invalid nucleotide character {seq[exc.start]!r} at position {exc.start + 1} ({_ALLOWED_MSG})"
            ) from None
    else:
        raw = bytes(seq)
    codes = _LUT[np.frombuffer(raw, dtype=np.uint8)]
    bad = np.flatnonzero(codes == _INVALID)
    if bad.size:
        pos = int(bad[0])
        raise RandomMaskError(
            f"{prefix}invalid nucleotide character {chr(raw[pos])!r} at position {pos + 1} ({_ALLOWED_MSG})"
        )
    return codes


def _check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() > N_CODE):
        raise ValueError(f"base codes must be in 0..{N_CODE}, got values in {codes.min()}..{codes.max()}")
    return codes


def codes_to_str(codes: np.ndarray | Sequence[int]) -> str:
    """Convert uint8 codes back to an uppercase ``ACGTN`` string."""
    codes = _check_codes(np.asarray(codes))
    return _LETTERS[codes.astype(np.intp, copy=False)].tobytes().decode("ascii")


def reverse_complement_codes(codes: np.ndarray | Sequence[int]) -> np.ndarray:
    """Reverse complement of a code array (A<->T, C<->G, N stays N), as a new uint8 array."""
    codes = _check_codes(np.asarray(codes))
    return _COMPLEMENT[codes[::-1].astype(np.intp, copy=False)]
