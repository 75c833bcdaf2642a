"""Tests of randommask.genome: FASTA reading, the prepared store and the window sampler."""

from __future__ import annotations

import gzip
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from randommask.errors import RandomMaskError
from randommask.genome import (
    BASES,
    N_CODE,
    GenomeStore,
    SamplerConfig,
    WindowSampler,
    codes_to_str,
    iter_fasta_chunks,
    prepare,
    read_fasta,
    reverse_complement_codes,
    str_to_codes,
)
from realdata import chr20

IUPAC = "ACGTUNRYSWKMBDHV"
# An independent statement of the code table, to check the module's one against.
EXPECTED_CODE = {"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}


def expected_codes(seq: str) -> np.ndarray:
    return np.array([EXPECTED_CODE.get(c, 4) for c in seq.upper()], dtype=np.uint8)


def format_fasta(
    records: list[tuple[str, str]],
    width: int = 60,
    newline: str = "\n",
    trailing_ws: str = "",
    blank_lines: bool = False,
    final_newline: bool = True,
) -> str:
    lines = []
    for name, seq in records:
        lines.append(f">{name} some description")
        step = width if width > 0 else max(1, len(seq))
        for i in range(0, len(seq), step):
            lines.append(seq[i : i + step] + trailing_ws)
        if blank_lines:
            lines.append("")
    text = newline.join(lines)
    return text + newline if final_newline else text


def write_fasta(path: Path, text: str | bytes, compression: str = "plain") -> Path:
    data = text.encode("latin-1") if isinstance(text, str) else text
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "bgzip":  # several gzip members plus an empty one at the end, like bgzip
        cuts = [0, len(data) // 3, len(data) // 2 + 1, len(data)]
        data = b"".join(gzip.compress(data[a:b]) for a, b in zip(cuts, cuts[1:], strict=False))
        data += gzip.compress(b"")
    path.write_bytes(data)
    return path


def random_seq(rng: np.random.Generator, n: int, alphabet: str = "ACGT") -> str:
    letters = np.frombuffer(alphabet.encode(), dtype=np.uint8)
    return letters[rng.integers(len(letters), size=n)].tobytes().decode()


# ----------------------------------------------------------------------------------------------
# Code table


def test_code_table_round_trip_and_iupac():
    assert BASES == "ACGTN" and N_CODE == 4
    assert str_to_codes("ACGTN").tolist() == [0, 1, 2, 3, 4]
    assert str_to_codes("acgtn").tolist() == [0, 1, 2, 3, 4]
    assert str_to_codes(b"Uu").tolist() == [3, 3]
    # Every ambiguity code, either case, is N.
    amb = "NRYSWKMBDHV"
    assert (str_to_codes(amb + amb.lower()) == N_CODE).all()
    assert codes_to_str(str_to_codes("ACGTRYacgtu")) == "ACGTNNACGTT"
    assert str_to_codes("").size == 0 and codes_to_str(np.zeros(0, np.uint8)) == ""
    with pytest.raises(ValueError):
        codes_to_str(np.array([5], dtype=np.uint8))


@pytest.mark.parametrize(
    ("seq", "char", "pos"), [("ACGX", "'X'", 3), ("-ACG", "'-'", 0), ("AC GT", "' '", 2), ("ACéG", "'é'", 2)]
)
def test_str_to_codes_invalid_names_char_and_position(seq, char, pos):
    with pytest.raises(RandomMaskError, match=f"{char} at position {pos + 1}"):
        str_to_codes(seq)
    with pytest.raises(RandomMaskError, match="^dev.csv line 7: "):
        str_to_codes(seq, where="dev.csv line 7")


def test_reverse_complement():
    assert codes_to_str(reverse_complement_codes(str_to_codes("AACGTN"))) == "NACGTT"
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=1000).astype(np.uint8)
    assert np.array_equal(reverse_complement_codes(reverse_complement_codes(codes)), codes)


# ----------------------------------------------------------------------------------------------
# FASTA reading and the store: round trips


@pytest.mark.parametrize("compression", ["plain", "gzip", "bgzip"])
@pytest.mark.parametrize(
    ("width", "newline", "trailing_ws"), [(60, "\n", ""), (7, "\r\n", ""), (0, "\n", " \t"), (61, "\r\n", " ")]
)
@pytest.mark.parametrize("chunk_bytes", [5, 1 << 20])
def test_round_trip(tmp_path, compression, width, newline, trailing_ws, chunk_bytes):
    rng = np.random.default_rng(1)
    records = [
        ("chr1", random_seq(rng, 1000).lower() + random_seq(rng, 500)),  # soft-masked part
        ("chrM", random_seq(rng, 1, IUPAC)),
        ("scaffold_3", random_seq(rng, 777, IUPAC + IUPAC.lower())),
    ]
    text = format_fasta(records, width, newline, trailing_ws, blank_lines=True)
    fasta = write_fasta(tmp_path / "g.fa", text, compression)
    got = list(read_fasta(fasta, chunk_bytes=chunk_bytes))
    assert [name for name, _ in got] == [name for name, _ in records]
    for (_, seq), (_, codes) in zip(records, got, strict=True):
        assert np.array_equal(codes, expected_codes(seq))

    store = prepare([fasta], tmp_path / "store", chunk_bytes=chunk_bytes)
    assert [r.name for r in store.records] == ["chr1", "chrM", "scaffold_3"]
    assert store.total_length == sum(len(s) for _, s in records)
    for i, (_, seq) in enumerate(records):
        exp = expected_codes(seq)
        rec = store.records[i]
        assert rec.length == len(seq) and rec.n_count == int((exp == 4).sum())
        assert rec.source == str(fasta)
        assert np.array_equal(store.window(i, 0, rec.length), exp)
        assert store.window(i, rec.length, 0).size == 0
    assert np.array_equal(store.window(0, 100, 50), expected_codes(records[0][1][100:150]))


def test_iter_fasta_chunks_streams_a_one_line_genome(tmp_path):
    """A record on one (long) line arrives in pieces of about chunk_bytes, not as one line."""
    rng = np.random.default_rng(2)
    seq = random_seq(rng, 10_000)
    fasta = write_fasta(tmp_path / "one.fa", f">one\n{seq}", "gzip")
    pieces = list(iter_fasta_chunks(fasta, chunk_bytes=1000))
    assert len(pieces) >= 10 and max(len(c) for _, c in pieces) <= 1000
    assert {n for n, _ in pieces} == {"one"}
    assert np.array_equal(np.concatenate([c for _, c in pieces]), expected_codes(seq))


fasta_records = st.lists(
    st.tuples(
        st.text("abcXYZ019_.|-", min_size=1, max_size=8),
        st.text(IUPAC + IUPAC.lower(), min_size=1, max_size=300),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda r: r[0],
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=fasta_records,
    width=st.integers(0, 80),
    newline=st.sampled_from(["\n", "\r\n"]),
    trailing_ws=st.sampled_from(["", " ", "\t "]),
    blank_lines=st.booleans(),
    final_newline=st.booleans(),
    compression=st.sampled_from(["plain", "gzip", "bgzip"]),
    chunk_bytes=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_round_trip_property(
    records, width, newline, trailing_ws, blank_lines, final_newline, compression, chunk_bytes
):
    text = format_fasta(records, width, newline, trailing_ws, blank_lines, final_newline)
    with tempfile.TemporaryDirectory() as tmp:
        fasta = write_fasta(Path(tmp) / "g.fa", text, compression)
        got = list(read_fasta(fasta, chunk_bytes=chunk_bytes))
        assert [n for n, _ in got] == [n for n, _ in records]
        for (_, seq), (_, codes) in zip(records, got, strict=True):
            assert np.array_equal(codes, expected_codes(seq))
        store = prepare([fasta], Path(tmp) / "store", chunk_bytes=chunk_bytes)
        for i, (_, seq) in enumerate(records):
            assert np.array_equal(store.record_codes(i), expected_codes(seq))


@settings(max_examples=60, deadline=None)
@given(
    records=fasta_records,
    width=st.integers(1, 40),
    newline=st.sampled_from(["\n", "\r\n"]),
    bad=st.sampled_from(["X", "*", "1", "-", ".", "é", ">"]),
    where=st.floats(0, 1, exclude_max=True),
    chunk_bytes=st.sampled_from([1, 3, 7, 64, 1 << 20]),
    compression=st.sampled_from(["plain", "gzip"]),
)
def test_invalid_character_reports_line_and_column_property(
    records, width, newline, bad, where, chunk_bytes, compression
):
    lines = format_fasta(records, width, newline).split(newline)[:-1]
    seq_lines = [i for i, line in enumerate(lines) if not line.startswith(">")]
    line_idx = seq_lines[int(where * len(seq_lines))]
    col = int(where * 997) % len(lines[line_idx])
    assume(not (bad == ">" and col == 0))  # that would be a header
    lines[line_idx] = lines[line_idx][:col] + bad + lines[line_idx][col + 1 :]
    text = newline.join(lines) + newline
    with tempfile.TemporaryDirectory() as tmp:
        fasta = write_fasta(Path(tmp) / "bad.fa", text, compression)
        with pytest.raises(RandomMaskError) as err:
            list(iter_fasta_chunks(fasta, chunk_bytes=chunk_bytes))
    msg = str(err.value)
    assert f"bad.fa:{line_idx + 1}:{col + 1}: invalid character {bad!r}" in msg
    assert "\n" not in msg


# ----------------------------------------------------------------------------------------------
# FASTA reading: bad input


@pytest.mark.parametrize("compression", ["plain", "gzip"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", ["empty FASTA file"]),
        (b"\n \n\r\n", ["empty FASTA file"]),
        (b"ACGT\n>a\nACGT\n", [":1: sequence before the first '>' header"]),
        (b"\n\nACGT\n>a\nACGT\n", [":3: sequence before the first '>' header"]),
        (b">a\n>b\nACGT\n", [":1: record 'a' has no bases"]),
        (b">a\nACGT\n>b\n\n", [":3: record 'b' has no bases"]),
        (b">a\nACGT\n>b", [":3: record 'b' has no bases"]),
        (b">a x\nAC\n>b\nAC\n>a y\nGG\n", [":5: duplicate record name 'a' (first at line 1)"]),
        (b">a\nACGT\nAC*T\n", [":3:3: invalid character '*' in record 'a'"]),
        (b">a\r\nACGT\r\nACGT1\r\n", [":3:5: invalid character '1'"]),
        (b">a\nAC-GT\n", [":2:3: invalid character '-'"]),
        (b">a\nACGT>b\nAC\n", [":2:5: invalid character '>'"]),
        (b">a\nAC GT\n", [":2:3: whitespace inside a sequence line"]),
        (b">a\nACGT\n  AC\tGT  \n", [":3:5: whitespace inside a sequence line"]),
        (b">a\nAC\rGT\n", [":2:3: whitespace inside a sequence line"]),
        (b">\nACGT\n", [":1: FASTA header '>' has no record name"]),
        (b"\x89PNG\r\n\x1a\n", [":1: sequence before the first '>' header"]),
    ],
)
def test_bad_fasta(tmp_path, content, expected, compression):
    fasta = write_fasta(tmp_path / "input.fa", content, compression)
    for chunk_bytes in (1, 4, 1 << 20):
        with pytest.raises(RandomMaskError) as err:
            list(iter_fasta_chunks(fasta, chunk_bytes=chunk_bytes))
        msg = str(err.value)
        assert str(fasta) in msg
        for part in expected:
            assert part in msg, msg
        assert "\n" not in msg
    with pytest.raises(RandomMaskError, match="input.fa"):
        prepare([fasta], tmp_path / "store")


def test_whitespace_split_across_chunks_is_still_an_error(tmp_path):
    fasta = write_fasta(tmp_path / "ws.fa", b">a\nACGT  ACGT\n")
    for chunk_bytes in range(1, 16):
        with pytest.raises(RandomMaskError, match=r"ws.fa:2:5: whitespace inside"):
            list(iter_fasta_chunks(fasta, chunk_bytes=chunk_bytes))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RandomMaskError, match=r"nope\.fa: no such FASTA file"):
        list(read_fasta(tmp_path / "nope.fa"))
    with pytest.raises(RandomMaskError, match=r"nope\.fa: no such FASTA file"):
        prepare([tmp_path / "nope.fa"], tmp_path / "store")
    with pytest.raises(RandomMaskError, match="is a directory"):
        list(read_fasta(tmp_path))
    with pytest.raises(RandomMaskError, match="no FASTA files"):
        prepare([], tmp_path / "store")


@pytest.mark.parametrize("cut", ["half", "trailer", "garbage"])
def test_truncated_or_corrupt_gzip(tmp_path, cut):
    rng = np.random.default_rng(3)
    data = gzip.compress(format_fasta([("a", random_seq(rng, 200_000))]).encode())
    if cut == "half":
        data = data[: len(data) // 2]
    elif cut == "trailer":
        data = data[:-4]
    else:
        data = b"\x1f\x8b" + bytes(rng.integers(0, 256, size=100, dtype=np.uint8))
    fasta = write_fasta(tmp_path / "broken.fa.gz", data)
    with pytest.raises(RandomMaskError, match=r"broken\.fa\.gz: corrupt or truncated gzip file"):
        list(read_fasta(fasta))
    with pytest.raises(RandomMaskError, match=r"broken\.fa\.gz: corrupt or truncated gzip"):
        prepare([fasta], tmp_path / "store")
    assert list((tmp_path / "store").iterdir()) == []  # no half store, no temp files


# ----------------------------------------------------------------------------------------------
# The store


@pytest.fixture
def small_store(tmp_path):
    rng = np.random.default_rng(4)
    a = write_fasta(tmp_path / "a.fa", format_fasta([("x", random_seq(rng, 500)), ("y", "ACGTN" * 20)]))
    b = write_fasta(tmp_path / "b.fa.gz", format_fasta([("z", random_seq(rng, 300))]), "gzip")
    return prepare([a, b], tmp_path / "store")


def test_store_index_and_files(small_store):
    store = small_store
    names = [p.name for p in store.path.iterdir()]
    assert sorted(names) == ["bases.u8", "index.json"]  # temp files renamed away
    index = json.loads((store.path / "index.json").read_text())
    assert index["version"] == 1 and index["total_length"] == 900
    assert [(r["name"], r["offset"], r["length"], r["n_count"]) for r in index["records"]] == [
        ("x", 0, 500, 0),
        ("y", 500, 100, 20),
        ("z", 600, 300, 0),
    ]
    assert index["records"][2]["source"].endswith("b.fa.gz")
    assert (store.path / "bases.u8").stat().st_size == 900
    assert store.total_length == 900 and len(store) == 3 and store.n_count == 20
    assert store.record_index("z") == 2
    with pytest.raises(RandomMaskError, match="no record named 'q'"):
        store.record_index("q")
    assert codes_to_str(store.window(1, 3, 6)) == "TNACGT"
    for bad in [(0, -1, 5), (0, 498, 3), (1, 0, 101)]:
        with pytest.raises(ValueError, match="outside record"):
            store.window(*bad)
    # Memory-mapped and read-only; window() returns a private, writable copy.
    assert isinstance(store.record_codes(0), np.memmap) and not store.record_codes(0).flags.writeable
    w = store.window(0, 0, 10)
    saved = w.copy()
    w[:] = 4
    assert np.array_equal(store.window(0, 0, 10), saved)


def test_store_reopen_and_pickle(small_store):
    again = GenomeStore.open(small_store.path)
    assert again.records == small_store.records
    blob = pickle.dumps(small_store)
    assert len(blob) < 2000  # a path, not the bases
    clone = pickle.loads(blob)
    assert np.array_equal(clone.window(2, 10, 100), small_store.window(2, 10, 100))


def test_store_validation(small_store):
    path = small_store.path
    (path / "bases.u8").write_bytes((path / "bases.u8").read_bytes()[:-1])
    with pytest.raises(RandomMaskError, match=r"bases\.u8: size 899 bytes does not match the index \(900"):
        GenomeStore.open(path)
    (path / "bases.u8").unlink()
    with pytest.raises(RandomMaskError, match=r"bases\.u8: missing"):
        GenomeStore.open(path)
    index = json.loads((path / "index.json").read_text())
    index["records"][1]["offset"] = 7
    (path / "index.json").write_text(json.dumps(index))
    with pytest.raises(RandomMaskError, match="index.json: invalid store index: record 'y'"):
        GenomeStore.open(path)
    (path / "index.json").write_text("{not json")
    with pytest.raises(RandomMaskError, match="index.json: unreadable"):
        GenomeStore.open(path)
    (path / "index.json").unlink()
    with pytest.raises(RandomMaskError, match="index.json: missing"):
        GenomeStore.open(path)
    with pytest.raises(RandomMaskError, match="no such genome store folder"):
        GenomeStore.open(path / "absent")


def test_failed_prepare_keeps_previous_store(small_store, tmp_path):
    before = (small_store.path / "bases.u8").read_bytes()
    bad = write_fasta(tmp_path / "bad.fa", b">q\nACGT\nACGQ\n")
    with pytest.raises(RandomMaskError, match=r"bad\.fa:3:4"):
        prepare([bad], small_store.path)
    assert sorted(p.name for p in small_store.path.iterdir()) == ["bases.u8", "index.json"]
    assert GenomeStore.open(small_store.path).total_length == 900
    assert (small_store.path / "bases.u8").read_bytes() == before


def test_duplicate_record_across_files(tmp_path):
    a = write_fasta(tmp_path / "a.fa", b">chr1\nACGT\n")
    b = write_fasta(tmp_path / "b.fa", b">chr2\nAC\n>chr1\nGG\n")
    with pytest.raises(RandomMaskError, match=r"b\.fa: record name 'chr1' already used in .*a\.fa"):
        prepare([a, b], tmp_path / "store")
    assert not (tmp_path / "store" / "index.json").exists()


def test_prepare_progress_bar(tmp_path, capsys):
    fasta = write_fasta(tmp_path / "p.fa", b">p\nACGT\n")
    store = prepare([fasta], tmp_path / "store", progress=True)
    assert store.total_length == 4
    assert "prepare genome" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# The sampler


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """Three sampleable records of random DNA (lengths 40,000 / 10,000 / 4,000) and one too short."""
    tmp = tmp_path_factory.mktemp("genome")
    rng = np.random.default_rng(5)
    records = [
        ("big", random_seq(rng, 40_000)),
        ("mid", random_seq(rng, 10_000)),
        ("small", random_seq(rng, 4_000)),
        ("tiny", random_seq(rng, 100)),
    ]
    fasta = write_fasta(tmp / "g.fa.gz", format_fasta(records), "bgzip")
    return prepare([fasta], tmp / "store")


def heldout_start(length: int, fraction: float) -> int:
    return length - int(round(length * fraction))


def config(**kw) -> SamplerConfig:
    base = {"window_nt": 256, "seed": 11, "heldout_fraction": 0.1}
    base.update(kw)
    return SamplerConfig(**base)


def test_sampler_deterministic_and_seeded(genome):
    a = WindowSampler(genome, config(short_prob=0.3, reverse_complement_prob=0.5))
    b = WindowSampler(genome, config(short_prob=0.3, reverse_complement_prob=0.5))
    other = WindowSampler(genome, config(short_prob=0.3, reverse_complement_prob=0.5, seed=12))
    coords_a = [a.draw_coords(i) for i in range(200)]
    assert coords_a == [b.draw_coords(i) for i in range(200)]
    assert all(np.array_equal(a.draw(i), b.draw(i)) for i in range(50))
    # Random access: the same window whatever the order of asking.
    assert [a.draw_coords(i) for i in reversed(range(200))] == coords_a[::-1]
    coords_o = [other.draw_coords(i) for i in range(200)]
    assert sum(x.start == y.start for x, y in zip(coords_a, coords_o, strict=True)) < 5
    assert len({(w.record, w.start) for w in coords_a}) > 190  # not stuck on a few windows


@pytest.mark.parametrize("fraction", [0.1, 0.013])
def test_train_and_eval_regions(genome, fraction):
    train = WindowSampler(genome, config(heldout_fraction=fraction, short_prob=0.5))
    ev = WindowSampler(genome, config(heldout_fraction=fraction, short_prob=0.5), split="eval")
    lengths = [r.length for r in genome.records]
    sampleable_eval = {i for i, n in enumerate(lengths) if n - heldout_start(n, fraction) >= 256}
    assert train.eligible_records == (0, 1, 2)  # 'tiny' is skipped
    assert set(ev.eligible_records) == sampleable_eval
    for i in range(1500):
        w = train.draw_coords(i)
        assert w.start >= 0 and w.start + w.length <= heldout_start(lengths[w.record], fraction)
        assert w.record != 3
        e = ev.draw_coords(i)
        assert e.record in sampleable_eval
        n = lengths[e.record]
        assert heldout_start(n, fraction) <= e.start and e.start + e.length <= n
    for w in train.eval_coords(50):
        n = lengths[w.record]
        assert heldout_start(n, fraction) <= w.start and w.start + w.length <= n
        assert w.length == 256 and not w.reverse


def test_records_chosen_by_sampleable_length(genome):
    s = WindowSampler(genome, config(heldout_fraction=0.0))
    counts = np.bincount([s.draw_coords(i).record for i in range(3000)], minlength=4)
    starts = np.array([40_000 - 255, 10_000 - 255, 4_000 - 255, 0])
    expected = 3000 * starts / starts.sum()
    assert counts[3] == 0
    assert np.all(np.abs(counts[:3] - expected[:3]) < 5 * np.sqrt(expected[:3]) + 5)


def test_ranks_draw_disjoint_streams(genome):
    whole = WindowSampler(genome, config())
    r0 = WindowSampler(genome, config(), rank=0, world_size=2)
    r1 = WindowSampler(genome, config(), rank=1, world_size=2)
    idx0 = [r0.global_index(k) for k in range(300)]
    idx1 = [r1.global_index(k) for k in range(300)]
    assert not set(idx0) & set(idx1)
    c0 = [w for w, _ in r0.iter_windows(0, 300)]
    c1 = [w for w, _ in r1.iter_windows(0, 300)]
    assert [w.index for w in c0] == idx0 and [w.index for w in c1] == idx1
    key0 = [(w.record, w.start) for w in c0]
    key1 = [(w.record, w.start) for w in c1]
    assert key0 != key1
    assert len(set(key0) & set(key1)) < 5
    # Both ranks together cover exactly the single-process stream.
    assert sorted(c0 + c1, key=lambda w: w.index) == [whole.draw_coords(i) for i in range(600)]
    with pytest.raises(RandomMaskError, match="rank"):
        WindowSampler(genome, config(), rank=2, world_size=2)


def test_short_windows_and_reverse_complement(genome):
    s = WindowSampler(genome, config(short_prob=0.3, min_window_nt=20, reverse_complement_prob=0.5))
    n = 2000
    draws = [s.draw_window(i) for i in range(n)]
    lengths = np.array([w.length for w, _ in draws])
    assert lengths.min() >= 20 and lengths.max() == 256
    assert abs((lengths < 256).mean() - 0.3) < 0.05
    assert lengths[lengths < 256].mean() == pytest.approx((20 + 256) / 2, rel=0.1)
    rev = np.array([w.reverse for w, _ in draws])
    assert abs(rev.mean() - 0.5) < 0.05
    for w, codes in draws[:300]:
        fwd = genome.window(w.record, w.start, w.length)
        assert len(codes) == w.length
        assert np.array_equal(codes, reverse_complement_codes(fwd) if w.reverse else fwd)
    plain = WindowSampler(genome, config(short_prob=0.0))
    assert all(w.length == 256 and not w.reverse for w in (plain.draw_coords(i) for i in range(300)))


def test_n_dominated_windows_are_skipped(tmp_path):
    rng = np.random.default_rng(6)
    # Record: 6,000 N, then 2,000 bases with scattered N (about 1%), then 6,000 N.
    mixed = np.array(list(random_seq(rng, 2000)))
    mixed[rng.random(2000) < 0.01] = "N"
    seq = "N" * 6000 + "".join(mixed) + "N" * 6000
    fasta = write_fasta(tmp_path / "n.fa", format_fasta([("n", seq), ("alln", "N" * 5000)]))
    store = prepare([fasta], tmp_path / "store")
    s = WindowSampler(store, config(window_nt=200, max_n_fraction=0.05, heldout_fraction=0.0))
    for i in range(300):
        w, codes = s.draw_window(i)
        assert w.record == 0 and w.start >= 6000 - 10 and w.start + w.length <= 8000 + 10
        assert (codes == N_CODE).sum() <= 10
    # A genome of N only: give up after max_redraws with a clear error.
    only_n = prepare([write_fasta(tmp_path / "allN.fa", b">alln\n" + b"N" * 5000 + b"\n")], tmp_path / "s2")
    s2 = WindowSampler(only_n, config(window_nt=200, heldout_fraction=0.0, max_redraws=50))
    with pytest.raises(RandomMaskError, match="no train window of 200 nt with at most 5% N found in 50 draws"):
        s2.draw(0)
    tolerant = WindowSampler(only_n, config(window_nt=200, heldout_fraction=0.0, max_n_fraction=1.0))
    assert (tolerant.draw(0) == N_CODE).all()


def test_nothing_sampleable_and_bad_config(genome):
    with pytest.raises(RandomMaskError, match="no record has a train region of at least window_nt=50000"):
        WindowSampler(genome, config(window_nt=50_000))
    with pytest.raises(RandomMaskError, match="no record has a eval region"):
        WindowSampler(genome, config(heldout_fraction=0.0), split="eval")
    with pytest.raises(RandomMaskError, match="no record has a eval region"):
        WindowSampler(genome, config(heldout_fraction=0.0)).eval_windows(3)
    with pytest.raises(RandomMaskError, match="split must be"):
        WindowSampler(genome, config(), split="test")
    for bad in [
        {"window_nt": 0},
        {"min_window_nt": 300},
        {"short_prob": 1.5},
        {"seed": -1},
        {"heldout_fraction": -0.1},
        {"max_redraws": 0},
    ]:
        with pytest.raises(RandomMaskError, match="sampler config"):
            config(**bad)
    assert SamplerConfig(window_nt=512).min_window_nt == 64


def test_eval_windows_fixed(genome):
    a = WindowSampler(genome, config(short_prob=0.5, reverse_complement_prob=0.5), rank=1, world_size=4)
    b = WindowSampler(genome, config(), split="eval")
    assert a.eval_coords(20) == b.eval_coords(20)
    wins = a.eval_windows(20)
    for w, codes in zip(a.eval_coords(20), wins, strict=True):
        assert np.array_equal(codes, genome.window(w.record, w.start, w.length))
    assert a.eval_coords(5) == a.eval_coords(20)[:5]


# ----------------------------------------------------------------------------------------------
# Real data: human chromosome 20


def test_chr20_prepare(chr20_store):
    store = chr20_store
    assert [r.name for r in store.records] == ["20"]
    rec = store.records[0]
    assert rec.length == 63_025_520 == store.total_length
    assert 59_400_000 < rec.length - rec.n_count < 59_600_000
    assert (store.window(0, 0, 60_000) == N_CODE).all()  # the leading N run
    # Compare with an independent decode of the file.
    text = gzip.decompress(chr20().read_bytes())
    seq = text.split(b"\n", 1)[1].replace(b"\n", b"").upper()
    lut = np.full(256, 4, dtype=np.uint8)
    lut[list(b"ACGT")] = [0, 1, 2, 3]
    assert np.array_equal(lut[np.frombuffer(seq, dtype=np.uint8)], store.record_codes(0))


def test_chr20_windows_gc(chr20_store):
    store = chr20_store
    sampler = WindowSampler(store, SamplerConfig(window_nt=512, short_prob=0.0, seed=0))
    gc = []
    for i in range(200):
        w, codes = sampler.draw_window(i)
        assert w.length == 512 and w.start + 512 <= sampler.boundary(0)
        known = codes[codes != N_CODE]
        assert known.size >= 0.95 * 512
        gc.append(np.isin(known, [1, 2]).mean())
    assert 0.35 < float(np.mean(gc)) < 0.50
    ev = sampler.eval_windows(20)
    assert all(len(c) == 512 for c in ev)
