"""Byte-pair encoding for DNA, as DNABERT-2: a vocabulary of frequent base strings learnt from a genome.

BPE starts from the four bases and repeatedly merges the most frequent neighbouring pair into a new token,
until the vocabulary has the size asked for (DNABERT-2: 4,096). Frequent motifs and repeats (Alu, LINE
fragments, microsatellites) end up as single tokens covering ten or more bases, rare sequence is spelt in
short pieces, so the number of bases a token covers varies: on human DNA about 4 to 5 on average. Unlike
overlapping k-mers, BPE tokens do not overlap: masking one token hides its bases for real, which is why the
project pre-trains BPE models with BERT's masking of single tokens (see `randommask.masking`).

The merges are learnt and applied by Hugging Face's `tokenizers` library (the Rust one `transformers`
uses); a vocabulary is one ``tokenizer.json`` that `transformers.PreTrainedTokenizerFast` loads as it is.
This module wraps it as a `randommask.tokens.Tokenizer`:

* input goes through the package's one DNA reader (`randommask.tokens.code_matrix`): lowercase is read
  as uppercase, any IUPAC ambiguity code as N, anything else is an error naming the sequence and
  position; every N becomes one ``[UNK]``;
* a run's checkpoint stores the whole ``tokenizer.json`` (its spec), so a run folder needs no other file;
* ``bases_per_token_mean`` (the compression on held-out windows, measured when the vocabulary was learnt,
  or on the training genome when a run starts) sizes the pre-training windows in bases.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from randommask.alphabet import BASES
from randommask.errors import RandomMaskError
from randommask.tokens import SPECIAL_TOKENS, Encoding, code_matrix, fit_lengths, special_columns

DNA_LETTERS = set("ACGTN")
TOKENIZER_FILE = "tokenizer.json"
REPORT_FILE = "tokenizer-report.json"  # written beside tokenizer.json by `randommask tokenizer train`
_LETTERS = np.frombuffer(BASES.encode("ascii"), dtype=np.uint8)


def _library() -> Any:
    # Imported here: the `tokenizers` wheel loads a Rust library that k-mer users never need.
    import tokenizers

    return tokenizers


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message (the Rust library's can run to several), or its class."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else e.__class__.__name__


def vocab_floor() -> int:
    """The smallest vocabulary: the special tokens and the four bases."""
    return len(SPECIAL_TOKENS) + 4


def train_bpe(pieces: Iterable[str], vocab_size: int) -> str:
    """Learn a BPE vocabulary of ``vocab_size`` tokens from DNA strings of A, C, G, T; the ``tokenizer.json``
    text. The special tokens take ids 0-4 in the project's order, the bases 5-8, then the merges."""
    if vocab_size < vocab_floor():
        raise RandomMaskError(f"vocabulary size {vocab_size} is below the alphabet: the 5 special tokens and "
                              f"the 4 bases need {vocab_floor()}")
    lib = _library()
    tok = lib.Tokenizer(lib.models.BPE(unk_token="[UNK]"))
    # Soft-masked (lowercase) bases read as uppercase, also when transformers loads the file on its own.
    tok.normalizer = lib.normalizers.Sequence([lib.normalizers.Replace(c.lower(), c) for c in "ACGTN"])
    trainer = lib.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                      initial_alphabet=list("ACGT"), limit_alphabet=4, show_progress=False)
    tok.train_from_iterator(pieces, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = lib.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id),
                                                                                       ("[SEP]", sep_id)])
    return tok.to_str()


def acgt_pieces(codes: np.ndarray) -> list[str]:
    """The runs of A, C, G, T in a window of base codes (BPE learns no merges across an N)."""
    text = _LETTERS[codes].tobytes().decode("ascii")
    return [p for p in text.split("N") if p]


class BpeTokenizer:
    """A BPE vocabulary (one ``tokenizer.json``) read as the package's `Tokenizer`.

    Args:
        text: the ``tokenizer.json`` text (a BPE model whose ordinary tokens are strings of A, C, G, T, N,
            with the five special tokens [PAD] [UNK] [CLS] [SEP] [MASK] in any ids: DNABERT-2's order works).
        bases_per_token_mean: average bases per ordinary token on held-out DNA (0: not measured yet).
        source: where the text came from, for messages.
    """

    kind = "bpe"

    def __init__(self, text: str, bases_per_token_mean: float = 0.0, source: str = "tokenizer.json") -> None:
        self.text, self.source = text, source
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RandomMaskError(f"{source}: not a tokenizer.json (invalid JSON: {e.msg}, line {e.lineno})") from None
        except RecursionError:  # json's parser recurses once per nesting level
            raise RandomMaskError(f"{source}: not a tokenizer.json (JSON nested too deeply)") from None
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
            kind = model.get("type") if isinstance(model, dict) else None
            raise RandomMaskError(f"{source}: not a BPE tokenizer.json (model type {kind!r}); randommask reads "
                                  "BPE vocabularies such as DNABERT-2's")
        if model.get("dropout") not in (None, 0, 0.0):
            # With dropout the library skips merges at random: the same DNA would give other tokens each time.
            raise RandomMaskError(f"{source}: the BPE model has dropout {model.get('dropout')!r}, which makes "
                                  "tokenization random; set \"dropout\" to null")
        try:
            self._tok = _library().Tokenizer.from_str(text)
            # A file may ask the library to truncate or pad; the package does both itself, counting what it cuts.
            self._tok.no_truncation()
            self._tok.no_padding()
        except Exception as e:  # the Rust library's parse errors carry no class of their own
            raise RandomMaskError(f"{source}: the tokenizers library cannot read it ({_first_line(e)})") from None
        except BaseException as e:  # a panic in the Rust library (pyo3's PanicException is a BaseException)
            if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise RandomMaskError(f"{source}: the tokenizers library cannot read it ({_first_line(e)})") from None
        vocab = self._tok.get_vocab(with_added_tokens=True)
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise RandomMaskError(f"{source}: the vocabulary lacks the special token(s) {', '.join(missing)}; "
                                  f"randommask needs all of {' '.join(SPECIAL_TOKENS)}")
        size = self._tok.get_vocab_size(with_added_tokens=True)
        by_id = {i: t for t, i in vocab.items()}
        if sorted(by_id) != list(range(size)):
            gap = next((i for i in range(size) if i not in by_id), None)
            where = f"no token has id {gap}" if gap is not None else f"ids run past {size - 1}"
            raise RandomMaskError(f"{source}: token ids are not 0..{size - 1} without gaps ({where})")
        self.vocab: list[str] = [by_id[i] for i in range(size)]
        foreign = next((t for t in self.vocab if t not in SPECIAL_TOKENS and not set(t) <= DNA_LETTERS), None)
        if foreign is not None:
            raise RandomMaskError(f"{source}: token {foreign!r} is not DNA (letters A, C, G, T, N); not a DNA BPE "
                                  "vocabulary")
        if "" in self.vocab:
            raise RandomMaskError(f"{source}: the vocabulary holds an empty token (id {self.vocab.index('')})")
        if not {"A", "C", "G", "T"} <= set(vocab):
            raise RandomMaskError(f"{source}: the vocabulary lacks a single-base token (A, C, G and T are needed "
                                  "so that every sequence can be spelt)")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (vocab[t] for t in SPECIAL_TOKENS)
        self.special_ids = np.array(sorted(vocab[t] for t in SPECIAL_TOKENS), dtype=np.int64)
        self._ordinary = np.array([i for i in range(size) if i not in set(self.special_ids.tolist())], np.int32)
        self._width = np.array([0 if t in SPECIAL_TOKENS else len(t) for t in self.vocab], dtype=np.int64)
        self._spelt = self._width.copy()  # bases each id stands for in input: [UNK] is one N
        self._spelt[self.unk_id] = 1
        self.bases_per_token_mean = float(bases_per_token_mean)
        self._check_spelling()
        # Our input is already upper-case A, C, G, T, N (`code_matrix` reads it), and the check above showed that
        # the file's normalizer leaves such text as it is: from here on it would only cost time (a fifth).
        self._tok.normalizer = None

    def _check_spelling(self) -> None:
        """Refuse a file whose settings make the library spell DNA otherwise than base by base: a normalizer
        or pre-tokenizer that changes letters or adds some (lowercasing, byte-level prefix spaces), no
        unknown token (N would vanish), or fused unknowns (NN as one [UNK]). Each would pass the checks
        on the vocabulary and then lose or shift bases silently."""
        probe = "ACGTNNGATTACANTTTTCCCCGGGGAAAA"
        try:
            enc = self._tok.encode(probe, add_special_tokens=False)
        except BaseException as e:  # the library failing on its own settings (a panic is a BaseException)
            if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise RandomMaskError(f"{self.source}: the tokenizers library cannot encode DNA with it "
                                  f"({_first_line(e)})") from None
        bad_id = next((i for i in enc.ids if not 0 <= i < len(self.vocab)), None)
        if bad_id is not None:
            raise RandomMaskError(f"{self.source}: it encodes DNA to id {bad_id}, outside its vocabulary")
        spelt = self.decode(enc.ids)
        spans = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        # The library's own offsets must be the widths laid end to end: what encode_batch derives them from.
        ends = np.cumsum(self._spelt[np.asarray(enc.ids, dtype=np.int64)])
        contiguous = len(enc.ids) > 0 and np.array_equal(spans[:, 1], ends) and np.array_equal(
            spans[:, 0], ends - self._spelt[np.asarray(enc.ids, dtype=np.int64)])
        if spelt != probe or not contiguous:
            raise RandomMaskError(f"{self.source}: its settings do not spell DNA base by base ({probe} is read as "
                                  f"{spelt or 'nothing'}); check its normalizer, pre_tokenizer and the model's "
                                  "unk_token ([UNK]) and fuse_unk (false)")

    # ---------------------------------------------------------------- construction
    @classmethod
    def parse_name(cls, name: str) -> BpeTokenizer | None:
        """``bpe:PATH``: a ``tokenizer.json`` file, or a folder holding one (with the compression that
        `randommask tokenizer train` measured, when its report is there)."""
        if not name.startswith("bpe:"):
            return None
        return cls.from_file(name[4:])

    @classmethod
    def from_file(cls, path: str | Path) -> BpeTokenizer:
        path = Path(path)
        file = path / TOKENIZER_FILE if path.is_dir() else path
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RandomMaskError(f"{file}: tokenizer file not found (bpe:PATH names a tokenizer.json or a folder "
                                  "with one)") from None
        except UnicodeDecodeError as e:
            raise RandomMaskError(f"{file}: not a tokenizer.json (not UTF-8 text: byte {e.start} is "
                                  f"0x{e.object[e.start]:02x}; a binary file?)") from None
        except OSError as e:
            raise RandomMaskError(f"{file}: cannot read the tokenizer ({e.strerror or e.__class__.__name__})") from None
        mean = 0.0
        report = file.parent / REPORT_FILE
        if report.is_file():
            try:
                mean = float(json.loads(report.read_text()).get("heldout", {}).get("bases_per_token", 0.0))
            except (ValueError, AttributeError, TypeError, RecursionError, OSError):
                mean = math.nan
            if not (math.isfinite(mean) and mean >= 0):
                raise RandomMaskError(f"{report}: not a tokenizer report (no held-out bases per token; delete it "
                                      "to measure the compression again)") from None
        return cls(text, mean, source=str(file))

    @classmethod
    def from_params(cls, params: dict[str, Any], vocab: Sequence[str] | None, vocab_file: Path | None = None,
                    ) -> BpeTokenizer:
        """From a checkpoint's spec (it holds the whole tokenizer.json)."""
        if not isinstance(params.get("json"), str):
            raise RandomMaskError("checkpoint: the BPE tokenizer spec holds no tokenizer.json text")
        tok = cls(params["json"], float(params.get("bases_per_token_mean") or 0.0), source="checkpoint tokenizer")
        if vocab is not None and list(vocab) != tok.vocab:
            raise RandomMaskError("checkpoint: the stored vocabulary differs from its tokenizer.json")
        return tok

    def calibrated(self, windows: Callable[[], Sequence[np.ndarray]]) -> BpeTokenizer:
        """This vocabulary with its compression measured on ``windows()`` (base codes), unless measured."""
        if self.bases_per_token_mean > 0:
            return self
        return BpeTokenizer(self.text, compression(self, windows())["bases_per_token"], self.source)

    @property
    def name(self) -> str:
        return f"bpe{self.vocab_size}"

    @property
    def spec(self) -> dict[str, Any]:
        return {"type": "bpe", "name": self.name, "json": self.text,
                "bases_per_token_mean": self.bases_per_token_mean}

    def with_params(self, **params: Any) -> BpeTokenizer:
        """BPE has no reading parameters: a k-mer ``stride`` given here is an error."""
        given = {k: v for k, v in params.items() if v is not None}
        if given:
            raise RandomMaskError(f"a BPE tokenizer takes no {', '.join(given)} (k-mer options)")
        return self

    def with_vocab(self, vocab: Sequence[str]) -> BpeTokenizer:
        if list(vocab) != self.vocab:
            raise RandomMaskError("a BPE vocabulary cannot be reordered; start from the same tokenizer.json")
        return self

    # ---------------------------------------------------------------- sizes
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def kmer_ids(self) -> np.ndarray:
        """The ordinary tokens (every non-special id): what a randomly replaced token is drawn from."""
        return self._ordinary

    @property
    def span_unit(self) -> int:
        return 1

    @property
    def bases_per_token(self) -> int:
        """The widest token, in bases (windows cut for inference overlap by this much at least)."""
        return int(self._width.max())

    @property
    def bases_between_tokens(self) -> int:
        return 1

    def num_tokens(self, length: int) -> int:
        """The most tokens ``length`` bases can give: one per base."""
        return max(0, int(length))

    def bases_for_tokens(self, n_tokens: int) -> int:
        """Bases that nearly always give at most ``n_tokens`` tokens: 3/4 of the measured compression (a
        window of DNA rarely compresses that badly; the inference report counts any that did)."""
        if n_tokens <= 0:
            return 0
        return max(n_tokens, int(n_tokens * 0.75 * self._mean()))

    def fill_bases(self, n_tokens: int) -> int:
        """Bases that fill ``n_tokens`` tokens: a quarter more than the measured compression gives, the
        excess cut by truncation (pre-training windows then hold ``n_tokens`` but in unusual DNA)."""
        return max(n_tokens, math.ceil(n_tokens * 1.25 * self._mean())) if n_tokens > 0 else 0

    def _mean(self) -> float:
        if self.bases_per_token_mean <= 0:
            raise RandomMaskError(f"{self.source}: the BPE compression was never measured; pre-train with it (the "
                                  "run measures it on its genome) or learn it with `randommask tokenizer train`")
        return self.bases_per_token_mean

    # ---------------------------------------------------------------- encoding
    def encode_batch(self, seqs: Sequence[str] | Sequence[np.ndarray], max_length: int | None = None,
                     truncation: bool = False, padding: str = "longest") -> Encoding:
        """As `KmerTokenizer.encode_batch`: ``[CLS] tokens [SEP]`` padded, truncation from the 3' end."""
        codes, lengths = code_matrix(seqs)
        texts = [_LETTERS[row[:n]].tobytes().decode("ascii") for row, n in zip(codes, lengths, strict=True)]
        # Without offsets (a third faster): a token's bases follow from the widths, since the file was checked
        # to spell DNA base by base (`_check_spelling`), one [UNK] per N.
        encs = self._tok.encode_batch_fast(texts, add_special_tokens=False) if texts else []
        n_tok, width = fit_lengths(np.array([len(e.ids) for e in encs], dtype=np.int64), max_length, truncation,
                                   padding)
        b = len(encs)
        ids = np.full((b, width), self.pad_id, dtype=np.int32)
        for r, (e, n) in enumerate(zip(encs, n_tok, strict=True)):
            ids[r, 1 : n + 1] = e.ids[:n]
        col = np.arange(width)
        real = (col >= 1) & (col <= n_tok[:, None])
        widths = np.where(real, self._spelt[ids], 0)
        ends = np.cumsum(widths, axis=1)
        spans = np.where(real[..., None], np.stack([ends - widths, ends], axis=-1), -1)
        rows = np.arange(b)
        ids[:, 0] = self.cls_id
        ids[rows, n_tok + 1] = self.sep_id
        end = n_tok[:, None] + 1
        return Encoding(ids=ids, attention_mask=(col <= end).view(np.int8), special_mask=special_columns(col, end),
                        lengths=n_tok, token_spans=spans)

    def encode(self, seq: str | np.ndarray, max_length: int | None = None, truncation: bool = False) -> Encoding:
        return self.encode_batch([seq], max_length=max_length, truncation=truncation)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The DNA a row of ids spells; [UNK] and [MASK] read as one N each, other specials are skipped."""
        out = []
        for i in np.asarray(ids, dtype=np.int64).tolist():
            if not 0 <= i < len(self.vocab):
                raise RandomMaskError(f"token id {i} is outside the vocabulary of {self.source} "
                                      f"(0..{len(self.vocab) - 1})")
            if i in (self.unk_id, self.mask_id):
                out.append("N")
            elif i not in (self.pad_id, self.cls_id, self.sep_id):
                out.append(self.vocab[i])
        return "".join(out)

    def decode_batch(self, ids: np.ndarray) -> list[str]:
        return [self.decode(row) for row in np.asarray(ids)]

    def save_vocab(self, path: str | Path) -> None:
        """``vocab.txt`` (one token a line, id = line number) and the ``tokenizer.json`` beside it."""
        path = Path(path)
        path.write_text("".join(t + "\n" for t in self.vocab))
        (path.parent / TOKENIZER_FILE).write_text(self.text)


def compression(tokenizer: BpeTokenizer, windows: Sequence[np.ndarray]) -> dict[str, float]:
    """Bases per ordinary token over these windows (base codes), with its spread across windows."""
    if not windows:
        raise RandomMaskError("no windows to measure the compression on")
    enc = tokenizer.encode_batch(list(windows))
    per_window = np.array([len(w) for w in windows], dtype=np.float64) / np.maximum(enc.lengths, 1)
    return {"bases_per_token": float(sum(len(w) for w in windows) / max(int(enc.lengths.sum()), 1)),
            "p01_bases_per_token": float(np.quantile(per_window, 0.01)), "windows": len(windows),
            "bases": int(sum(len(w) for w in windows))}


def library_threads() -> str:
    """How many threads the tokenizers library may use (its RAYON_RS_NUM_CPUS, else every core)."""
    return os.environ.get("RAYON_RS_NUM_CPUS") or str(os.cpu_count())
