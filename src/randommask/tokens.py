"""What every tokenizer shares: the special tokens, the `Encoding` of a batch, the `Tokenizer` protocol,
and the reading of DNA input into base codes (one validation for every tokenizer family)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from randommask.alphabet import CODE_TABLE, INVALID, N_CODE, str_to_codes
from randommask.errors import RandomMaskError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def special_columns(col: np.ndarray, end: np.ndarray) -> np.ndarray:
    """True at [CLS] (column 0), [SEP] (column ``end``) and the padding after it."""
    special = col >= end
    special[:, 0] = True
    return special



@dataclass
class Encoding:
    """A tokenized batch.

    ids: int32 [B, T] token ids, ``[CLS] ... [SEP]`` then ``[PAD]``.
    attention_mask: int8 [B, T], 1 for real tokens (specials included), 0 for padding.
    special_mask: bool [B, T], True for [CLS], [SEP] and [PAD] (the positions masking never touches).
    lengths: int [B], ordinary tokens per row (specials excluded).
    spans: int64 [B, T, 2], the half-open range [start, end) of bases that each token covers in its
        input sequence; (-1, -1) for special and padding tokens. Fixed-width tokens derive it from
        ``k`` and ``stride``; tokens of varying width (BPE) carry it as ``token_spans``.
    """

    ids: np.ndarray
    attention_mask: np.ndarray
    special_mask: np.ndarray
    lengths: np.ndarray
    k: int = 0
    stride: int = 0
    token_spans: np.ndarray | None = None

    @property
    def spans(self) -> np.ndarray:
        if self.token_spans is not None:
            return self.token_spans
        # Derived on demand: training never needs it, the analysis tools do.
        b, width = self.ids.shape
        col = np.arange(width)
        start = (col - 1) * self.stride
        real = (col >= 1) & (col <= self.lengths[:, None])
        out = np.full((b, width, 2), -1, dtype=np.int64)
        out[..., 0] = np.where(real, start, -1)
        out[..., 1] = np.where(real, start + self.k, -1)
        return out



def fit_lengths(n_tok: np.ndarray, max_length: int | None, truncation: bool, padding: str) -> tuple[np.ndarray, int]:
    """The length rules every tokenizer's ``encode_batch`` follows: ordinary tokens per row once ``max_length``
    (which counts [CLS] and [SEP]) is applied (a longer row is an error, or cut at its 3' end with
    ``truncation``), and the padded width ("longest" row, or ``max_length``)."""
    if padding not in ("longest", "max_length"):
        raise RandomMaskError(f"padding must be 'longest' or 'max_length', got {padding!r}")
    if padding == "max_length" and max_length is None:
        raise RandomMaskError("padding='max_length' needs max_length")
    if max_length is not None:
        if max_length < 2:
            raise RandomMaskError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")
        too_long = np.flatnonzero(n_tok + 2 > max_length)
        if too_long.size and not truncation:
            i = int(too_long[0])
            raise RandomMaskError(f"sequence {i} gives {n_tok[i] + 2} tokens, more than max_length "
                                  f"{max_length}; shorten it or pass truncation=True")
        n_tok = np.minimum(n_tok, max_length - 2)
    return n_tok, (max_length if padding == "max_length" else int(n_tok.max(initial=0)) + 2)


def code_matrix(seqs: Sequence[str] | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Padded [B, Lmax] uint8 base codes (padding is N_CODE) and the lengths."""
    if len(seqs) == 0:
        return np.zeros((0, 0), np.uint8), np.zeros(0, np.int64)
    if isinstance(seqs[0], np.ndarray):
        arrays = list(seqs)
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        flat = np.concatenate(arrays).astype(np.uint8, copy=False) if arrays else np.zeros(0, np.uint8)
        if flat.size and flat.max() > N_CODE:
            raise RandomMaskError("base codes must be 0..4 (A, C, G, T, N)")
    else:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        joined = "".join(seqs)
        try:
            raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
            flat = CODE_TABLE[raw]
        except UnicodeEncodeError:
            flat = np.full(lengths.sum(), INVALID, np.uint8)  # located below
        if flat.size and flat.max() == INVALID:
            for i, s in enumerate(seqs):  # slow path, only to name the error
                str_to_codes(s, where=f"sequence {i}")
    lmax = int(lengths.max())
    if np.all(lengths == lmax):
        return flat.reshape(len(lengths), lmax), lengths
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    col = np.arange(lmax)
    idx = np.minimum(starts[:, None] + col, max(flat.size - 1, 0))
    codes = flat[idx] if flat.size else np.full((len(lengths), lmax), N_CODE, np.uint8)
    codes[col >= lengths[:, None]] = N_CODE
    return codes, lengths



# ------------------------------------------------------------------------------------------ protocol
@runtime_checkable
class Tokenizer(Protocol):
    """What the package asks of a tokenizer: encoding, decoding, the vocabulary and its special ids,
    the bases each token covers, and how to store and rebuild it.

    ``kmer_ids`` are the ordinary (non-special) tokens: what a randomly replaced token is drawn from.
    ``span_unit`` is how many tokens a masking span counts as one unit (DNABERT's span width).
    ``bases_for_tokens(n)`` is a length in bases that gives at most ``n`` tokens (exact for k-mers; for
    BPE, whose tokens vary in width, a length that nearly always fits), ``fill_bases(n)`` one that fills
    ``n`` tokens (pre-training cuts the excess), ``num_tokens(length)`` the most tokens ``length`` bases
    can give; ``calibrated(windows)`` is the tokenizer with that compression measured on ``windows()`` when
    it varies and was not measured (k-mers: itself). ``bases_per_token`` is the widest token,
    ``bases_between_tokens`` the step between token starts that keeps windows in frame (1 for BPE).
    """

    kind: str
    vocab: list[str]
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: np.ndarray

    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def kmer_ids(self) -> np.ndarray: ...
    @property
    def span_unit(self) -> int: ...
    @property
    def bases_per_token(self) -> int: ...
    @property
    def bases_between_tokens(self) -> int: ...
    def num_tokens(self, length: int) -> int: ...
    def bases_for_tokens(self, n_tokens: int) -> int: ...
    def fill_bases(self, n_tokens: int) -> int: ...
    def calibrated(self, windows: Callable[[], Sequence[np.ndarray]]) -> Tokenizer: ...
    def encode_batch(self, seqs: Sequence[str] | Sequence[np.ndarray], max_length: int | None = None,
                     truncation: bool = False, padding: str = "longest") -> Encoding: ...
    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...
    def save_vocab(self, path: str | Path) -> None: ...
    def with_params(self, **params: Any) -> Tokenizer: ...
    def with_vocab(self, vocab: Sequence[str]) -> Tokenizer: ...


def uniform_loss(tokenizer: Tokenizer) -> float:
    """The masked-token loss of guessing uniformly among the ordinary tokens, ln(|kmer_ids|) (ln 4^k for
    k-mers): the ceiling every training curve is read against."""
    return math.log(len(tokenizer.kmer_ids))
