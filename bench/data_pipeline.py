"""The pre-training data pipeline alone: tokens/s of `randommask.pretrain.MaskedBatches` through a DataLoader.

Windows are drawn from a prepared genome store (E. coli by default: quick to prepare; any FASTA with
--fasta, or a prepared store with --store), tokenized (overlapping 6-mers, 512 tokens) and masked
(RandomMask), exactly as the pre-training loop gets them, with 0, 1, 2, ... DataLoader workers.
Before that, the cost of each stage is measured on its own, one batch at a time in this process:
window sampling (and within it the SeedSequence + PCG64 created per window), tokenizing, masking.

There is no GPU here: the consumption it is compared with is the issue's reference figures for one
H200 on the `base` model, 512 tokens, batch 64, bf16 (442k tokens/s for transformers with SDPA, 648k
for an SDPA encoder with a masked-only head under torch.compile), not a measurement of ours. The goal is
a pipeline at least 2x the faster figure. Tokens are counted as batch x 512 positions, padding included,
as the GPU figures count them.

    python bench/data_pipeline.py [--workers 0,1,2] [--batches 300] [--fasta ../shared/data/genomes/20.fa.gz]

The last line is the headline ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from randommask.genome import GenomeStore, SamplerConfig, WindowSampler, prepare
from randommask.masking import apply_mask, masking_rng
from randommask.pretrain import MaskedBatches, load_config
from randommask.tokenizers import KmerTokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "genomes"
DEFAULT_FASTA = str(DATA / "ecoli536_NC_008253.fna.gz")
GPU_TOKENS_PER_S = {"transformers SDPA": 442_000, "SDPA + masked head, compiled": 648_000}  # the H200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fasta", default=DEFAULT_FASTA,
                    help="FASTA to prepare (the default E. coli genome; where it is absent, as on a device machine "
                    "that gets only the repository, 5 Mb of seeded random DNA stand in: the cost per window does "
                    "not depend on the sequence)")
    ap.add_argument("--store", help="a prepared store (instead of --fasta)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512, help="tokens per window, [CLS] and [SEP] included")
    ap.add_argument("--batches", type=int, default=300, help="batches timed per worker count")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    ap.add_argument("--short-prob", type=float, default=0.1)
    ap.add_argument("--strategy", default="randommask")
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="few small batches: checks that the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batch, args.batches, args.workers = min(args.batch, 8), min(args.batches, 3), "0,1"
    return args


def stage_costs(batches: MaskedBatches, n: int) -> dict[str, float]:
    """Seconds per batch of each stage, run here one after the other (medians over n batches)."""
    cfg, tok, sampler = batches.cfg, batches.tokenizer, batches.sampler
    seeds, draws, encodes, masks = [], [], [], []
    for m in range(n):
        first = m * cfg.batch_size
        idx = [sampler.global_index(first + j) for j in range(cfg.batch_size)]
        t0 = time.perf_counter()
        for i in idx:  # what genome.WindowSampler._draw builds for every window
            np.random.Generator(np.random.PCG64(np.random.SeedSequence([0x47454E4F, cfg.seed, 0, i])))
        t1 = time.perf_counter()
        windows = [sampler.draw(i) for i in idx]
        t2 = time.perf_counter()
        enc = tok.encode_batch(windows, max_length=cfg.data.max_tokens, truncation=True)
        t3 = time.perf_counter()
        step = batches.start_step + m
        apply_mask(enc.ids, enc.special_mask, masking_rng(cfg.seed, step, 0, 0), batches.masking, step, tok.mask_id,
                   tok.kmer_ids)
        t4 = time.perf_counter()
        seeds.append(t1 - t0)
        draws.append(t2 - t1)
        encodes.append(t3 - t2)
        masks.append(t4 - t3)
    return {"seed_pcg64": statistics.median(seeds), "draw": statistics.median(draws),
            "tokenize": statistics.median(encodes), "mask": statistics.median(masks)}


def loader_rate(batches: MaskedBatches, workers: int, n: int, pin: bool) -> dict[str, float]:
    """Tokens/s of the DataLoader the pre-training loop builds, after its first batch (worker start-up)."""
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers, pin_memory=pin,
                                         prefetch_factor=4 if workers else None, persistent_workers=False,
                                         generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t1 = time.perf_counter()
    real = 0
    for _ in range(n):
        b = next(it)
        real += int(b["attention_mask"].sum())
    t2 = time.perf_counter()
    del it
    positions = n * first["input_ids"].numel()
    return {"tokens_per_s": positions / (t2 - t1), "startup_s": t1 - t0, "real_fraction": real / positions}


def random_fasta(path: Path, length: int) -> Path:
    """A one-record FASTA of seeded random A/C/G/T, 80 bases a line."""
    seq = np.frombuffer(b"ACGT", dtype=np.uint8)[np.random.default_rng(0).integers(0, 4, length)].tobytes()
    with path.open("wb") as f:
        f.write(b">random\n")
        for i in range(0, length, 80):
            f.write(seq[i:i + 80] + b"\n")
    return path


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            store_path = args.store
        else:
            t0 = time.perf_counter()
            store_path = str(Path(tmp) / "genome")
            fasta = Path(args.fasta)
            if not fasta.exists() and args.fasta == DEFAULT_FASTA:
                fasta = random_fasta(Path(tmp) / "random.fa", 5_000_000)
                print(f"{args.fasta} not found: using 5 Mb of seeded random DNA instead")
            prepare([fasta], Path(store_path), progress=False)
            print(f"prepared {fasta.name} in {time.perf_counter() - t0:.1f} s")
        store = GenomeStore.open(store_path)
        cfg = load_config({"data": {"store": store_path, "max_tokens": args.seq, "short_prob": args.short_prob},
                           "batch_size": args.batch, "masking": {"strategy": args.strategy}, "steps": 100_000})
        tok = KmerTokenizer.from_name(cfg.tokenizer)
        cfg.masking.k = tok.k
        window_nt = tok.bases_for_tokens(cfg.data.max_tokens - 2)
        scfg = SamplerConfig(window_nt=window_nt, short_prob=cfg.data.short_prob,
                             min_window_nt=min(window_nt, tok.bases_for_tokens(16)),
                             max_n_fraction=cfg.data.max_n_fraction, heldout_fraction=cfg.data.heldout_fraction,
                             seed=cfg.seed)
        sampler = WindowSampler(store, scfg, "train")
        batches = MaskedBatches(sampler, tok, cfg.masking, cfg, rank=0, start_step=50_000)  # a late phase
        print(f"data_pipeline: {store.total_length / 1e6:.1f} Mb store, batch {args.batch} x {args.seq} tokens, "
              f"kmer6, masking {args.strategy}, short_prob {args.short_prob}, {os.cpu_count()} CPUs here, "
              f"torch {torch.__version__}")
        results: dict = {"batch": args.batch, "seq": args.seq, "cpus": os.cpu_count(), "store_bp": store.total_length}

        # --- stage costs, one process
        costs = stage_costs(batches, max(3, min(args.batches, 20)))
        per_batch = costs["draw"] + costs["tokenize"] + costs["mask"]
        positions = args.batch * args.seq
        print("stages, one process, per batch (median):")
        for name, text in (("draw", "window sampling (store slice, N check)"),
                           ("seed_pcg64", "  of which SeedSequence + PCG64 per window"),
                           ("tokenize", "tokenize (encode_batch)"), ("mask", "mask (apply_mask)")):
            print(f"  {text:<44}{costs[name] * 1e3:>9.2f} ms{costs[name] / args.batch * 1e6:>9.1f} us/window")
        print(f"  {'total':<44}{per_batch * 1e3:>9.2f} ms  -> {positions / per_batch:,.0f} tokens/s per process")
        results["stages_s_per_batch"] = costs

        # --- DataLoader with workers
        pin = torch.cuda.is_available()
        rates = {}
        print(f"DataLoader ({'pinned memory' if pin else 'no pinned memory: no CUDA here'}, prefetch 4), "
              f"{args.batches} batches after the first:")
        print(f"  {'workers':<10}{'tokens/s':>14}{'start-up s':>12}{'real tokens':>13}")
        for w in workers:
            r = loader_rate(batches, w, args.batches, pin)
            rates[w] = r
            print(f"  {w:<10}{r['tokens_per_s']:>14,.0f}{r['startup_s']:>12.2f}{r['real_fraction']:>13.1%}")
        results["loader"] = {str(w): r for w, r in rates.items()}
        padding = 1 - statistics.mean(r["real_fraction"] for r in rates.values())
        results["padding_fraction"] = padding

        # --- against what one GPU consumes (the reference figures; no GPU measured here)
        best_w = max(rates, key=lambda w: rates[w]["tokens_per_s"])
        best = rates[best_w]["tokens_per_s"]
        need = GPU_TOKENS_PER_S["SDPA + masked head, compiled"]
        per_worker = positions / per_batch
        # What one worker delivers through the DataLoader (IPC included), else the in-process rate.
        one = rates[1]["tokens_per_s"] if 1 in rates else per_worker
        print(f"padding: {padding:.1%} of the positions are padding (short_prob {args.short_prob})")
        print("one GPU (issue's H200 reference figures, base, 512 tokens, batch 64, bf16; not measured here):")
        for name, tps in GPU_TOKENS_PER_S.items():
            print(f"  {name:<34}{tps:>10,} tokens/s: 2x needs {math.ceil(2 * tps / one)} worker(s) at this "
                  f"machine's {'one-worker' if 1 in rates else 'per-process'} rate ({one / tps:.1f}x per worker)")
        results.update({"best_workers": best_w, "best_tokens_per_s": best, "gpu_reference": GPU_TOKENS_PER_S,
                        "per_process_tokens_per_s": per_worker, "one_worker_tokens_per_s": one})
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"headline: pipeline {best:,.0f} tokens/s with {best_w} worker(s) = {best / need:.2f}x one H200's "
              f"consumption ({need:,} tokens/s, issue's figure); {per_worker / need:.2f}x per process")
        store.close()
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
