"""Pure measures behind `randommask analyze`: no files, no plots, no model loading.

* attention: entropy of each query row over the real keys, and the share of the row's weight that goes
  to its top-k keys (`attention_entropy`, `top_k_share`, and `AttentionStats` to accumulate them over
  batches and layers);
* representations: effective rank, the exponential of the entropy of the normalized singular values
  (Roy & Vetterli 2007);
* weights: relative change ``||W - W0|| / ||W0||`` per layer (`relative_change`);
* token embeddings: k-mer labels (central dinucleotide, first and last nucleotide) and silhouette
  scores of the embeddings under those labels (`kmer_labels`, `silhouettes`); the labels are defined for
  tokens of one width (`token_width`), not for BPE;
* masks: the bases an isolated span hides with a given tokenizer (`expected_hidden`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "AttentionStats",
    "attention_entropy",
    "effective_rank",
    "expected_hidden",
    "kmer_labels",
    "layer_groups",
    "relative_change",
    "silhouettes",
    "token_width",
    "top_k_share",
]


# ------------------------------------------------------------------------------------------ attention
def _masked_rows(probs: Tensor, attention_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Probabilities [B, H, T, T] restricted to real keys and renormalized; rows [B, H, T] to count.

    Padding keys get weight 0 (the model gives them ~0 already; renormalizing makes the measures exact
    for any input), and only real query rows are counted.
    """
    p = probs.float()
    b, h, t, _ = p.shape
    if attention_mask is None:
        keep = torch.ones(b, t, dtype=torch.bool, device=p.device)
    else:
        keep = attention_mask.to(p.device).bool()
    p = p * keep[:, None, None, :]
    p = p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    rows = keep[:, None, :].expand(b, h, t)
    return p, rows


def _row_entropy(p: Tensor) -> Tensor:
    return -torch.special.xlogy(p, p).sum(-1)  # 0 log 0 = 0


def attention_entropy(probs: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """Mean entropy (nats) per head [H] of the attention rows of real queries over the real keys.

    A row uniform over L real keys has entropy ln(L); a one-hot row has 0.
    """
    p, rows = _masked_rows(probs, attention_mask)
    ent = _row_entropy(p)
    return (ent * rows).sum((0, 2)) / rows.sum((0, 2)).clamp_min(1)


def top_k_share(probs: Tensor, attention_mask: Tensor | None = None, k: int = 1) -> Tensor:
    """Mean share per head [H] of a real query row's weight that goes to its k most-attended keys."""
    p, rows = _masked_rows(probs, attention_mask)
    share = p.topk(min(k, p.shape[-1]), dim=-1).values.sum(-1)
    return (share * rows).sum((0, 2)) / rows.sum((0, 2)).clamp_min(1)


class AttentionStats:
    """Sums over batches of per-layer, per-head attention entropy and top-k shares.

    ``add(attentions, attention_mask)`` takes the model's tuple of per-layer probabilities
    [B, H, T, T]; the properties give the means over every real query row seen.
    """

    def __init__(self, top_k: Sequence[int] = (1, 5)) -> None:
        self.top_k = tuple(int(k) for k in top_k)
        self._entropy: Tensor | None = None  # [layers, heads] sums
        self._share: dict[int, Tensor] = {}
        self._rows = 0  # real query rows per head
        self._uniform = 0.0  # sum over real query rows of ln(real keys in the row)

    def add(self, attentions: Sequence[Tensor], attention_mask: Tensor) -> None:
        ent, shares = [], {k: [] for k in self.top_k}
        for probs in attentions:
            p, rows = _masked_rows(probs, attention_mask)
            ent.append((_row_entropy(p) * rows).sum((0, 2)))
            for k in self.top_k:
                top = p.topk(min(k, p.shape[-1]), dim=-1).values.sum(-1)
                shares[k].append((top * rows).sum((0, 2)))
        ent_t = torch.stack(ent).double().cpu()
        self._entropy = ent_t if self._entropy is None else self._entropy + ent_t
        for k in self.top_k:
            s = torch.stack(shares[k]).double().cpu()
            self._share[k] = s if k not in self._share else self._share[k] + s
        lengths = attention_mask.bool().sum(1).double().cpu()  # real keys of each row
        self._rows += int(lengths.sum())
        self._uniform += float((lengths * torch.log(lengths.clamp_min(1))).sum())

    @property
    def entropy(self) -> np.ndarray:
        """Mean attention entropy [layers, heads] in nats."""
        assert self._entropy is not None, "no attention added"
        return (self._entropy / max(self._rows, 1)).numpy()

    def share(self, k: int) -> np.ndarray:
        """Mean top-k share [layers, heads]."""
        return (self._share[k] / max(self._rows, 1)).numpy()

    @property
    def uniform_entropy(self) -> float:
        """The entropy the rows would have if uniform over their real keys: mean of ln(L)."""
        return self._uniform / max(self._rows, 1)


# ------------------------------------------------------------------------------------------ representations
def effective_rank(x: np.ndarray | Tensor, center: bool = False) -> float:
    """exp(entropy of the normalized singular values) of a matrix [N, D]: between 1 and min(N, D).

    Singular values under the usual numerical-rank tolerance count as 0, so a rank-r matrix with equal
    singular values gives exactly r. ``center`` subtracts the mean row first (the direction shared by
    every row then does not count).
    """
    m = torch.as_tensor(x).double()
    if m.ndim != 2 or min(m.shape) == 0:
        raise ValueError(f"effective_rank needs a non-empty 2-D matrix, got shape {tuple(m.shape)}")
    if center:
        m = m - m.mean(0, keepdim=True)
    s = torch.linalg.svdvals(m)
    if float(s.max()) <= 0:
        return 1.0
    s = torch.where(s > s.max() * max(m.shape) * torch.finfo(s.dtype).eps, s, torch.zeros_like(s))
    p = s / s.sum()
    return float(torch.exp(_row_entropy(p)))


# ------------------------------------------------------------------------------------------ weights
def layer_groups(names: Sequence[str], num_layers: int) -> dict[str, list[str]]:
    """Weight matrices (names of 2-D parameters) by part of a `BertForMaskedLM`, in model order:
    ``embeddings``, ``layer 1`` .. ``layer N``, ``MLM head`` (the decoder, tied to the word
    embeddings, is counted once, with the embeddings)."""
    groups: dict[str, list[str]] = {"embeddings": []}
    groups.update({f"layer {i + 1}": [] for i in range(num_layers)})
    groups["MLM head"] = []
    for name in names:
        if name.startswith("bert.embeddings."):
            groups["embeddings"].append(name)
        elif name.startswith("bert.encoder.layer."):
            groups[f"layer {int(name.split('.')[3]) + 1}"].append(name)
        elif name.startswith("cls.") and not name.endswith("decoder.weight"):
            groups["MLM head"].append(name)
    return {g: v for g, v in groups.items() if v}


def relative_change(state: Mapping[str, Tensor], state0: Mapping[str, Tensor],
                    num_layers: int) -> dict[str, float]:
    """``||W - W0|| / ||W0||`` (Frobenius, over all weight matrices of the group) per `layer_groups`.

    Only matrices count: LayerNorm gains start at 1 and biases at 0, and would swamp or divide by zero.
    """
    names = [n for n, v in state0.items() if v.ndim >= 2 and n in state]
    out = {}
    for group, members in layer_groups(names, num_layers).items():
        diff = sum(float((state[n].double() - state0[n].double()).pow(2).sum()) for n in members)
        base = sum(float(state0[n].double().pow(2).sum()) for n in members)
        out[group] = math.sqrt(diff) / math.sqrt(base) if base > 0 else float("nan")
    return out


# ------------------------------------------------------------------------------------------ embeddings
def token_width(tokens: Sequence[str]) -> int | None:
    """The width in bases shared by all these (ordinary) tokens: k for k-mers, 1 for single nucleotides,
    None when widths vary (BPE), where a central or last nucleotide names no fixed position."""
    widths = {len(t) for t in tokens}
    return widths.pop() if len(widths) == 1 else None


def kmer_labels(kmers: Sequence[str]) -> dict[str, list[str]]:
    """Labels of k-mers for colouring and silhouettes: the central two nucleotides (positions
    ``(k-1)//2`` and the next: ``ACGTAC`` -> ``GT``), the first and the last nucleotide."""
    k = len(kmers[0])
    c = (k - 1) // 2
    out = {"central dinucleotide": [m[c : c + 2] for m in kmers] if k >= 2 else list(kmers)}
    out["first nucleotide"] = [m[0] for m in kmers]
    out["last nucleotide"] = [m[-1] for m in kmers]
    return out


def silhouettes(emb: np.ndarray, labels: Mapping[str, Sequence[str]], max_points: int = 4096,
                seed: int = 0) -> dict[str, float]:
    """Silhouette score (cosine distance) of ``emb`` [N, D] under each labelling, in [-1, 1].

    The distance matrix is computed once; above ``max_points`` rows a fixed random subset is used.
    """
    from sklearn.metrics import pairwise_distances, silhouette_score

    emb = np.asarray(emb, dtype=np.float64)
    idx = np.arange(len(emb))
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_points, replace=False))
    dist = pairwise_distances(emb[idx], metric="cosine")
    np.fill_diagonal(dist, 0.0)
    dist = np.clip((dist + dist.T) / 2, 0.0, None)  # exact symmetry for sklearn's checks
    out = {}
    for name, lab in labels.items():
        lab = np.asarray(lab)[idx]
        out[name] = float(silhouette_score(dist, lab, metric="precomputed")) if len(set(lab)) > 1 else float("nan")
    return out


# ------------------------------------------------------------------------------------------ masks
def expected_hidden(width: int, k: int, stride: int = 1) -> int:
    """Bases an isolated run of ``width`` masked tokens hides: covered by it and by no visible neighbour.

    The run covers ``(width - 1) * stride + k`` bases; each neighbour shares ``k - stride`` of them,
    so ``max(0, (width + 1) * stride - k)``: ``width - k + 1`` for overlapping k-mers (``m - 5`` for
    6-mers), ``width * k`` for non-overlapping ones.
    """
    return max(0, (width + 1) * stride - k)
