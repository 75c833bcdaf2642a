"""Masked-token loss by position on a run's held-out windows of N tokens, for given checkpoints.

The record of how the EMP continuation was measured (docs/regime.md, "The EMP continuation"). Run with the
study commit's interpreter, one thread:

    python position_loss.py STORE TOKENS WINDOWS CKPT...        # e.g. /tmp/chr20 512 32 .../step-21000.pt
    TILE=128 OFF=0 python position_loss.py ...                  # rows >= TILE copied from rows OFF..TILE-1 first

Masks are the run's own masking at the checkpoint's step, drawn from a fixed seed per batch of 8 windows.
"""

import json
import os
import sys

import numpy as np
import torch

from randommask import checkpoint as ckpt
from randommask.genome import GenomeStore, held_out_windows
from randommask.masking import apply_mask
from randommask.model import BertForMaskedLM, ModelConfig
from randommask.pretrain import load_config

BUCKETS = [(0, 64), (64, 128), (128, 132), (132, 256), (256, 512)]


def tile_positions(model: BertForMaskedLM, tile: int, off: int) -> None:
    """Copy the trained position rows off..tile-1 over the rows from tile on (Longformer's initialisation)."""
    pe = model.bert.embeddings.position_embeddings.weight.data
    for p in range(tile, pe.shape[0]):
        pe[p] = pe[off + (p - off) % (tile - off)]


def position_loss(store: GenomeStore, path: str, tokens: int, n: int) -> dict[str, float | None]:
    run = ckpt.open_run(path)
    cfg, tok = load_config(run.config), run.tokenizer
    model = BertForMaskedLM(ModelConfig.from_dict(run.model_config))
    model.load_state_dict(run.model_state)
    model.eval()
    if int(os.environ.get("TILE", "0")):
        tile_positions(model, int(os.environ["TILE"]), int(os.environ.get("OFF", "0")))
    windows = held_out_windows(store, tokens + 5, n, cfg.seed, cfg.data.max_n_fraction, cfg.data.heldout_fraction)
    sums, counts = np.zeros(len(BUCKETS)), np.zeros(len(BUCKETS))
    for i in range(0, n, 8):
        enc = tok.encode_batch(windows[i : i + 8], max_length=tokens, truncation=True)
        inputs, labels, _ = apply_mask(enc.ids, enc.special_mask, np.random.default_rng(i), cfg.masking, run.step,
                                       tok.mask_id, tok.kmer_ids)
        with torch.no_grad():
            logits = model(torch.from_numpy(inputs), torch.from_numpy(enc.attention_mask)).logits
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), torch.from_numpy(labels.astype(np.int64)),
                                               ignore_index=-100, reduction="none").numpy()
        position = np.broadcast_to(np.arange(labels.shape[1]), labels.shape)
        for j, (a, b) in enumerate(BUCKETS):
            chosen = (labels != -100) & (position >= a) & (position < b)
            sums[j] += ce[chosen].sum()
            counts[j] += chosen.sum()
    return {f"{a}-{b}": round(float(s / c), 3) if c else None
            for (a, b), s, c in zip(BUCKETS, sums, counts, strict=True)}


if __name__ == "__main__":
    torch.set_num_threads(1)
    store = GenomeStore.open(sys.argv[1])
    tokens, n = int(sys.argv[2]), int(sys.argv[3])
    for path in sys.argv[4:]:
        print(json.dumps({"checkpoint": "/".join(path.split("/")[-3:]), "tokens": tokens,
                          **position_loss(store, path, tokens, n)}), flush=True)
