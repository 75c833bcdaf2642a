"""What `randommask analyze` reads from a run folder, and the model passes it makes.

`checkpoint.open_run` gives the run's config, tokenizer, checkpoints and metrics; `eval_encoding` the held-out
windows (the same windows pretrain evaluates on: the store's eval windows for the run's seed and window length).
`build_model` gives a checkpoint's model or the run's initial model; `probe` runs a model on the
windows, unmasked, and returns the attention and representation measures of every layer.

The initial weights are re-created, not read: `randommask.pretrain.pretrain` calls
``torch.manual_seed(seed + rank)`` and then builds the model, with nothing in between drawing from
torch's generator (the store, the samplers and the eval windows use numpy generators of their own),
and rank 0's weights are the ones DistributedDataParallel broadcasts. So ``torch.manual_seed(seed)``
followed by ``BertForMaskedLM(config)`` gives the step-0 weights exactly (tests/test_analysis.py
checks it against a run trained with learning rate 0). Runs started with ``--init-from`` began from
another run's weights instead, which the seed cannot re-create; use ``--reference first`` for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from randommask.analysis.measures import AttentionStats, effective_rank
from randommask.checkpoint import Run
from randommask.config import from_dict
from randommask.errors import RandomMaskError
from randommask.genome import GenomeStore, held_out_windows
from randommask.masking import MaskingConfig
from randommask.model import BertForMaskedLM, ModelConfig
from randommask.tokenizers import Encoding


def run_masking(run: Run) -> MaskingConfig | None:
    """The run's masking config (total_steps = the run's steps), or None if the run has none."""
    data = run.config.get("masking")
    if not isinstance(data, dict):
        return None
    m = from_dict(MaskingConfig, dict(data), where="masking")
    return replace(m, total_steps=int(run.config["steps"])) if "steps" in run.config else m


def open_store(run: Run, store: str | Path | None = None) -> GenomeStore:
    """The run's genome store: ``store`` if given, else ``RUN/genome``, else the config's data.store."""
    candidates = [Path(store)] if store else [run.path / "genome"]
    if not store and (run.config.get("data") or {}).get("store"):
        candidates.append(Path(run.config["data"]["store"]))
    for c in candidates:
        if (c / "index.json").is_file():
            return GenomeStore.open(c)
    raise RandomMaskError(f"{run.path}: no genome store found (looked in {', '.join(map(str, candidates))}); "
                          "pass the store the run was trained on with --store")


def eval_encoding(run: Run, store: GenomeStore, n: int) -> Encoding:
    """The first ``n`` of pretrain's held-out evaluation windows, tokenized as pretrain does (windows of
    ``fill_bases`` bases, cut to the run's token length: for BPE, whose tokens vary in width, the same windows
    pretrain evaluates on only with its cut; for k-mers ``fill_bases`` is exact)."""
    data = run.config.get("data") or {}
    tok = run.tokenizer
    window_nt = tok.fill_bases(run.max_tokens - 2)
    windows = held_out_windows(store, window_nt, n, run.seed, float(data.get("max_n_fraction", 0.05)),
                               float(data.get("heldout_fraction", 0.01)))
    return tok.encode_batch(windows, max_length=run.max_tokens, truncation=True)


def build_model(config: ModelConfig | dict, state: dict | None = None, seed: int = 0) -> BertForMaskedLM:
    """A checkpoint's model, or with ``state`` None the run's initial model (see the module docstring).
    ``config`` may be a run's plain ``model_config``."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    if state is None:
        cpu_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = BertForMaskedLM(config)
        finally:
            torch.random.set_rng_state(cpu_state)  # leave the caller's generator as it was
    else:
        model = BertForMaskedLM(config)
        model.load_state_dict(state)
    return model.eval()


@dataclass
class Probe:
    """Attention and representation measures of one model on the held-out windows."""

    entropy: np.ndarray  # [layers, heads] mean attention entropy (nats)
    shares: dict[int, np.ndarray]  # k -> [layers, heads] mean top-k share
    uniform_entropy: float  # mean ln(L) over the rows: the entropy of uniform attention
    effective_rank: list[float]  # [layers + 1]: embeddings output, then each layer's output (centred)
    effective_rank_uncentred: list[float]

    def to_dict(self) -> dict:
        return {"entropy": self.entropy.tolist(), "entropy_per_layer": self.entropy.mean(1).tolist(),
                "uniform_entropy": self.uniform_entropy,
                "top_k_share": {str(k): v.tolist() for k, v in self.shares.items()},
                "top_k_share_per_layer": {str(k): v.mean(1).tolist() for k, v in self.shares.items()},
                "effective_rank": self.effective_rank, "effective_rank_uncentred": self.effective_rank_uncentred}


@torch.no_grad()
def probe(model: BertForMaskedLM, enc: Encoding, batch_size: int = 4, top_k: tuple[int, ...] = (1, 5),
          device: str | torch.device = "cpu") -> Probe:
    """Run ``model`` on the windows (unmasked, eval mode) and measure every layer.

    Attention: entropy and top-k shares over the real keys of real query rows (specials included, as
    the model sees them). Effective rank: of each layer's output over the k-mer tokens of all windows.
    """
    model = model.to(device).eval()
    stats = AttentionStats(top_k)
    reps: list[list[torch.Tensor]] = []
    ids = torch.from_numpy(enc.ids.astype(np.int64))
    am = torch.from_numpy(enc.attention_mask)
    kmer = torch.from_numpy(~enc.special_mask)
    for i in range(0, ids.shape[0], batch_size):
        sl = slice(i, i + batch_size)
        out = model.bert(ids[sl].to(device), am[sl].to(device), output_attentions=True, output_hidden_states=True)
        stats.add(out.attentions, am[sl].to(device))
        sel = kmer[sl].to(device)
        if not reps:
            reps = [[] for _ in out.hidden_states]
        for j, h in enumerate(out.hidden_states):
            reps[j].append(h[sel].float().cpu())
    mats = [torch.cat(r) for r in reps]
    return Probe(entropy=stats.entropy, shares={k: stats.share(k) for k in top_k},
                 uniform_entropy=stats.uniform_entropy,
                 effective_rank=[effective_rank(m, center=True) for m in mats],
                 effective_rank_uncentred=[effective_rank(m) for m in mats])
