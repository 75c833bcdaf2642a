"""Genome data pipeline: FASTA reading, a prepared memory-mapped base store, and window sampling.

Three layers, each usable alone:

1. **FASTA reading** (`iter_fasta_chunks`, `read_fasta`). Plain, gzip or bgzip (multi-member gzip)
   files, detected by their magic bytes, not their name. Any line width, LF or CRLF line ends,
   upper- or lowercase (soft-masked) bases. The file is read in chunks of `chunk_bytes` and each chunk
   is converted with numpy, so a 3 Gb genome never exists as a Python ``str``. Sequence lines may hold
   the IUPAC nucleotide codes ``ACGTUNRYSWKMBDHV`` in either case; whitespace is allowed only at the
   ends of a line. Every problem with a file raises `RandomMaskError` naming the file and the line
   (and column, or record) at fault.

2. **Prepared store** (`prepare`, `GenomeStore`). `prepare` writes ``bases.u8`` (one uint8 code per
   base) and ``index.json`` (records, offsets, lengths, N counts) into a folder, atomically: a crash
   leaves either the previous complete store or no ``index.json`` at all, never a half store that
   looks valid. `GenomeStore.open` memory-maps the bases read-only, so any window is an O(1) slice and
   the genome is never loaded whole.

3. **Window sampling** in DNABERT's manner (`SamplerConfig`, `WindowSampler`).

The code table (`BASES`, `str_to_codes`, `codes_to_str`) is defined in `randommask.alphabet`::

    A=0  C=1  G=2  T=3 (U too)  N=4 (N and every other IUPAC ambiguity code)

Sampling and indexing
---------------------
A sampler defines, for one ``(store, config, split)``, an infinite *global* sequence of windows:
window number ``i`` is a pure function of ``(config.seed, split, i)`` and of the store's contents.
Its random numbers come from ``numpy.random.Generator(PCG64(SeedSequence([tag, seed, split, i])))``, so
`WindowSampler.draw` (and `WindowSampler.draw_coords`) can return any window directly: resuming is
exact and needs no saved random state, only a counter.

Ranks own disjoint parts of that sequence: rank ``r`` of ``world_size`` ``W`` owns the global indices
``r, r + W, r + 2W, ...``; its ``k``-th window is global index ``k * W + r``
(`WindowSampler.global_index`). No two ranks ever draw the same index. A training loop with per-rank
batch size ``B`` uses, at step ``s``, the rank-local indices ``s * B + j`` for ``j < B``::

    batch = [sampler.draw(sampler.global_index(s * B + j)) for j in range(B)]

Pre-training's `MaskedBatches` (`randommask.pretrain`) reads this stream, split between DataLoader
workers by whole batches.

Training draws only from the head of each record and evaluation only from its held-out tail (the
last ``heldout_fraction`` of it, rounded to whole bases); a window never crosses that boundary.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from randommask.alphabet import (
    _ALLOWED_MSG,
    _INVALID,
    _LUT,
    BASES,
    N_CODE,
    codes_to_str,
    reverse_complement_codes,
    str_to_codes,
)
from randommask.errors import RandomMaskError
from randommask.files import fsync_dir

__all__ = [
    "BASES",
    "N_CODE",
    "FORMAT_VERSION",
    "GenomeRecord",
    "GenomeStore",
    "SamplerConfig",
    "Window",
    "WindowSampler",
    "codes_to_str",
    "iter_fasta_chunks",
    "prepare",
    "read_fasta",
    "reverse_complement_codes",
    "str_to_codes",
]

# ----------------------------------------------------------------------------------------------
# FASTA reading.

_WS = b" \t\r\x0b\x0c"  # whitespace other than the newline
_WS_AND_NL = _WS + b"\n"
_INTERNAL_WS = re.compile(rb"[^\s][ \t\r\x0b\x0c]+[^\s]")
_LEADING_WS_THEN_BASE = re.compile(rb"[ \t\r\x0b\x0c]+[^\s]")
_GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_BYTES = 1 << 23


def _open_fasta(path: Path) -> tuple[Any, Any]:
    """Open `path` for binary reading, decompressing gzip/bgzip. Returns (stream, raw file)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise RandomMaskError(f"{path}: no such FASTA file") from None
    except IsADirectoryError:
        raise RandomMaskError(f"{path}: is a directory, not a FASTA file") from None
    except OSError as exc:
        raise RandomMaskError(f"{path}: cannot open FASTA file ({exc.strerror or exc})") from None
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise RandomMaskError(f"{path}: cannot read FASTA file ({exc.strerror or exc})") from None
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


def _read_chunk(stream: Any, path: Path, size: int) -> bytes:
    try:
        return stream.read(size)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise RandomMaskError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    except OSError as exc:
        raise RandomMaskError(f"{path}: cannot read FASTA file ({exc.strerror or exc})") from None


class _FastaParser:
    """State of one FASTA file being parsed chunk by chunk (see `iter_fasta_chunks`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 1  # 1-based line number of the first byte of the current buffer
        self.col0 = 0  # bytes of that line already consumed (>0 only mid-line after a base)
        self.name: str | None = None  # the record being read
        self.header_line = 0
        self.n_bases = 0
        self.seen: dict[str, int] = {}  # record name -> header line

    # -- errors ---------------------------------------------------------------------------------

    def _where(self, line: int, col: int | None = None) -> str:
        return f"{self.path}:{line}" + (f":{col}" if col is not None else "")

    def _locate_error(self, seg: bytes, seg_line: int, seg_col0: int) -> RandomMaskError:
        """Find the first bad byte in a sequence segment and describe it (slow path, errors only)."""
        for i, line in enumerate(seg.split(b"\n")):
            colbase = seg_col0 if i == 0 else 0
            lead = len(line) - len(line.lstrip(_WS))
            content = line.strip(_WS)
            if i == 0 and seg_col0 > 0 and lead and content:
                return RandomMaskError(
                    f"{self._where(seg_line, colbase + 1)}: whitespace inside a sequence line in record "
                    f"{self.name!r} (whitespace is allowed only at line ends)"
                )
            codes = _LUT[np.frombuffer(content, dtype=np.uint8)]
            bad = np.flatnonzero(codes == _INVALID)
            if bad.size:
                j = int(bad[0])
                col = colbase + lead + j + 1
                char = chr(content[j])
                if content[j : j + 1] in (b" ", b"\t", b"\r", b"\x0b", b"\x0c"):
                    return RandomMaskError(
                        f"{self._where(seg_line + i, col)}: whitespace inside a sequence line in record "
                        f"{self.name!r} (whitespace is allowed only at line ends)"
                    )
                return RandomMaskError(
                    f"{self._where(seg_line + i, col)}: invalid character {char!r} in record "
                    f"{self.name!r} ({_ALLOWED_MSG})"
                )
        raise AssertionError("sequence segment flagged invalid, but no bad byte found")  # pragma: no cover

    # -- records --------------------------------------------------------------------------------

    def _close_record(self) -> None:
        if self.name is not None and self.n_bases == 0:
            raise RandomMaskError(f"{self._where(self.header_line)}: record {self.name!r} has no bases")

    def _header(self, line_bytes: bytes, line: int) -> None:
        self._close_record()
        words = line_bytes[1:].split(None, 1)
        if not words:
            raise RandomMaskError(f"{self._where(line)}: FASTA header '>' has no record name")
        name = words[0].decode("utf-8", errors="replace")
        if name in self.seen:
            raise RandomMaskError(
                f"{self._where(line)}: duplicate record name {name!r} (first at line {self.seen[name]})"
            )
        self.seen[name] = line
        self.name = name
        self.header_line = line
        self.n_bases = 0

    def _sequence(self, seg: bytes, seg_line: int, seg_col0: int) -> np.ndarray | None:
        if self.name is None:
            stripped = seg.lstrip(_WS_AND_NL)
            if stripped:
                line = seg_line + seg.count(b"\n", 0, len(seg) - len(stripped))
                raise RandomMaskError(f"{self._where(line)}: sequence before the first '>' header (not a FASTA file?)")
            return None
        bad_ws = False
        if any(w in seg for w in (b" ", b"\t", b"\x0b", b"\x0c")) or (
            b"\r" in seg and seg.count(b"\r") != seg.count(b"\r\n")
        ):
            bad_ws = _INTERNAL_WS.search(seg) is not None
        if seg_col0 > 0 and _LEADING_WS_THEN_BASE.match(seg):
            bad_ws = True
        clean = seg.translate(None, _WS_AND_NL)
        codes = _LUT[np.frombuffer(clean, dtype=np.uint8)]
        if bad_ws or (codes.size and codes.max() == _INVALID):
            raise self._locate_error(seg, seg_line, seg_col0)
        if not codes.size:
            return None
        self.n_bases += codes.size
        return codes

    def feed(self, buf: bytes) -> Iterator[tuple[str, np.ndarray]]:
        """Parse `buf`, which starts where the last one ended and ends at a line end, at EOF, or
        (in a sequence line) right after a base."""
        pos, n = 0, len(buf)
        while pos < n:
            at_line_start = pos > 0 or self.col0 == 0
            if at_line_start and buf.startswith(b">", pos):
                eol = buf.find(b"\n", pos)
                eol = n if eol < 0 else eol
                self._header(buf[pos:eol].rstrip(_WS), self.line)
                if eol < n:
                    self.line += 1
                pos = eol + 1
                continue
            nxt = buf.find(b"\n>", pos)
            end = n if nxt < 0 else nxt + 1
            col0 = self.col0 if pos == 0 else 0
            codes = self._sequence(buf[pos:end], self.line, col0)
            if codes is not None:
                assert self.name is not None
                yield self.name, codes
            self.line += buf.count(b"\n", pos, end)
            pos = end

    def finish(self) -> None:
        self._close_record()
        if self.name is None:
            raise RandomMaskError(f"{self.path}: empty FASTA file (no '>' record)")


def iter_fasta_chunks(
    path: str | os.PathLike[str],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Stream a FASTA file as ``(record name, uint8 codes)`` pieces, in file order.

    A record arrives as one or more consecutive pieces with its name (names are unique within a
    file, so a new name means a new record); no piece is empty. Memory use is about `chunk_bytes`
    plus the longest header, whatever the line width. `on_progress(n)` is called with the number of
    (compressed) file bytes read since the last call. The record name is the first word after ``>``.
    """
    path = Path(path)
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    stream, raw = _open_fasta(path)
    parser = _FastaParser(path)
    leftover = b""
    last_pos = 0
    with contextlib.ExitStack() as stack:
        stack.callback(raw.close)
        if stream is not raw:
            stack.callback(stream.close)
        while True:
            chunk = _read_chunk(stream, path, chunk_bytes)
            if on_progress is not None:
                pos = raw.tell()
                on_progress(pos - last_pos)
                last_pos = pos
            if not chunk:
                if leftover:
                    yield from parser.feed(leftover)
                break
            buf = leftover + chunk if leftover else chunk
            nl = buf.rfind(b"\n")
            partial_start = nl + 1
            partial = buf[partial_start:]
            partial_at_line_start = nl >= 0 or parser.col0 == 0
            if not partial:
                cut = len(buf)
            elif partial_at_line_start and partial.startswith(b">"):
                cut = partial_start  # keep an unfinished header whole
            else:
                content = partial.rstrip(_WS)
                # Process up to the last base of an unfinished sequence line (so a one-line genome
                # streams too); keep trailing whitespace to check it against what follows.
                cut = partial_start + len(content) if content else partial_start
            leftover = buf[cut:]
            if cut:
                yield from parser.feed(buf[:cut])
                if cut > partial_start:  # stopped mid-line, right after a base
                    line_col = parser.col0 if nl < 0 else 0
                    parser.col0 = line_col + (cut - partial_start)
                elif nl >= 0:
                    parser.col0 = 0
    parser.finish()


def read_fasta(
    path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, codes)`` for each record of a FASTA file, one whole record at a time.

    Holds one record in memory (as uint8 codes); use `prepare` for whole genomes.
    """
    name: str | None = None
    parts: list[np.ndarray] = []
    for piece_name, codes in iter_fasta_chunks(path, chunk_bytes=chunk_bytes):
        if piece_name != name:
            if name is not None:
                yield name, np.concatenate(parts)
            name, parts = piece_name, []
        parts.append(codes)
    if name is not None:
        yield name, np.concatenate(parts)


# ----------------------------------------------------------------------------------------------
# Prepared store.

FORMAT_NAME = "randommask-genome"
FORMAT_VERSION = 1
BASES_FILE = "bases.u8"
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class GenomeRecord:
    """One FASTA record in a store: its bases are ``bases.u8[offset : offset + length]``."""

    name: str
    source: str
    offset: int
    length: int
    n_count: int


def prepare(
    fasta_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    progress: bool = False,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> GenomeStore:
    """Convert FASTA files into a store in `out_dir` and open it.

    Writes ``bases.u8`` and ``index.json`` under temporary names, then removes any old
    ``index.json``, renames the bases into place and renames the index last: a crash at any point
    leaves no ``index.json`` that does not match its ``bases.u8``. Record names must be unique
    across all files. `progress` shows a progress bar (tqdm) over the input bytes.
    """
    paths = [Path(p) for p in fasta_paths]
    if not paths:
        raise RandomMaskError("prepare: no FASTA files given")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RandomMaskError(f"{out}: cannot create store folder ({exc.strerror or exc})") from None
    tmp_bases = out / f".{BASES_FILE}.tmp-{os.getpid()}"
    tmp_index = out / f".{INDEX_FILE}.tmp-{os.getpid()}"

    bar = None
    if progress:
        from tqdm import tqdm

        total = 0
        for p in paths:
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="prepare genome")

    records: list[dict[str, Any]] = []
    where: dict[str, str] = {}
    offset = 0
    try:
        with open(tmp_bases, "wb") as fh:
            for path in paths:
                current: dict[str, Any] | None = None
                for name, codes in iter_fasta_chunks(
                    path, chunk_bytes=chunk_bytes, on_progress=bar.update if bar is not None else None
                ):
                    if current is None or current["name"] != name:
                        if name in where:
                            raise RandomMaskError(f"{path}: record name {name!r} already used in {where[name]}")
                        where[name] = str(path)
                        current = {
                            "name": name,
                            "source": str(path),
                            "offset": offset,
                            "length": 0,
                            "n_count": 0,
                        }
                        records.append(current)
                    fh.write(codes.tobytes())
                    current["length"] += int(codes.size)
                    current["n_count"] += int(np.count_nonzero(codes == N_CODE))
                    offset += int(codes.size)
            fh.flush()
            os.fsync(fh.fileno())
        index = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "bases_file": BASES_FILE,
            "code_table": BASES,
            "total_length": offset,
            "records": records,
        }
        with open(tmp_index, "w", encoding="utf-8") as fh:
            json.dump(index, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        (out / INDEX_FILE).unlink(missing_ok=True)
        fsync_dir(out)
        os.replace(tmp_bases, out / BASES_FILE)
        fsync_dir(out)
        os.replace(tmp_index, out / INDEX_FILE)
        fsync_dir(out)
    except OSError as exc:
        raise RandomMaskError(f"{out}: cannot write genome store ({exc.strerror or exc})") from None
    finally:
        if bar is not None:
            bar.close()
        tmp_bases.unlink(missing_ok=True)
        tmp_index.unlink(missing_ok=True)
    return GenomeStore.open(out)


class GenomeStore:
    """A prepared genome: read-only memory-mapped base codes plus the record index.

    Open with `GenomeStore.open`. Pickles as its folder path (DataLoader workers re-map the file),
    never as the bases.
    """

    def __init__(self, path: Path, records: Sequence[GenomeRecord], bases: np.ndarray) -> None:
        self.path = path
        self.records: tuple[GenomeRecord, ...] = tuple(records)
        self._bases = bases
        self._by_name = {r.name: i for i, r in enumerate(self.records)}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> GenomeStore:
        """Open and validate the store in folder `path`."""
        path = Path(path)
        index_path = path / INDEX_FILE
        if not path.is_dir():
            raise RandomMaskError(f"{path}: no such genome store folder")
        if not index_path.is_file():
            raise RandomMaskError(f"{index_path}: missing (not a prepared genome store, or incomplete)")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RandomMaskError(f"{index_path}: unreadable store index ({exc})") from None

        def bad(what: str) -> RandomMaskError:
            return RandomMaskError(f"{index_path}: invalid store index: {what}")

        if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
            raise bad(f"format is not {FORMAT_NAME!r}")
        if index.get("version") != FORMAT_VERSION:
            raise bad(f"version {index.get('version')!r}, this randommask reads version {FORMAT_VERSION}")
        if index.get("code_table") != BASES:
            raise bad(f"code table {index.get('code_table')!r}, expected {BASES!r}")
        raw_records = index.get("records")
        if not isinstance(raw_records, list) or not raw_records:
            raise bad("no records")
        records = []
        offset = 0
        for i, r in enumerate(raw_records):
            try:
                rec = GenomeRecord(str(r["name"]), str(r["source"]), r["offset"], r["length"], r["n_count"])
            except (KeyError, TypeError):
                raise bad(f"record {i} lacks name/source/offset/length/n_count") from None
            ints = (rec.offset, rec.length, rec.n_count)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
                raise bad(f"record {rec.name!r} has non-integer fields")
            if rec.offset != offset or rec.length < 1 or not 0 <= rec.n_count <= rec.length:
                raise bad(f"record {rec.name!r} has inconsistent offset/length/n_count")
            records.append(rec)
            offset += rec.length
        if index.get("total_length") != offset:
            raise bad(f"total_length {index.get('total_length')!r} != sum of record lengths {offset}")
        bases_path = path / str(index.get("bases_file", BASES_FILE))
        try:
            size = bases_path.stat().st_size
        except OSError:
            raise RandomMaskError(f"{bases_path}: missing (genome store incomplete)") from None
        if size != offset:
            raise RandomMaskError(
                f"{bases_path}: size {size} bytes does not match the index ({offset} bases); "
                "the store is corrupt, prepare it again"
            )
        try:
            bases = np.memmap(bases_path, dtype=np.uint8, mode="r", shape=(offset,))
        except (OSError, ValueError) as exc:
            raise RandomMaskError(f"{bases_path}: cannot memory-map ({exc})") from None
        return cls(path, records, bases)

    # Pickle as a path: workers re-open the memory map instead of copying the genome.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = GenomeStore.open(state["path"])
        self.__dict__.update(other.__dict__)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"GenomeStore({str(self.path)!r}, {len(self.records)} records, {self.total_length} bp)"

    @property
    def total_length(self) -> int:
        """Number of bases over all records."""
        return int(self._bases.shape[0])

    @property
    def n_count(self) -> int:
        """Number of N (and other ambiguity) codes over all records."""
        return sum(r.n_count for r in self.records)

    def record_index(self, name: str) -> int:
        """Index in `records` of the record called `name`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise RandomMaskError(f"{self.path}: no record named {name!r}") from None

    def record_codes(self, record_idx: int) -> np.ndarray:
        """The whole record as a read-only memory-mapped view (no copy)."""
        rec = self.records[record_idx]
        return self._bases[rec.offset : rec.offset + rec.length]

    def window(self, record_idx: int, start: int, length: int) -> np.ndarray:
        """Codes ``[start, start + length)`` of record `record_idx`, as a new uint8 array."""
        rec = self.records[record_idx]
        if length < 0 or start < 0 or start + length > rec.length:
            raise ValueError(f"window [{start}, {start + length}) outside record {rec.name!r} of length {rec.length}")
        return np.array(self._bases[rec.offset + start : rec.offset + start + length])

    def close(self) -> None:
        """Drop the memory map (the store is unusable afterwards)."""
        mm = getattr(self._bases, "_mmap", None)
        self._bases = np.empty(0, dtype=np.uint8)
        if mm is not None:
            with contextlib.suppress(BufferError):
                mm.close()


# ----------------------------------------------------------------------------------------------
# Window sampling.

_SEED_TAG = 0x47454E4F  # "GENO": keeps these streams apart from other uses of the same seed
_SPLITS = {"train": 0, "eval": 1}
_EVAL_FIXED = 2


@dataclass
class SamplerConfig:
    """How `WindowSampler` draws windows.

    - `window_nt`: full window length in nucleotides (the caller derives it from its token count).
    - `short_prob`: probability that a window gets a random shorter length, uniform in
      ``[min_window_nt, window_nt]`` (DNABERT's trick so the model also sees short inputs).
    - `min_window_nt`: shortest such length; None means ``max(1, window_nt // 8)``.
    - `max_n_fraction`: a window with more than this fraction of N codes is dropped and redrawn.
    - `reverse_complement_prob`: probability that a window is reverse-complemented (0.5 to use).
    - `heldout_fraction`: the last ``round(length * heldout_fraction)`` bases of each record are
      held out: never drawn for training, the only bases drawn for evaluation.
    - `seed`: the non-negative seed of every stream.
    - `max_redraws`: draws per window before giving up with `RandomMaskError`.
    """

    window_nt: int
    short_prob: float = 0.1
    min_window_nt: int | None = None
    max_n_fraction: float = 0.05
    reverse_complement_prob: float = 0.0
    heldout_fraction: float = 0.01
    seed: int = 0
    max_redraws: int = 1000

    def __post_init__(self) -> None:
        def bad(msg: str) -> RandomMaskError:
            return RandomMaskError(f"sampler config: {msg}")

        if not isinstance(self.window_nt, int) or self.window_nt < 1:
            raise bad(f"window_nt must be a positive integer, got {self.window_nt!r}")
        if self.min_window_nt is None:
            self.min_window_nt = max(1, self.window_nt // 8)
        if not isinstance(self.min_window_nt, int) or not 1 <= self.min_window_nt <= self.window_nt:
            raise bad(f"min_window_nt must be in 1..window_nt={self.window_nt}, got {self.min_window_nt!r}")
        for name in ("short_prob", "max_n_fraction", "reverse_complement_prob", "heldout_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise bad(f"{name} must be between 0 and 1, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.max_redraws, int) or self.max_redraws < 1:
            raise bad(f"max_redraws must be a positive integer, got {self.max_redraws!r}")


@dataclass(frozen=True)
class Window:
    """Where a window comes from: bases ``[start, start + length)`` of store record `record`
    (forward-strand coordinates), reverse-complemented when `reverse`. `index` is its global index
    (-1 for `WindowSampler.eval_coords` windows)."""

    index: int
    record: int
    start: int
    length: int
    reverse: bool


class WindowSampler:
    """Deterministic random windows from a `GenomeStore` (see the module docstring for indexing).

    `split` is ``"train"`` (heads of records) or ``"eval"`` (held-out tails). Records whose region
    for the split is shorter than ``window_nt`` are skipped; the others are chosen with probability
    proportional to their number of full-window start positions, so every start position of the
    split is equally likely.
    """

    def __init__(
        self,
        store: GenomeStore,
        config: SamplerConfig,
        split: str = "train",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if split not in _SPLITS:
            raise RandomMaskError(f"sampler: split must be 'train' or 'eval', got {split!r}")
        if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
            raise RandomMaskError(f"sampler: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.store = store
        self.config = config
        self.split = split
        self.rank = rank
        self.world_size = world_size
        self._tables = {s: self._region_table(s) for s in _SPLITS}
        if self._tables[split] is None:
            raise self._nothing_sampleable(split)

    # -- regions --------------------------------------------------------------------------------

    def boundary(self, record_idx: int) -> int:
        """Start of the held-out tail of a record: ``length - round(length * heldout_fraction)``."""
        length = self.store.records[record_idx].length
        tail = min(length, math.floor(length * self.config.heldout_fraction + 0.5))
        return length - tail

    def region(self, record_idx: int, split: str | None = None) -> tuple[int, int]:
        """``(lo, hi)``: the bases of a record that `split` (default: this sampler's) may use."""
        b = self.boundary(record_idx)
        length = self.store.records[record_idx].length
        return (0, b) if (split or self.split) == "train" else (b, length)

    def _region_table(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        w = self.config.window_nt
        recs, los, his, weights = [], [], [], []
        for i in range(len(self.store.records)):
            lo, hi = self.region(i, split)
            if hi - lo >= w:
                recs.append(i)
                los.append(lo)
                his.append(hi)
                weights.append(hi - lo - w + 1)
        if not recs:
            return None
        return (
            np.array(recs),
            np.array(los, dtype=np.int64),
            np.array(his, dtype=np.int64),
            np.cumsum(np.array(weights, dtype=np.int64)),
        )

    def _nothing_sampleable(self, split: str) -> RandomMaskError:
        longest = max(r.length for r in self.store.records)
        return RandomMaskError(
            f"{self.store.path}: no record has a {split} region of at least window_nt="
            f"{self.config.window_nt} bases (heldout_fraction={self.config.heldout_fraction}, "
            f"{len(self.store.records)} records, longest {longest} bases)"
        )

    @property
    def eligible_records(self) -> tuple[int, ...]:
        """Store indices of the records this sampler's split can draw from."""
        table = self._tables[self.split]
        assert table is not None
        return tuple(int(r) for r in table[0])

    # -- drawing --------------------------------------------------------------------------------

    def global_index(self, local_index: int) -> int:
        """Global index of this rank's `local_index`-th window: ``local_index * world_size + rank``."""
        if local_index < 0:
            raise ValueError("local_index must be >= 0")
        return local_index * self.world_size + self.rank

    def _draw(self, index: int, split: str, stream: int, allow_variation: bool) -> tuple[Window, np.ndarray]:
        if index < 0:
            raise ValueError("window index must be >= 0")
        table = self._tables[split]
        if table is None:
            raise self._nothing_sampleable(split)
        recs, los, his, cum = table
        cfg = self.config
        seq = np.random.SeedSequence([_SEED_TAG, cfg.seed, stream, index])
        rng = np.random.Generator(np.random.PCG64(seq))
        total = int(cum[-1])
        for _ in range(cfg.max_redraws):
            length = cfg.window_nt
            if allow_variation and cfg.short_prob > 0 and rng.random() < cfg.short_prob:
                length = int(rng.integers(cfg.min_window_nt, cfg.window_nt + 1))
            k = int(np.searchsorted(cum, int(rng.integers(total)), side="right"))
            lo, hi = int(los[k]), int(his[k])
            start = lo + int(rng.integers(hi - lo - length + 1))
            rc_prob = cfg.reverse_complement_prob if allow_variation else 0.0
            reverse = bool(rc_prob > 0 and rng.random() < rc_prob)
            codes = self.store.window(int(recs[k]), start, length)
            if np.count_nonzero(codes == N_CODE) <= cfg.max_n_fraction * length:
                if reverse:
                    codes = reverse_complement_codes(codes)
                return Window(index, int(recs[k]), start, length, reverse), codes
        raise RandomMaskError(
            f"{self.store.path}: no {split} window of {cfg.window_nt} nt with at most "
            f"{cfg.max_n_fraction:.0%} N found in {cfg.max_redraws} draws (window index {index}); "
            "the genome is mostly N or max_n_fraction is too low"
        )

    def draw_window(self, index: int) -> tuple[Window, np.ndarray]:
        """Window number `index` of the global stream: its coordinates and codes."""
        return self._draw(index, self.split, _SPLITS[self.split], True)

    def draw(self, index: int) -> np.ndarray:
        """Codes (uint8, reverse-complemented if so drawn) of window number `index` of the global
        stream of ``(seed, split)``. Pure: the same index always gives the same window."""
        return self.draw_window(index)[1]

    def draw_coords(self, index: int) -> Window:
        """Coordinates of window number `index` (see `draw`)."""
        return self.draw_window(index)[0]

    def iter_windows(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[Window, np.ndarray]]:
        """This rank's windows with local indices ``start, start + 1, ...`` (up to `stop`)."""
        k = start
        while stop is None or k < stop:
            yield self.draw_window(self.global_index(k))
            k += 1

    def eval_coords(self, n: int) -> list[Window]:
        """`n` fixed evaluation windows: full length, forward strand, from the held-out tails.

        The same for every rank, world size and split (they depend only on the store and
        ``seed``, ``window_nt``, ``heldout_fraction`` and ``max_n_fraction``); shard them yourself if
        ranks should evaluate different windows.
        """
        return [self._draw(i, "eval", _EVAL_FIXED, False)[0] for i in range(n)]

    def eval_windows(self, n: int) -> list[np.ndarray]:
        """The codes of `eval_coords(n)`."""
        return [self._draw(i, "eval", _EVAL_FIXED, False)[1] for i in range(n)]


def held_out_windows(store: GenomeStore, window_nt: int, n: int, seed: int, max_n_fraction: float,
                     heldout_fraction: float) -> list[np.ndarray]:
    """The first ``n`` held-out evaluation windows of a run, defined once: pre-training evaluates on them,
    and analyze and the demo measure on the same ones. They depend only on the store, the window length,
    the N threshold, the held-out share and the seed (never on short windows or strands)."""
    scfg = SamplerConfig(window_nt=window_nt, short_prob=0.0, max_n_fraction=max_n_fraction,
                         heldout_fraction=heldout_fraction, seed=seed)
    return WindowSampler(store, scfg, "eval").eval_windows(n)
