"""Held-out loss of checkpoints on the held-out sets of several run seeds.

A run evaluates on 64 windows drawn, with its own seed, from the held-out last 1% of chromosome 20, masked by
its own seed's generator (`randommask.pretrain.eval_batches`, `evaluate`). So `ov-dnabert.s0` and `.s1` log
their held-out loss on different windows and masks: this script puts a checkpoint on the sets of seeds
0..N-1, as each run would have logged it there (docs/regime.md, "Two pre-training seeds"). On the checkpoint's
own seed it gives the logged value: the check that it measures what the run measured.

Run with the study commit's interpreter, one thread:

    python heldout_by_seed.py STORE N CKPT...      # e.g. /tmp/chr20 5 .../ov-dnabert.s1/checkpoints/step-21000.pt
"""

import contextlib
import dataclasses
import json
import sys

import torch

from randommask import checkpoint as ckpt
from randommask.genome import GenomeStore
from randommask.model import BertForMaskedLM, ModelConfig
from randommask.pretrain import eval_batches, evaluate, load_config


def heldout_losses(store: GenomeStore, path: str, seeds: range) -> dict[int, float]:
    run = ckpt.open_run(path)
    cfg, tok = load_config(run.config), run.tokenizer
    model = BertForMaskedLM(ModelConfig.from_dict(run.model_config))
    model.load_state_dict(run.model_state)
    window_nt = tok.fill_bases(cfg.data.max_tokens - 2)  # as pre-training cuts its windows
    out = {}
    for seed in seeds:
        encs = eval_batches(store, window_nt, tok, dataclasses.replace(cfg, seed=seed))
        # The run logs the evaluation after step s with the masks of step s - 1 (pretrain's loop).
        m = evaluate(model, encs, tok, cfg.masking, run.step - 1, seed, torch.device("cpu"), contextlib.nullcontext)
        out[seed] = round(m["eval_loss"], 3)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    store, n = GenomeStore.open(sys.argv[1]), int(sys.argv[2])
    for path in sys.argv[3:]:
        print(json.dumps({"checkpoint": "/".join(path.split("/")[-3:]), "own_seed": load_config(
            ckpt.open_run(path).config).seed, "heldout_loss_by_seed": heldout_losses(store, path, range(n))}),
            flush=True)
