"""Masking: fractions, span placement, schedule, determinism, and what a mask hides."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from randommask.errors import RandomMaskError
from randommask.masking import (
    IGNORE_INDEX,
    MaskingConfig,
    apply_mask,
    choose_masked,
    expected_mask_fraction,
    hidden_nucleotides,
    masking_rng,
    phase_at,
    phase_starts,
    span_widths,
    spans_to_mask,
)
from randommask.tokenizers import KmerTokenizer

TOK = KmerTokenizer.from_name("kmer6")


def random_batch(b: int = 64, n_nt: int = 515, seed: int = 0, ragged: bool = False):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, n_nt, b) if ragged else np.full(b, n_nt)
    seqs = ["".join("ACGT"[c] for c in rng.integers(0, 4, n)) for n in lengths]
    return TOK.encode_batch(seqs)


BATCH = random_batch()


@pytest.mark.parametrize("strategy", ["bert", "dnabert", "randommask"])
def test_masked_fraction_within_tolerance_every_phase(strategy):
    cfg = MaskingConfig(strategy=strategy, k=6, total_steps=100)
    maskable = ~BATCH.special_mask
    for step in (0, 20, 40, 60, 80):
        fracs = [choose_masked(BATCH.special_mask, masking_rng(s, step), cfg, step)[maskable].mean()
                 for s in range(8)]
        expected = expected_mask_fraction(cfg, step)
        # Edges (spans clipped at [CLS]/[SEP]) lower the fraction slightly for wide spans.
        assert abs(np.mean(fracs) - expected) < 0.012, (step, np.mean(fracs), expected)
        if strategy != "dnabert":
            assert abs(expected - 0.15) < 1e-6
        else:
            assert abs(expected - (1 - 0.975**6)) < 1e-9  # DNABERT: p = 0.025, m = 6


def test_schedule_at_boundaries():
    cfg = MaskingConfig(strategy="randommask", k=6, total_steps=100, phases=5)
    assert phase_starts(cfg) == [0, 20, 40, 60, 80]
    for q, start in enumerate(phase_starts(cfg)):
        assert phase_at(cfg, start) == q
        if start > 0:
            assert phase_at(cfg, start - 1) == q - 1
        assert span_widths(cfg, start) == list(range(6, 6 + 2 * q + 1, 2))
    assert phase_at(cfg, 10**6) == 4  # past the plan: the last phase
    fixed = MaskingConfig(strategy="randommask", k=6, total_steps=100, random_width=False)
    assert span_widths(fixed, 99) == [14]
    custom = MaskingConfig(strategy="randommask", k=6, phases=3, phase_boundaries=[10, 50],
                           start_width=4, width_growth=4)
    assert [phase_at(custom, s) for s in (0, 9, 10, 49, 50)] == [0, 0, 1, 1, 2]
    assert span_widths(custom, 50) == [4, 8, 12]
    assert span_widths(MaskingConfig(strategy="dnabert", k=6), 10**5) == [6]


def test_bad_config():
    with pytest.raises(RandomMaskError, match="unknown masking strategy"):
        MaskingConfig(strategy="whole-word")
    with pytest.raises(RandomMaskError, match="phase_boundaries"):
        MaskingConfig(phases=5, phase_boundaries=[10, 5, 20, 30])
    with pytest.raises(RandomMaskError, match="between 0 and 1"):
        MaskingConfig(mask_prob=1.5)


def slow_spans(centres, widths, maskable, t):
    """Reference: place each span token by token with the paper's formula i-m/2+1 .. i+m/2."""
    out = np.zeros_like(maskable)
    for c, m in zip(centres, widths, strict=True):
        row = c // t
        for j in range(c - m // 2 + 1 - (m % 2), c + m // 2 + 1):
            if row * t <= j < (row + 1) * t and maskable[j]:
                out[j] = True
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_spans_placed_by_formula(data):
    t = data.draw(st.integers(4, 40))
    b = data.draw(st.integers(1, 4))
    maskable = np.array(data.draw(st.lists(st.booleans(), min_size=b * t, max_size=b * t)))
    centres = np.array(sorted(data.draw(st.sets(st.integers(0, b * t - 1), max_size=8))), dtype=np.int64)
    widths = np.array(data.draw(st.lists(st.integers(1, 14), min_size=len(centres), max_size=len(centres))),
                      dtype=np.int64)
    got = spans_to_mask(centres, widths, ~maskable, t)
    assert np.array_equal(got, slow_spans(centres, widths, maskable, t))


def test_six_mer_span_is_minus_two_to_plus_three():
    maskable = np.ones(20, dtype=bool)
    got = spans_to_mask(np.array([10]), np.array([6]), ~maskable, 20)
    assert np.flatnonzero(got).tolist() == [8, 9, 10, 11, 12, 13]


def test_isolated_spans_are_contiguous_with_allowed_widths():
    cfg = MaskingConfig(strategy="randommask", k=6, total_steps=100, target_fraction=0.02)
    for step in (0, 50, 90):
        mask = choose_masked(BATCH.special_mask, masking_rng(3, step), cfg, step)
        rep = hidden_nucleotides(mask, BATCH.spans)
        # Sparse centres: almost every run is one span, its length one of the allowed widths
        # (or shorter when clipped at the ends, or longer when two spans touch).
        allowed = set(span_widths(cfg, step))
        share = np.isin(rep.run_lengths, list(allowed)).mean()
        assert share > 0.85, (step, np.bincount(rep.run_lengths))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), step=st.integers(0, 200),
       strategy=st.sampled_from(["bert", "dnabert", "randommask"]))
def test_specials_and_padding_never_masked(seed, step, strategy):
    enc = random_batch(8, 60, seed=seed % 1000, ragged=True)
    cfg = MaskingConfig(strategy=strategy, k=6, total_steps=200, target_fraction=0.5, mask_prob=0.5, centre_prob=0.3)
    inputs, labels, mask = apply_mask(enc.ids, enc.special_mask, masking_rng(seed, step), cfg, step,
                                      TOK.mask_id, TOK.kmer_ids)
    assert not mask[enc.special_mask].any()
    assert np.array_equal(inputs[enc.special_mask], enc.ids[enc.special_mask])
    assert (labels[~mask] == IGNORE_INDEX).all()
    assert np.array_equal(labels[mask], enc.ids[mask])
    assert np.array_equal(inputs[~mask], enc.ids[~mask])


def test_80_10_10():
    cfg = MaskingConfig(strategy="bert", mask_prob=0.15)
    inputs, labels, mask = apply_mask(BATCH.ids, BATCH.special_mask, masking_rng(0, 0), cfg, 0,
                                      TOK.mask_id, TOK.kmer_ids)
    n = mask.sum()
    is_mask = (inputs[mask] == TOK.mask_id).mean()
    unchanged = (inputs[mask] == BATCH.ids[mask]).mean()
    assert abs(is_mask - 0.8) < 0.02 and abs(unchanged - 0.1) < 0.02 and n > 4000
    replaced = inputs[mask & (inputs != TOK.mask_id) & (inputs != BATCH.ids)]
    assert np.isin(replaced, TOK.kmer_ids).all()  # random tokens are k-mers, never specials


def test_deterministic_from_seed_and_step():
    cfg = MaskingConfig(strategy="randommask", total_steps=100)
    a = apply_mask(BATCH.ids, BATCH.special_mask, masking_rng(7, 30), cfg, 30, TOK.mask_id, TOK.kmer_ids)
    b = apply_mask(BATCH.ids, BATCH.special_mask, masking_rng(7, 30), cfg, 30, TOK.mask_id, TOK.kmer_ids)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for seed, step, rank in ((8, 30, 0), (7, 31, 0), (7, 30, 1)):
        c = apply_mask(BATCH.ids, BATCH.special_mask, masking_rng(seed, step, rank), cfg, 30, TOK.mask_id,
                       TOK.kmer_ids)
        assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize("m", range(1, 15))
def test_lone_span_of_m_overlapping_6mers_hides_m_minus_5(m):
    enc = TOK.encode("ACGT" * 20)
    mask = np.zeros_like(enc.special_mask)
    mask[0, 20 : 20 + m] = True
    rep = hidden_nucleotides(mask, enc.spans)
    assert rep.hidden_per_seq.tolist() == [max(0, m - 5)]
    assert rep.run_lengths.tolist() == [m] and rep.run_hidden.tolist() == [max(0, m - 5)]
    assert rep.run_starts.tolist() == [20] and rep.run_rows.tolist() == [0]


def test_nonoverlapping_mask_hides_every_base():
    tok = KmerTokenizer.from_name("kmer6-nonoverlap")
    enc = tok.encode("ACGT" * 30)
    mask = np.zeros_like(enc.special_mask)
    mask[0, [3, 5, 6]] = True
    rep = hidden_nucleotides(mask, enc.spans)
    assert rep.hidden_per_seq.tolist() == [18]
    assert sorted(rep.run_hidden.tolist()) == [6, 12]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_hidden_matches_slow_reference(data):
    k = data.draw(st.integers(1, 6))
    stride = data.draw(st.sampled_from([1, k]))
    tok = KmerTokenizer(k, stride)
    lengths = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=4))
    enc = tok.encode_batch(["A" * n for n in lengths])
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=enc.ids.size, max_size=enc.ids.size)))
    mask = mask.reshape(enc.ids.shape) & ~enc.special_mask
    rep = hidden_nucleotides(mask, enc.spans)
    spans = enc.spans
    for row in range(len(lengths)):
        hidden = 0
        for p in range(lengths[row]):
            cover = [j for j in range(spans.shape[1]) if spans[row, j, 0] <= p < spans[row, j, 1]]
            if cover and all(mask[row, j] for j in cover):
                hidden += 1
        assert rep.hidden_per_seq[row] == hidden
    assert rep.run_hidden.sum() == rep.hidden_per_seq.sum()


def test_dnabert_masking_hides_one_base_per_lone_span():
    """The paper's core argument, measured on DNABERT's own masking of overlapping 6-mers."""
    cfg = MaskingConfig(strategy="dnabert", k=6)
    mask = choose_masked(BATCH.special_mask, masking_rng(0, 0), cfg, 0)
    rep = hidden_nucleotides(mask, BATCH.spans)
    n_tok = BATCH.lengths[rep.run_rows]
    inside = (rep.run_starts > 1) & (rep.run_starts + rep.run_lengths <= n_tok)  # not touching an end
    lone = (rep.run_lengths == 6) & inside
    assert lone.sum() > 0.7 * len(lone) and (rep.run_hidden[lone] == 1).all()
    assert (rep.run_hidden[(rep.run_lengths == 6) & ~inside] == 6).all()  # at an end, nothing overlaps
