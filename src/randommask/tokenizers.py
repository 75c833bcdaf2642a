"""Tokenizers for DNA: the `Tokenizer` protocol, its registry, and the k-mer family (overlapping as
DNABERT, non-overlapping, single nucleotide).

The rest of the package sees a tokenizer only through `Tokenizer`, builds one with `from_name` (a
config's ``tokenizer`` string) or `from_spec` (what a checkpoint stores: ``{"type", "name", ...params}``;
folders written before the registry stored ``{"name", "k", "stride"}`` and load as k-mers), and never
reads a k-mer tokenizer's ``k`` or ``stride``. The protocol and the `Encoding` live in `randommask.tokens`;
BPE (DNABERT-2's tokenizer) in `randommask.bpe`. A new family is a class with the protocol's members and
one entry in `TOKENIZERS`.

The k-mer family:

A DNA sequence of L bases becomes tokens that each cover ``k`` consecutive bases, one token every
``stride`` bases:

* ``stride == 1`` (overlapping, DNABERT and the RandomMask paper): L - k + 1 tokens; neighbouring
  tokens share k - 1 bases, so each base (away from the ends) is seen by k tokens. This redundancy is
  why masking a few consecutive tokens hides almost nothing (see `randommask.masking`).
* ``stride == k`` (non-overlapping): floor(L / k) tokens; the last L mod k bases are dropped (the
  token spans say which bases were covered).
* ``k == 1``: single nucleotides.

Every encoding is wrapped as ``[CLS] tokens... [SEP]`` and padded with ``[PAD]``. A k-mer containing
any base other than A, C, G, T (N or another IUPAC ambiguity code) becomes ``[UNK]``. Lowercase
(soft-masked repeat) bases are read as uppercase. Characters that are not IUPAC nucleotide codes are
an error naming the sequence and position.

Encoding is vectorized: a batch is turned into a padded matrix of base codes with one table lookup,
and the k-mer index of every position is computed with k whole-array operations.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from randommask.alphabet import BASES, N_CODE
from randommask.bpe import BpeTokenizer
from randommask.errors import RandomMaskError
from randommask.tokens import (
    SPECIAL_TOKENS,
    Encoding,
    Tokenizer,
    code_matrix,
    fit_lengths,
    special_columns,
    uniform_loss,
)

__all__ = ["SPECIAL_TOKENS", "TOKENIZERS", "BpeTokenizer", "Encoding", "KmerTokenizer", "Tokenizer", "from_name",
           "from_spec", "kmer_values", "uniform_loss"]

KMER_BASES = "ACGT"  # the letters of k-mer tokens; anything else makes [UNK]
MAX_K = 8

_NAME_RE = re.compile(r"^(?:kmer(?P<k>\d+)(?P<nonoverlap>-nonoverlap)?|nt)$")


def kmer_values(codes: np.ndarray, k: int, n: int) -> np.ndarray:
    """values[:, j] = the base-4 number of the k bases codes[:, j : j + k], for j < n (N reads as A).

    Built by doubling: values of 2-base blocks from 1-base ones, 4 from 2, ..., and the blocks that make
    up k joined at the end, so k = 6 takes three passes over the matrix instead of six.
    """
    dtype = np.uint16 if k <= 7 else np.uint32
    block, width = np.bitwise_and(codes, dtype(3)), 1  # block[:, j]: value of `width` bases from j
    result, filled = None, 0
    rest = k
    while True:
        if rest & 1:  # append this block after the `filled` bases the result holds
            part = block[:, filled : filled + n]
            result = part if result is None else (result[:, :n] << (2 * width)) | part
            filled += width
        rest >>= 1
        if not rest:
            return result[:, :n]
        block = (block[:, :-width] << (2 * width)) | block[:, width:]
        width *= 2


class KmerTokenizer:
    """One tokenizer type for k-mers of any stride (see the module docstring).

    Args:
        k: k-mer length, 1 to 8.
        stride: bases between token starts; 1 (overlapping, the default) or k (non-overlapping).
        vocab: the token list in id order; by default the five special tokens then all 4**k k-mers in
            lexicographic order. A vocabulary in another order (DNABERT's vocab files) keeps its ids.
    """

    kind = "kmer"

    def __init__(self, k: int, stride: int = 1, vocab: Sequence[str] | None = None) -> None:
        if not 1 <= k <= MAX_K:
            raise RandomMaskError(f"k-mer length must be between 1 and {MAX_K}, got {k}")
        if stride not in (1, k):
            raise RandomMaskError(f"stride must be 1 (overlapping) or k={k} (non-overlapping), got {stride}")
        self.k = k
        self.stride = stride
        kmers = ["".join(p) for p in itertools.product(KMER_BASES, repeat=k)]
        self.vocab: list[str] = list(vocab) if vocab is not None else [*SPECIAL_TOKENS, *kmers]
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        missing = [t for t in (*SPECIAL_TOKENS, *kmers) if t not in self.token_to_id]
        if missing:
            raise RandomMaskError(f"vocabulary lacks {len(missing)} required tokens for k={k}, "
                                  f"for example {missing[0]!r}")
        if len(self.token_to_id) != len(self.vocab):
            raise RandomMaskError("vocabulary has duplicate tokens")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.token_to_id[t] for t in SPECIAL_TOKENS)
        # kmer_to_id[base-4 value of the k-mer] -> token id; the single place the vocab order enters.
        self.kmer_to_id = np.array([self.token_to_id[m] for m in kmers], dtype=np.int32)
        # With the default order the lookup is an offset: an add is cheaper than a gather.
        contiguous = np.array_equal(self.kmer_to_id, np.arange(4**k) + self.kmer_to_id[0])
        self._kmer_offset = int(self.kmer_to_id[0]) if contiguous else None
        # id_to_codes[id] -> the k base codes of that token, or -1s for special tokens (decoding).
        self.id_to_codes = np.full((len(self.vocab), k), -1, dtype=np.int8)
        self.id_to_codes[self.kmer_to_id] = np.array(
            list(itertools.product(range(4), repeat=k)), dtype=np.int8)
        self.special_ids = np.array(sorted(self.token_to_id[t] for t in SPECIAL_TOKENS), dtype=np.int64)

    # ---------------------------------------------------------------- construction and vocab files
    @classmethod
    def from_name(cls, name: str) -> KmerTokenizer:
        """``kmer6`` (overlapping 6-mers), ``kmer6-nonoverlap``, ``nt`` (single nucleotides), ..."""
        tok = cls.parse_name(name)
        if tok is None:
            raise RandomMaskError(f"unknown tokenizer {name!r}: use kmerK (K = 1..{MAX_K}), "
                                  "kmerK-nonoverlap, or nt")
        return tok

    @property
    def name(self) -> str:
        if self.k == 1:
            return "nt"
        return f"kmer{self.k}" + ("-nonoverlap" if self.stride == self.k and self.k > 1 else "")

    @property
    def spec(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild this tokenizer with `from_spec` (with its vocabulary). The
        k-mer family is the default type, so its spec carries no ``type``: ``{name, k, stride}``, exactly
        what every run folder has stored."""
        return {"name": self.name, "k": self.k, "stride": self.stride}

    @property
    def bases_per_token(self) -> int:
        return self.k

    @property
    def bases_between_tokens(self) -> int:
        return self.stride

    @property
    def span_unit(self) -> int:
        """Tokens per masked span unit: k consecutive overlapping k-mers together spell one k-mer's bases."""
        return self.k

    def with_params(self, **params: Any) -> KmerTokenizer:
        """The same vocabulary read with other parameters (``stride``: 1 overlapping, k non-overlapping)."""
        merged = {"k": self.k, "stride": self.stride, **{k: v for k, v in params.items() if v is not None}}
        if merged == {"k": self.k, "stride": self.stride}:
            return self
        return KmerTokenizer(int(merged["k"]), int(merged["stride"]), self.vocab)

    def with_vocab(self, vocab: Sequence[str]) -> KmerTokenizer:
        """This tokenizer with another id order of the same tokens (an imported DNABERT's vocabulary)."""
        return KmerTokenizer(self.k, self.stride, vocab)

    @classmethod
    def parse_name(cls, name: str) -> KmerTokenizer | None:
        """The tokenizer a config's name stands for, or None if the name is not of this family."""
        m = _NAME_RE.match(name)
        if not m:
            return None
        if m.group(0) == "nt":
            return cls(1, 1)
        k = int(m.group("k"))
        return cls(k, k if m.group("nonoverlap") else 1)

    @classmethod
    def from_params(cls, params: dict[str, Any], vocab: Sequence[str] | None, vocab_file: Path | None = None,
                    ) -> KmerTokenizer:
        """From a stored spec's parameters and vocabulary (or, in the oldest folders, ``vocab.txt``)."""
        if vocab is None and vocab_file is not None:
            return cls.from_vocab_file(vocab_file, stride=params.get("stride", 1))
        return cls(int(params["k"]), int(params["stride"]), vocab)

    @property
    def kmer_ids(self) -> np.ndarray:
        """The ids of the 4**k k-mers (what a randomly replaced token is drawn from)."""
        return self.kmer_to_id

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def save_vocab(self, path: str | Path) -> None:
        Path(path).write_text("".join(t + "\n" for t in self.vocab))

    @classmethod
    def from_vocab_file(cls, path: str | Path, stride: int | str = 1) -> KmerTokenizer:
        """Load a ``vocab.txt`` (one token a line, id = line number); k is read from the k-mers.

        ``stride`` is 1, ``"k"`` or the number k: the vocabulary alone does not say whether the model
        was trained on overlapping or non-overlapping tokens.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RandomMaskError(f"{path}: vocabulary file not found") from None
        except (UnicodeDecodeError, OSError) as e:
            raise RandomMaskError(f"{path}: cannot read vocabulary ({e.__class__.__name__})") from None
        tokens = [t.strip() for t in text.splitlines()]
        while tokens and tokens[-1] == "":
            tokens.pop()
        k = None
        for line_no, tok in enumerate(tokens, 1):
            if tok in SPECIAL_TOKENS:
                continue
            if not tok or any(c not in KMER_BASES for c in tok):
                raise RandomMaskError(f"{path}, line {line_no}: token {tok!r} is neither a special token "
                                      "nor a k-mer of ACGT; not a k-mer vocabulary")
            if k is None:
                k = len(tok)
            elif len(tok) != k:
                raise RandomMaskError(f"{path}, line {line_no}: k-mer {tok!r} has length {len(tok)}, "
                                      f"earlier k-mers have length {k}")
        if k is None:
            raise RandomMaskError(f"{path}: no k-mers found; not a k-mer vocabulary")
        if len(tokens) != 4**k + len(SPECIAL_TOKENS):
            raise RandomMaskError(f"{path}: {len(tokens)} tokens, expected {4**k + len(SPECIAL_TOKENS)} "
                                  f"for k={k} (all {4**k} k-mers and the 5 special tokens)")
        stride = k if stride == "k" else int(stride)
        try:
            return cls(k, stride, tokens)
        except RandomMaskError as e:
            raise RandomMaskError(f"{path}: {e}") from None

    # ---------------------------------------------------------------- encoding
    def num_tokens(self, length: int) -> int:
        """Number of k-mer tokens (specials excluded) for a sequence of ``length`` bases."""
        return 0 if length < self.k else (length - self.k) // self.stride + 1

    def bases_for_tokens(self, n_tokens: int) -> int:
        """Bases needed for ``n_tokens`` k-mer tokens (specials excluded)."""
        return (n_tokens - 1) * self.stride + self.k if n_tokens > 0 else 0

    def fill_bases(self, n_tokens: int) -> int:
        """Bases that fill ``n_tokens`` tokens: exactly `bases_for_tokens` for fixed-width tokens."""
        return self.bases_for_tokens(n_tokens)

    def calibrated(self, windows: Callable[[], Sequence[np.ndarray]]) -> KmerTokenizer:
        """Fixed-width tokens need no measured compression: this tokenizer, the windows never drawn."""
        return self

    def encode_batch(
        self,
        seqs: Sequence[str] | Sequence[np.ndarray],
        max_length: int | None = None,
        truncation: bool = False,
        padding: str = "longest",
    ) -> Encoding:
        """Tokenize a batch of DNA strings (or uint8 base-code arrays from `randommask.genome`).

        max_length counts every token, [CLS] and [SEP] included. A longer sequence is an error unless
        ``truncation`` is set, in which case its k-mers past the limit are dropped (from the 3' end).
        ``padding`` is "longest" (pad to the longest in the batch) or "max_length".
        """
        codes, lengths = code_matrix(seqs)
        n_tok = np.where(lengths >= self.k, (lengths - self.k) // self.stride + 1, 0)
        n_tok, width = fit_lengths(n_tok, max_length, truncation, padding)
        return self._assemble(codes, n_tok, width)

    def encode(self, seq: str | np.ndarray, max_length: int | None = None, truncation: bool = False) -> Encoding:
        """Tokenize one sequence (a batch of one)."""
        return self.encode_batch([seq], max_length=max_length, truncation=truncation)

    def _assemble(self, codes: np.ndarray, n_tok: np.ndarray, width: int) -> Encoding:
        b = codes.shape[0]
        k, s = self.k, self.stride
        t = int(n_tok.max(initial=0))
        ids = np.empty((b, width), dtype=np.int32)
        ids[:, t + 1 :] = self.pad_id
        if t > 0:
            # Base-4 value of the k-mer at each token start: two bits per base, k shifts over the matrix.
            n_pos = (t - 1) * s + 1
            value = kmer_values(codes, k, n_pos)
            if s > 1:
                value = value[:, ::s]
            tok = ids[:, 1 : t + 1]
            if self._kmer_offset is not None:
                np.add(value, self._kmer_offset, out=tok, casting="unsafe")
            else:
                np.take(self.kmer_to_id, value, out=tok)
            ambiguous = codes >= N_CODE  # N, IUPAC codes and the batch padding
            if ambiguous.any():
                # A k-mer is [UNK] if its window holds any ambiguous base: a running count per row.
                run = np.zeros((b, codes.shape[1] + 1), dtype=np.int32)
                np.cumsum(ambiguous, axis=1, out=run[:, 1:])
                bad = (run[:, k : k + n_pos] - run[:, :n_pos]) > 0
                tok[bad[:, ::s] if s > 1 else bad] = self.unk_id
        col = np.arange(width)
        end = n_tok[:, None] + 1  # the [SEP] column
        if not np.all(n_tok == t):
            ids[col > end] = self.pad_id
        rows = np.arange(b)
        ids[:, 0] = self.cls_id
        ids[rows, n_tok + 1] = self.sep_id
        # int8 0/1 (a view of the boolean, no copy): models take any integer or boolean mask.
        return Encoding(ids=ids, attention_mask=(col <= end).view(np.int8),
                        special_mask=special_columns(col, end), lengths=n_tok.copy(), k=k, stride=s)

    # ---------------------------------------------------------------- decoding
    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The DNA string that a row of token ids covers.

        Special tokens are skipped. A base is read from any k-mer token that covers it, so with
        overlapping tokens a base next to an N is still recovered from a neighbouring token; a base
        that only [UNK] or [MASK] tokens cover decodes as N.
        """
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[~np.isin(ids, [self.pad_id, self.cls_id, self.sep_id])]
        n = ids.shape[0]
        if n == 0:
            return ""
        k, s = self.k, self.stride
        length = (n - 1) * s + k
        tok_codes = self.id_to_codes[ids].astype(np.int16)  # [n, k], -1 where unknown
        pos = (np.arange(n)[:, None] * s + np.arange(k)).ravel()
        out = np.full(length, -1, dtype=np.int16)
        np.maximum.at(out, pos, tok_codes.ravel())
        out[out < 0] = N_CODE
        return np.frombuffer(BASES.encode(), dtype=np.uint8)[out].tobytes().decode("ascii")

    def decode_batch(self, ids: np.ndarray) -> list[str]:
        return [self.decode(row) for row in np.asarray(ids)]


#: The registry: a spec's ``type`` -> its class (``parse_name``, ``from_params``).
TOKENIZERS: dict[str, Any] = {"kmer": KmerTokenizer, "bpe": BpeTokenizer}


def from_name(name: str) -> Tokenizer:
    """The tokenizer a config names (``kmer6``, ``kmer6-nonoverlap``, ``nt``, ...)."""
    for cls in TOKENIZERS.values():
        tok = cls.parse_name(name)
        if tok is not None:
            return tok
    raise RandomMaskError(f"unknown tokenizer {name!r}: use kmerK (K = 1..{MAX_K}), kmerK-nonoverlap, nt, or "
                          "bpe:PATH (a BPE tokenizer.json, or a folder with one)")


def from_spec(spec: dict[str, Any], vocab: Sequence[str] | None = None, vocab_file: Path | None = None) -> Tokenizer:
    """Rebuild a stored tokenizer. A spec without a ``type`` (``{name, k, stride}``: every k-mer tokenizer,
    and every folder written before the registry) is a k-mer tokenizer; other families store their type."""
    kind = spec.get("type", "kmer")
    if kind not in TOKENIZERS:
        raise RandomMaskError(f"unknown tokenizer type {kind!r} in a checkpoint; known: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind].from_params(spec, vocab, vocab_file)
