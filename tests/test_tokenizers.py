"""Tokenizers: round trips, [UNK] for ambiguous bases, spans, vocab files, errors."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from randommask.errors import RandomMaskError
from randommask.tokenizers import SPECIAL_TOKENS, KmerTokenizer

dna = st.text(alphabet="ACGT", min_size=0, max_size=80)
dna_n = st.text(alphabet="ACGTN", min_size=0, max_size=80)
ks = st.integers(min_value=1, max_value=8)


def slow_kmers(seq: str, k: int, stride: int) -> list[str]:
    """The obvious reference: slice the string."""
    return [seq[i : i + k] for i in range(0, len(seq) - k + 1, stride)]


@settings(max_examples=200, deadline=None)
@given(seqs=st.lists(dna_n, min_size=1, max_size=6), k=ks, overlap=st.booleans())
def test_encode_matches_string_slicing(seqs, k, overlap):
    tok = KmerTokenizer(k, 1 if overlap else k)
    enc = tok.encode_batch(seqs)
    for row, seq in enumerate(seqs):
        kmers = slow_kmers(seq, k, tok.stride)
        expect = [tok.cls_id] + [tok.token_to_id.get(m, tok.unk_id) for m in kmers] + [tok.sep_id]
        n = len(expect)
        assert enc.ids[row, :n].tolist() == expect
        assert (enc.ids[row, n:] == tok.pad_id).all()
        assert enc.attention_mask[row].tolist() == [1] * n + [0] * (enc.ids.shape[1] - n)
        assert enc.special_mask[row].tolist() == [True] + [False] * (n - 2) + [True] * (enc.ids.shape[1] - n + 1)
        spans = enc.spans[row]
        for j, m in enumerate(kmers, start=1):
            s, e = spans[j]
            assert seq[s:e] == m
        assert (spans[0] == -1).all() and (spans[n - 1 :] == -1).all()


@settings(max_examples=200, deadline=None)
@given(seq=dna, k=ks, overlap=st.booleans())
def test_round_trip_acgt(seq, k, overlap):
    tok = KmerTokenizer(k, 1 if overlap else k)
    covered = len(seq) if overlap else (len(seq) // k) * k
    if len(seq) < k:
        covered = 0
    assert tok.decode(tok.encode(seq).ids[0]) == seq[:covered]


@settings(max_examples=200, deadline=None)
@given(seq=dna_n, k=st.integers(2, 6))
def test_round_trip_with_n_recovers_every_base_a_clean_kmer_covers(seq, k):
    tok = KmerTokenizer(k, 1)
    out = tok.decode(tok.encode(seq).ids[0])
    if len(seq) < k:
        assert out == ""
        return
    assert len(out) == len(seq)
    for p, (a, b) in enumerate(zip(seq, out, strict=True)):
        clean = any("N" not in seq[s : s + k] for s in range(max(0, p - k + 1), min(p, len(seq) - k) + 1))
        assert b == (a if clean else "N")


def test_unk_for_n_and_iupac_lowercase_accepted():
    tok = KmerTokenizer.from_name("kmer3")
    enc = tok.encode("acgNAC")
    assert enc.ids[0].tolist() == [tok.cls_id, tok.token_to_id["ACG"], tok.unk_id, tok.unk_id, tok.unk_id,
                                   tok.sep_id]
    enc = tok.encode("ACRTT")  # R (purine) is an IUPAC code: [UNK], not an error
    assert enc.ids[0, 1:4].tolist() == [tok.unk_id] * 3


def test_bad_character_names_sequence_and_position():
    tok = KmerTokenizer.from_name("kmer6")
    with pytest.raises(RandomMaskError, match=r"sequence 1: invalid nucleotide character 'X' at position 4"):
        tok.encode_batch(["ACGTACGT", "ACGXACGT"])
    with pytest.raises(RandomMaskError, match="position 3"):
        tok.encode_batch(["AC\u00e9GT"])


def test_names():
    assert KmerTokenizer.from_name("kmer6").stride == 1
    assert KmerTokenizer.from_name("kmer6-nonoverlap").stride == 6
    nt = KmerTokenizer.from_name("nt")
    assert (nt.k, nt.vocab_size) == (1, 9)
    assert KmerTokenizer.from_name("kmer6").vocab_size == 4101
    for name in ("kmer6", "kmer6-nonoverlap", "nt", "kmer3"):
        assert KmerTokenizer.from_name(name).name == name
    with pytest.raises(RandomMaskError, match="unknown tokenizer"):
        KmerTokenizer.from_name("bpe")
    with pytest.raises(RandomMaskError, match="between 1 and 8"):
        KmerTokenizer(9)


def test_truncation_and_padding():
    tok = KmerTokenizer.from_name("kmer6")
    seq = "ACGT" * 10  # 35 tokens
    with pytest.raises(RandomMaskError, match="more than max_length 12"):
        tok.encode(seq, max_length=12)
    enc = tok.encode(seq, max_length=12, truncation=True)
    assert enc.ids.shape == (1, 12) and enc.ids[0, -1] == tok.sep_id
    assert tok.decode(enc.ids[0]) == seq[: tok.bases_for_tokens(10)]
    enc = tok.encode_batch(["ACGTACG"], max_length=16, padding="max_length")
    assert enc.ids.shape == (1, 16) and enc.attention_mask.sum() == 4


def test_vocab_file_in_another_order(tmp_path):
    # DNABERT-style file: specials first, then k-mers in a different (shuffled) order.
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=3)]
    random.Random(0).shuffle(kmers)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *kmers]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    tok = KmerTokenizer.from_vocab_file(path)
    assert tok.k == 3 and tok.vocab == vocab
    enc = tok.encode("ACGTT")
    assert enc.ids[0, 1:4].tolist() == [vocab.index("ACG"), vocab.index("CGT"), vocab.index("GTT")]
    assert tok.decode(enc.ids[0]) == "ACGTT"
    # Save and load again: same ids.
    tok.save_vocab(tmp_path / "again.txt")
    assert KmerTokenizer.from_vocab_file(tmp_path / "again.txt").vocab == vocab
    nonoverlap = KmerTokenizer.from_vocab_file(path, stride="k")
    assert nonoverlap.stride == 3


@pytest.mark.parametrize(
    "lines, message",
    [
        ([*SPECIAL_TOKENS, "AC", "hello"], "line 7: token 'hello' is neither"),
        ([*SPECIAL_TOKENS, "AC", "ACG"], "line 7: k-mer 'ACG' has length 3"),
        ([*SPECIAL_TOKENS, "AC", "AG"], "expected 21"),
        (list(SPECIAL_TOKENS), "no k-mers"),
    ],
)
def test_vocab_file_errors(tmp_path, lines, message):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RandomMaskError, match=message) as e:
        KmerTokenizer.from_vocab_file(path)
    assert str(path) in str(e.value)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(RandomMaskError, match="not found"):
        KmerTokenizer.from_vocab_file(tmp_path / "nope.txt")


def test_code_arrays_give_same_ids_as_strings():
    tok = KmerTokenizer.from_name("kmer6")
    rng = np.random.default_rng(1)
    codes = [rng.integers(0, 5, n).astype(np.uint8) for n in (30, 40, 7)]
    strings = ["".join("ACGTN"[c] for c in a) for a in codes]
    a, b = tok.encode_batch(codes), tok.encode_batch(strings)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.attention_mask, b.attention_mask)
