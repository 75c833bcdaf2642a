"""Tokenize + mask throughput on one core: our vectorized pipeline against a per-sequence baseline.

The baseline is written here the way DNABERT's data code does it: slice each sequence into k-mer
strings, look each up in a dict, draw span centres one token at a time and place each span with a
loop. Both sides start from the same 512-token windows as Python strings (517 bases for overlapping
6-mers) and end with input ids and labels; both are run in this process, on one thread.

    python bench/pipeline.py [--windows 4096] [--batch 256] [--strategy randommask --step-frac 0.9]

The last line is the headline ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from randommask.masking import MaskingConfig, apply_mask, centre_probability, masking_rng, span_widths  # noqa: E402
from randommask.tokenizers import KmerTokenizer  # noqa: E402


def baseline(seqs: list[str], tok: KmerTokenizer, cfg: MaskingConfig, step: int, seed: int) -> list:
    """Per-sequence Python: k-mer slicing, dict lookup, per-token centre draws, span placement loop."""
    rnd = random.Random(seed + step)
    vocab, k = tok.token_to_id, tok.k
    p = centre_probability(cfg, step)
    widths = span_widths(cfg, step)
    kmer_ids = [int(i) for i in tok.kmer_ids]
    out = []
    for seq in seqs:
        seq = seq.upper()
        kmers = [seq[i : i + k] for i in range(0, len(seq) - k + 1, tok.stride)]
        ids = [tok.cls_id] + [vocab.get(m, tok.unk_id) for m in kmers] + [tok.sep_id]
        n = len(ids)
        masked = [False] * n
        for i in range(1, n - 1):
            if rnd.random() < p:
                m = rnd.choice(widths)
                for j in range(i - (m - 1) // 2, i + m // 2 + 1):
                    if 1 <= j < n - 1:
                        masked[j] = True
        labels = [-100] * n
        inputs = list(ids)
        for j in range(n):
            if masked[j]:
                labels[j] = ids[j]
                r = rnd.random()
                if r < 0.8:
                    inputs[j] = tok.mask_id
                elif r < 0.9:
                    inputs[j] = rnd.choice(kmer_ids)
        out.append((inputs, labels))
    return out


def ours(seqs: list[str], tok: KmerTokenizer, cfg: MaskingConfig, step: int, seed: int, batch: int) -> list:
    out = []
    for b0 in range(0, len(seqs), batch):
        enc = tok.encode_batch(seqs[b0 : b0 + batch])
        out.append(apply_mask(enc.ids, enc.special_mask, masking_rng(seed, step, b0), cfg, step,
                              tok.mask_id, tok.kmer_ids, inplace=True)[:2])
    return out


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=4096)
    ap.add_argument("--baseline-windows", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--tokenizer", default="kmer6")
    ap.add_argument("--strategy", default="randommask")
    ap.add_argument("--step-frac", type=float, default=0.9, help="where in training (0..1): the phase")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    tok = KmerTokenizer.from_name(args.tokenizer)
    cfg = MaskingConfig(strategy=args.strategy, k=tok.k, total_steps=1000)
    step = int(args.step_frac * 999)
    n_nt = tok.bases_for_tokens(510)
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    seqs = [letters[rng.integers(0, 4, n_nt)].tobytes().decode() for _ in range(args.windows)]
    tokens_per_window = 512

    t_ours = timed(lambda: ours(seqs, tok, cfg, step, 0, args.batch), args.repeats)
    base_seqs = seqs[: args.baseline_windows]
    t_base = timed(lambda: baseline(base_seqs, tok, cfg, step, 0), 1)
    tps_ours = args.windows * tokens_per_window / t_ours
    tps_base = len(base_seqs) * tokens_per_window / t_base
    print(f"tokenizer {tok.name}, masking {args.strategy} (widths {span_widths(cfg, step)}), "
          f"512-token windows, one thread")
    print(f"{'pipeline':<28}{'windows':>10}{'seconds':>10}{'tokens/s':>16}")
    print(f"{'baseline (per-seq Python)':<28}{len(base_seqs):>10}{t_base:>10.3f}{tps_base:>16,.0f}")
    print(f"{'randommask (vectorized)':<28}{args.windows:>10}{t_ours:>10.3f}{tps_ours:>16,.0f}")
    print(f"speed-up: {tps_ours / tps_base:.1f}x the baseline, {tps_ours / 1e6:.1f} M tokens/s")


if __name__ == "__main__":
    main()
