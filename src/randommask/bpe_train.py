"""``randommask tokenizer train``: learn a BPE vocabulary (DNABERT-2's tokenizer) from a genome.

Training windows come from the pre-training sampler (`randommask.genome.WindowSampler`, its training
split), so the vocabulary is learnt on the same kind of DNA a run then reads, never on the held-out
share; the compression (bases per token) is measured on held-out windows, the ones pre-training
evaluates on. Windows are split at every N, so no merge spans an unknown base.

Writes ``OUT/tokenizer.json`` (loads in `transformers.PreTrainedTokenizerFast` and `tokenizers` as it is;
``--tokenizer bpe:OUT`` in pre-training) and ``OUT/tokenizer-report.json`` (sizes, time, compression).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from randommask.bpe import REPORT_FILE, TOKENIZER_FILE, BpeTokenizer, acgt_pieces, compression, train_bpe, vocab_floor
from randommask.errors import RandomMaskError
from randommask.files import atomic_write_text
from randommask.genome import GenomeStore, SamplerConfig, WindowSampler, held_out_windows, prepare


@dataclass
class TokenizerTrainConfig:
    """Learn a BPE vocabulary from FASTA files or a prepared store."""

    fasta: list[str] = field(default_factory=list)  # FASTA files (plain, gzip, bgzip); or give --store
    store: str | None = None  # a prepared genome store (randommask prepare)
    out: str = ""  # the folder to write tokenizer.json and tokenizer-report.json into
    vocab_size: int = 4096  # tokens, the 5 special ones included (DNABERT-2: 4,096)
    windows: int = 20000  # training windows drawn by the sampler
    window_nt: int = 1000  # bases per training window
    heldout_windows: int = 500  # held-out windows the compression is measured on
    seed: int = 0  # the sampler's seed
    max_n_fraction: float = 0.05  # windows with more N than this are skipped
    force: bool = False  # overwrite a tokenizer.json already in --out
    progress: bool = True  # the library's progress bar

    def validate(self) -> None:
        if not self.out:
            raise RandomMaskError("give the output folder with --out")
        if bool(self.fasta) == bool(self.store):
            raise RandomMaskError("give FASTA files or --store (one of them)")
        if self.vocab_size < vocab_floor():
            raise RandomMaskError(f"--vocab-size {self.vocab_size} is below the alphabet: the 5 special tokens and "
                                  f"the 4 bases need {vocab_floor()}")
        for name in ("windows", "window_nt", "heldout_windows"):
            if getattr(self, name) < 1:
                raise RandomMaskError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


def train_tokenizer(cfg: TokenizerTrainConfig) -> dict:
    """Learn, measure and write the vocabulary; the report (also written as ``tokenizer-report.json``)."""
    cfg.validate()
    out = Path(cfg.out)
    if (out / TOKENIZER_FILE).exists() and not cfg.force:
        raise RandomMaskError(f"{out / TOKENIZER_FILE} exists; pass --force to overwrite it")
    with tempfile.TemporaryDirectory(prefix="randommask-bpe-") as tmp:
        if cfg.store:
            store = GenomeStore.open(cfg.store)
        else:
            for f in cfg.fasta:
                if not Path(f).exists():
                    raise RandomMaskError(f"{f}: FASTA file not found")
            store = prepare([Path(f) for f in cfg.fasta], Path(tmp) / "genome", progress=cfg.progress)
        report = _learn(cfg, store, cfg.store or ", ".join(cfg.fasta))
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / TOKENIZER_FILE, report.pop("json"))
        atomic_write_text(out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    except OSError as e:
        raise RandomMaskError(f"{out}: cannot write the tokenizer ({e.strerror or e})") from None
    h = report["heldout"]
    print(f"randommask tokenizer train: learnt {report['vocab_size']:,} tokens from {report['windows']:,} windows "
          f"({report['bases'] / 1e6:.1f} Mb) in {report['seconds']:.1f} s; held-out compression "
          f"{h['bases_per_token']:.2f} bases per token ({h['windows']} windows, 1% of them below "
          f"{h['p01_bases_per_token']:.2f}); wrote {out / TOKENIZER_FILE}")
    return report


def _learn(cfg: TokenizerTrainConfig, store: GenomeStore, source: str) -> dict:
    try:
        sampler = WindowSampler(store, SamplerConfig(window_nt=cfg.window_nt, short_prob=0.0, seed=cfg.seed,
                                                     max_n_fraction=cfg.max_n_fraction), "train")
    except RandomMaskError as e:  # named after the input, not the temporary store it was prepared into
        raise RandomMaskError(f"{source}: {str(e).split(': ', 1)[-1]}; try a smaller --window-nt") from None
    windows = [sampler.draw(sampler.global_index(i)) for i in range(cfg.windows)]
    start = time.perf_counter()
    text = train_bpe((p for w in windows for p in acgt_pieces(w)), cfg.vocab_size)
    seconds = time.perf_counter() - start
    tok = BpeTokenizer(text, source=str(Path(cfg.out) / TOKENIZER_FILE))
    heldout = held_out_windows(store, cfg.window_nt, cfg.heldout_windows, cfg.seed, cfg.max_n_fraction, 0.01)
    if not heldout:
        raise RandomMaskError("the genome has no held-out window to measure the compression on (too short?)")
    return {"json": text, "vocab_size": tok.vocab_size, "windows": len(windows),
            "bases": int(sum(len(w) for w in windows)), "seconds": round(seconds, 3),
            "window_nt": cfg.window_nt, "seed": cfg.seed, "store": str(cfg.store or ""), "fasta": list(cfg.fasta),
            "heldout": compression(tok, heldout)}
