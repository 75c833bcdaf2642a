"""BPE against overlapping 6-mers: tokenizing a chromosome, and the pre-training data path against the models.

1. Tokenizing: the genome (chr20 by default) cut into consecutive 1,000-base tiles, encoded in batches
   of 1,024 tiles to ids by `BpeTokenizer.encode_batch` (the `tokenizers` library's batch encoding, on
   its Rayon threads) and by `KmerTokenizer.encode_batch` (overlapping 6-mers, numpy), in interleaved
   rounds in this process; bases per second, the median over rounds. The library alone on the same
   tiles as strings (`tokenizers.Tokenizer.encode_batch_fast`, what the wrapper calls; and `encode_batch`,
   which also computes offsets) separates its time from the wrapper's.
2. The data path: `randommask.pretrain.MaskedBatches` (sample windows, tokenize, mask: what a step
   gets) for each tokenizer at the pre-training shape (batch x tokens), tokens per second in this
   process, against what the tiny and small models consume per second on this machine (a few timed
   training steps of each, same shape, same process). Tokens are positions, padding included.

    python bench/tokenize_throughput.py --tokenizer BPE_FOLDER [--fasta data/genomes/20.fa.gz] [--threads 2]

``--threads`` sets the library's threads (RAYON_RS_NUM_CPUS) and torch's. Without ``--tokenizer``, a
4,096-token vocabulary is learnt first (`randommask tokenizer train` defaults, ~1 minute).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fasta", default=str(ROOT / "data" / "genomes" / "20.fa.gz"))
    ap.add_argument("--store", help="a prepared store (instead of --fasta)")
    ap.add_argument("--tokenizer", help="a BPE tokenizer.json or its folder (default: learn one here)")
    ap.add_argument("--threads", type=int, default=2, help="library and torch threads")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-mb", type=float, default=0, help="tokenize at most this many Mb (0: all)")
    ap.add_argument("--batch", type=int, default=64, help="pre-training windows per step")
    ap.add_argument("--seq", type=int, default=512, help="pre-training tokens per window")
    ap.add_argument("--batches", type=int, default=40, help="data-path batches timed per tokenizer")
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps per model")
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="a few small batches: checks that the script runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.max_mb, args.batch, args.seq, args.batches, args.train_steps = 1, 0.2, 4, 64, 2, 1
    return args


def tiles(store, size: int, max_bases: int) -> list:
    """Consecutive ``size``-base tiles of every record (the last partial tile of each kept)."""
    out, total = [], 0
    for r in range(len(store.records)):
        codes = store.record_codes(r)
        for s in range(0, len(codes), size):
            out.append(codes[s : s + size])
            total += len(out[-1])
            if max_bases and total >= max_bases:
                return out
    return out


def time_encode(encode, chunks: list, batch: int = 1024) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(chunks), batch):
        encode(chunks[i : i + batch])
    return time.perf_counter() - t0


def train_rate(preset: str, vocab_size: int, batch: int, seq: int, steps: int) -> float:
    """Tokens/s one model consumes in training steps (forward, backward, AdamW), after one warm-up step."""
    import torch

    from randommask.model import BertForMaskedLM, model_config

    model = BertForMaskedLM(model_config(preset, vocab_size, hidden_dropout=0.0, attention_dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(5, vocab_size, (batch, seq))
    labels = torch.where(torch.rand(batch, seq) < 0.15, ids, torch.full_like(ids, -100))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return batch * seq / statistics.median(times[1:])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ["RAYON_RS_NUM_CPUS"] = str(args.threads)  # before the library starts its thread pool
    import numpy as np
    import torch

    from randommask.bpe import BpeTokenizer
    from randommask.bpe_train import TokenizerTrainConfig, train_tokenizer
    from randommask.genome import GenomeStore, prepare
    from randommask.masking import plan
    from randommask.pretrain import MaskedBatches, calibrate, load_config, samplers
    from randommask.runtime import Dist
    from randommask.tokenizers import KmerTokenizer

    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store
        if not store_path:
            if not Path(args.fasta).exists():
                sys.exit(f"{args.fasta}: not found (run scripts/setup.sh, or give --fasta/--store)")
            store_path = str(Path(tmp) / "genome")
            prepare([Path(args.fasta)], Path(store_path), progress=False)
        store = GenomeStore.open(store_path)
        tok_path = args.tokenizer
        if not tok_path:
            tok_path = str(Path(tmp) / "bpe")
            train_tokenizer(TokenizerTrainConfig(store=store_path, out=tok_path, progress=False,
                                                 **({"windows": 200, "vocab_size": 256} if args.smoke else {})))
        bpe = BpeTokenizer.from_file(tok_path)
        kmer = KmerTokenizer.from_name("kmer6")

        # 1. Tokenizing the genome.
        chunks = tiles(store, 1000, int(args.max_mb * 1e6))
        bases = sum(len(c) for c in chunks)
        letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
        strings = [letters[c].tobytes().decode("ascii") for c in chunks]
        lib = bpe._tok  # the library object the wrapper calls: its own speed, on strings
        rates: dict[str, list[float]] = {"kmer6": [], "bpe": [], "bpe library alone": [],
                                         "bpe library, offsets": []}
        for _ in range(args.rounds):
            rates["kmer6"].append(bases / time_encode(kmer.encode_batch, chunks))
            rates["bpe"].append(bases / time_encode(bpe.encode_batch, chunks))
            rates["bpe library alone"].append(
                bases / time_encode(lambda b: lib.encode_batch_fast(b, add_special_tokens=False), strings))
            rates["bpe library, offsets"].append(
                bases / time_encode(lambda b: lib.encode_batch(b, add_special_tokens=False), strings))
        out["tokenize"] = {"bases": bases, "tiles": len(chunks), "vocab_size": bpe.vocab_size,
                           **{k: statistics.median(v) for k, v in rates.items()}}
        print(f"tokenizing {bases / 1e6:.1f} Mb in 1,000-base tiles, batches of 1,024, {args.threads} threads, "
              f"median of {args.rounds} rounds (bases/s):")
        for k in rates:
            print(f"  {k:<21} {out['tokenize'][k] / 1e6:8.2f} M")
        print(f"  BPE / kmer6 = {out['tokenize']['bpe'] / out['tokenize']['kmer6']:.2f}x")

        # 2. The data path against the models' consumption.
        out["data_path"] = {}
        for name, tok, spec in (("kmer6", kmer, "kmer6"), ("bpe", bpe, f"bpe:{tok_path}")):
            masking = "randommask" if name == "kmer6" else "bert"
            cfg = load_config({"tokenizer": spec, "batch_size": args.batch, "steps": 100_000,
                               "masking": {"strategy": masking}, "data": {"store": store_path,
                                                                         "max_tokens": args.seq}})
            t = calibrate(tok, store, cfg)
            train, long = samplers(cfg, store, t, Dist())
            mcfg = plan(cfg.masking, cfg.steps, t.span_unit)
            batches = MaskedBatches(train, t, mcfg, cfg, 0, 50_000, long)
            batches.batch(50_000)
            t0 = time.perf_counter()
            real = 0
            for m in range(1, args.batches + 1):
                real += int(batches.batch(50_000 + m)["attention_mask"].sum())
            dt = time.perf_counter() - t0
            positions = args.batches * args.batch * args.seq
            out["data_path"][name] = {"tokens_per_s": positions / dt, "real_fraction": real / positions}
        out["consumption"] = {p: train_rate(p, bpe.vocab_size, args.batch if args.smoke else 8, args.seq,
                                            args.train_steps) for p in ("tiny", "small")}
        print(f"data path at batch {args.batch} x {args.seq} tokens, in this process (tokens/s, padding counted):")
        for name, d in out["data_path"].items():
            print(f"  {name:<6} {d['tokens_per_s']:>12,.0f}  ({d['real_fraction']:.1%} real tokens)")
        print(f"models' consumption on this machine, {args.threads} threads, training steps at {args.seq} tokens:")
        for p, r in out["consumption"].items():
            print(f"  {p:<6} {r:>12,.0f} tokens/s: the BPE data path delivers "
                  f"{out['data_path']['bpe']['tokens_per_s'] / r:.1f}x that")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
