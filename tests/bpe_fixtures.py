"""Small BPE vocabularies and runs for the tests, learnt from the committed chr20 excerpt (seconds, no network)."""

from __future__ import annotations

from pathlib import Path

from randommask.bpe_train import TokenizerTrainConfig, train_tokenizer
from randommask.pretrain import load_config, pretrain
from realdata import GENOME


def small_bpe(folder: Path, vocab_size: int = 256) -> Path:
    """``folder`` holding a ``tokenizer.json`` of ``vocab_size`` tokens (and its report), learnt from the excerpt."""
    if not (folder / "tokenizer.json").exists():
        train_tokenizer(TokenizerTrainConfig(fasta=[str(GENOME)], out=str(folder), vocab_size=vocab_size,
                                             windows=300, window_nt=500, heldout_windows=20, progress=False))
    return folder


def bpe_run(folder: Path, tokenizer: Path, steps: int = 4, max_tokens: int = 64) -> Path:
    """A tiny pre-training run folder with the BPE vocabulary ``tokenizer`` (BERT masking)."""
    pretrain(load_config({"out_dir": str(folder), "tokenizer": f"bpe:{tokenizer}", "preset": "tiny", "steps": steps,
                          "batch_size": 4, "log_interval": 2, "eval_interval": steps, "eval_windows": 4,
                          "progress": False, "masking": {"strategy": "bert"},
                          "data": {"fasta": [str(GENOME)], "max_tokens": max_tokens}}))
    return folder
