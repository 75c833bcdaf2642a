"""The masking family for masked-language-model pre-training of DNA models, and what a mask hides.

Three strategies, each a pure function of (token ids, special-token positions, rng, training step):

* ``bert``: every maskable token is chosen with probability 15%.
* ``dnabert``: DNABERT's contiguous spans. Mask centres are drawn with probability p (0.025); a centre
  at token i masks the m tokens i - m/2 + 1 .. i + m/2 with m = k (for 6-mers: i-2 .. i+3). With
  overlapping 6-mers, six consecutive masked tokens leave only one base uncovered by any visible token,
  so the task reduces to guessing one nucleotide from its neighbours (`hidden_nucleotides`).
* ``randommask``: the curriculum of Liang et al. Training is cut into phases; in phase q the span
  width grows, so more bases are truly hidden and the task gets harder as training proceeds.

  **The paper does not publish its schedule; this is our reconstruction.** By default there are
  5 phases of equal length over the planned steps; in phase q (0-based) each centre draws its span
  width uniformly from the even widths k, k+2, ..., k+2q (phase 0 is DNABERT's masking, phase 4 reaches
  k+8), and the centre probability is solved for so that the expected fraction of masked tokens stays
  at the target (15%). Every number is a `MaskingConfig` field.

All strategies then apply BERT's 80/10/10 rule to the chosen tokens (80% [MASK], 10% a random ordinary token,
10% unchanged). Special tokens and padding are never masked; spans are clipped at the sequence ends;
labels are -100 except at masked positions. Everything is vectorized over the batch: the only Python
loops run over the (at most a few) span offsets, never over tokens.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace

import numpy as np

from randommask.errors import RandomMaskError

IGNORE_INDEX = -100  # the label of every position that takes no part in the loss (PyTorch / HF convention)


@dataclass
class MaskingConfig:
    """Parameters of every masking strategy (only the fields of the chosen strategy are used).

    strategy: "bert", "dnabert" or "randommask".
    k: k-mer length of the tokenizer; DNABERT's span width and RandomMask's default start width.
    mask_prob: bert: probability that a token is chosen.
    centre_prob: dnabert: probability that a token is a span centre (DNABERT: 0.025).
    phases: randommask: number of curriculum phases.
    start_width: randommask: span width of phase 0 (None: k).
    width_growth: randommask: how much the largest width grows per phase.
    random_width: randommask: draw each span's width uniformly from start_width, start_width +
        width_growth, ..., up to the phase maximum (True), or always use the phase maximum (False).
    curriculum: randommask: widen the spans phase by phase (True), or use the last phase's widths
        from step 0 (False: the ablation without a curriculum).
    target_fraction: randommask: expected fraction of maskable tokens masked; sets the centre prob.
    phase_boundaries: randommask: the steps at which phases 1, 2, ... begin (len = phases - 1);
        None: equal phases over total_steps.
    total_steps: the planned number of training steps (for equal phases); a run sets it (and k) through
        `plan`, never by changing its config.
    mask_token_frac, random_token_frac: the 80/10/10 rule (the rest is left unchanged).
    """

    strategy: str = "randommask"
    k: int = 6
    mask_prob: float = 0.15
    centre_prob: float = 0.025
    phases: int = 5
    start_width: int | None = None
    width_growth: int = 2
    random_width: bool = True
    curriculum: bool = True
    target_fraction: float = 0.15
    phase_boundaries: list[int] | None = None
    total_steps: int = 10_000
    mask_token_frac: float = 0.8  # share of chosen tokens replaced by [MASK] (BERT's 80%)
    random_token_frac: float = 0.1  # share replaced by a random token (10%); the rest stays unchanged

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RandomMaskError(f"unknown masking strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        for name in ("mask_prob", "centre_prob", "target_fraction", "mask_token_frac", "random_token_frac"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise RandomMaskError(f"masking {name} must be between 0 and 1, got {v}")
        if self.mask_token_frac + self.random_token_frac > 1.0:
            raise RandomMaskError("mask_token_frac + random_token_frac must not exceed 1")
        if self.k < 1 or self.phases < 1 or self.total_steps < 1 or self.width_growth < 0:
            raise RandomMaskError("masking k, phases and total_steps must be positive, width_growth >= 0")
        if self.start_width is not None and self.start_width < 1:
            raise RandomMaskError(f"masking start_width must be positive, got {self.start_width}")
        if self.phase_boundaries is not None:
            b = list(self.phase_boundaries)
            if len(b) != self.phases - 1 or any(x >= y for x, y in zip(b, b[1:], strict=False)) or (b and b[0] < 1):
                raise RandomMaskError(f"phase_boundaries must be {self.phases - 1} increasing positive steps, got {b}")

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------ strategies
class Strategy:
    """One masking strategy: how many tokens a centre covers and how likely a centre is at each step,
    and how to say so to a person. Registered by name in `STRATEGIES` (`register`); a new strategy is
    one subclass here plus its tests, and every command (pretrain, the model card, the demo, analyze)
    asks it instead of testing its name.

    The defaults are a strategy without phases (one schedule for the whole run).
    """

    name: str = ""
    title: str = ""  # how a person names it: "BERT", "DNABERT", "RandomMask"
    spans_of_tokens: bool = True  # its widths count in the tokenizer's span unit (config.k follows it)
    phased: bool = False  # training moves through phases (pretrain logs each one as it begins)

    def phase_at(self, config: MaskingConfig, step: int) -> int:
        return 0

    def phase_starts(self, config: MaskingConfig) -> list[int]:
        return [0]

    def follows_steps(self, config: MaskingConfig) -> bool:
        """Whether the schedule moves with the planned steps (so a resume may not change them)."""
        return False

    def span_widths(self, config: MaskingConfig, step: int) -> list[int]:
        raise NotImplementedError

    def centre_probability(self, config: MaskingConfig, step: int) -> float:
        raise NotImplementedError

    def describe(self, config: MaskingConfig) -> list[str]:
        """Markdown bullet lines for a model card or report: the strategy, its numbers, and its phases."""
        raise NotImplementedError


STRATEGIES: dict[str, Strategy] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy to `STRATEGIES` under its ``name``."""
    STRATEGIES[cls.name] = cls()
    return cls


def _split(config: MaskingConfig) -> str:
    return (f"{config.mask_token_frac:.0%} [MASK], {config.random_token_frac:.0%} random token, "
            f"{1 - config.mask_token_frac - config.random_token_frac:.0%} unchanged")


@register
class Bert(Strategy):
    """Every maskable token is chosen with probability ``mask_prob`` (15%)."""

    name, title, spans_of_tokens = "bert", "BERT", False

    def span_widths(self, config: MaskingConfig, step: int) -> list[int]:
        return [1]

    def centre_probability(self, config: MaskingConfig, step: int) -> float:
        return config.mask_prob

    def describe(self, config: MaskingConfig) -> list[str]:
        return [f"- Masking: BERT, each token chosen with probability {config.mask_prob} ({_split(config)})"]


@register
class Dnabert(Strategy):
    """Contiguous spans of k tokens around centres drawn with probability ``centre_prob``."""

    name, title = "dnabert", "DNABERT"

    def span_widths(self, config: MaskingConfig, step: int) -> list[int]:
        return [config.k]

    def centre_probability(self, config: MaskingConfig, step: int) -> float:
        return config.centre_prob

    def describe(self, config: MaskingConfig) -> list[str]:
        return [f"- Masking: DNABERT, spans of {config.k} consecutive k-mers (the tokens overlapping one "
                f"nucleotide), centre probability {config.centre_prob} ({_split(config)})"]


@register
class RandomMask(Strategy):
    """The curriculum: phases whose spans widen, the centre probability solved for the target fraction."""

    name, title, phased = "randommask", "RandomMask", True

    def phase_at(self, config: MaskingConfig, step: int) -> int:
        if not config.curriculum:
            return config.phases - 1
        if config.phase_boundaries is not None:
            return int(np.searchsorted(np.asarray(config.phase_boundaries), step, side="right"))
        return min(config.phases - 1, max(0, step) * config.phases // config.total_steps)

    def phase_starts(self, config: MaskingConfig) -> list[int]:
        if not config.curriculum:
            return [0]
        if config.phase_boundaries is not None:
            return [0, *config.phase_boundaries]
        # The smallest step s with s * phases // total >= q.
        return [-(-q * config.total_steps // config.phases) for q in range(config.phases)]

    def follows_steps(self, config: MaskingConfig) -> bool:
        return config.curriculum and config.phase_boundaries is None

    def span_widths(self, config: MaskingConfig, step: int) -> list[int]:
        q = self.phase_at(config, step)
        start = config.start_width or config.k
        widths = [start + config.width_growth * j for j in range(q + 1)]
        return widths if config.random_width else [widths[-1]]

    def centre_probability(self, config: MaskingConfig, step: int) -> float:
        return _solve_centre_prob(tuple(self.span_widths(config, step)), config.target_fraction)

    def describe(self, config: MaskingConfig) -> list[str]:
        draw = "each span draws its width at random up to the phase maximum" if config.random_width else \
            "all spans at the phase maximum"
        lines = [f"- Masking: RandomMask, a curriculum of {config.phases} phases over {config.total_steps} steps "
                 f"whose masked spans widen ({draw}), with the centre probability set so that about "
                 f"{config.target_fraction:.0%} of tokens are masked ({_split(config)}):"]
        starts = self.phase_starts(config)
        for q, start in enumerate(starts):
            end = starts[q + 1] - 1 if q + 1 < len(starts) else config.total_steps - 1
            lines.append(f"  - phase {q + 1}: steps {start}-{end}, span widths "
                         f"{', '.join(map(str, self.span_widths(config, start)))} k-mers, centre probability "
                         f"{self.centre_probability(config, start):.4f}")
        return lines


def strategy(config: MaskingConfig) -> Strategy:
    return STRATEGIES[config.strategy]


def plan(config: MaskingConfig, total_steps: int, span_unit: int) -> MaskingConfig:
    """The masking a run uses: ``config`` with the run's planned steps and, for strategies whose spans
    count tokens, the tokenizer's span unit as k. A new config: the one given is never changed."""
    k = span_unit if strategy(config).spans_of_tokens else config.k
    return replace(config, total_steps=int(total_steps), k=int(k))


# ------------------------------------------------------------------------------------------ schedule
def phase_at(config: MaskingConfig, step: int) -> int:
    """The phase (0-based) in force at a training step; 0 for strategies without phases."""
    return strategy(config).phase_at(config, step)


def phase_starts(config: MaskingConfig) -> list[int]:
    """The first step of every phase (one phase, from step 0, without a curriculum)."""
    return strategy(config).phase_starts(config)


def span_widths(config: MaskingConfig, step: int) -> list[int]:
    """The span widths a centre may draw at this step (one width for bert: 1, dnabert: k)."""
    return strategy(config).span_widths(config, step)


def _extent(width: np.ndarray | int) -> tuple:
    """A centre at i with width m covers i - left .. i + right: the paper's i-m/2+1 .. i+m/2."""
    return (np.asarray(width) - 1) // 2, np.asarray(width) // 2


def _covered_fraction(p: float, widths: list[int]) -> float:
    """Probability that a token far from the ends is covered by at least one span."""
    left, right = _extent(np.array(widths))
    offsets = np.arange(-int(right.max()), int(left.max()) + 1)
    # P(a centre at offset d from the token covers it) = share of widths whose extent reaches it.
    reach = ((offsets[:, None] >= -right) & (offsets[:, None] <= left)).mean(axis=1)
    return float(1.0 - np.prod(1.0 - p * reach))


def centre_probability(config: MaskingConfig, step: int) -> float:
    """The probability that a token is a span centre at this step.

    bert: mask_prob; dnabert: centre_prob; randommask: solved (bisection) so that the expected masked
    fraction of tokens away from the ends equals target_fraction for this phase's widths.
    """
    return strategy(config).centre_probability(config, step)


@functools.lru_cache(maxsize=256)
def _solve_centre_prob(widths: tuple[int, ...], target: float) -> float:
    if _covered_fraction(1.0, list(widths)) <= target:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _covered_fraction(mid, list(widths)) < target else (lo, mid)
    return (lo + hi) / 2


def expected_mask_fraction(config: MaskingConfig, step: int) -> float:
    """Expected masked fraction of tokens away from the sequence ends."""
    return _covered_fraction(centre_probability(config, step), span_widths(config, step))


def describe_lines(config: MaskingConfig) -> list[str]:
    """The strategy's own description (markdown bullets): what the model card, demo and report print."""
    return strategy(config).describe(config)


def describe(config: MaskingConfig, step: int) -> dict:
    """A summary for logs: phase, width range and centre probability at this step."""
    widths = span_widths(config, step)
    return {"phase": phase_at(config, step), "width_min": min(widths), "width_max": max(widths),
            "centre_prob": centre_probability(config, step)}


# ------------------------------------------------------------------------------------------ masking
def masking_rng(seed: int, step: int, rank: int = 0, worker: int = 0) -> np.random.Generator:
    """The generator for one batch: the mask of a batch is reproducible from (seed, step, rank)."""
    return np.random.default_rng(np.random.SeedSequence([seed, step, rank, worker]))


#: Streams apart from every training rank's (ranks count from 0; no run has 10,000 of them): the held-out
#: evaluation's masks, and the masks the analyses draw to measure what a strategy hides.
EVAL_STREAM = 10_000
ANALYSIS_STREAM = 20_000


def eval_rng(seed: int, batch: int) -> np.random.Generator:
    """The mask generator of held-out batch ``batch``: the same masks at every evaluation of a run (only
    the phase changes), for pretrain's evaluations and the demo's baselines alike."""
    return masking_rng(seed, 0, EVAL_STREAM + batch)


def analysis_rng(seed: int, step: int, draw: int = 0) -> np.random.Generator:
    """The generator of an analysis's mask draw ``draw`` at ``step`` (demo and analyze)."""
    return masking_rng(seed, step, ANALYSIS_STREAM + draw)


def choose_masked(special_mask: np.ndarray, rng: np.random.Generator, config: MaskingConfig,
                  step: int) -> np.ndarray:
    """Boolean [B, T]: which tokens are masked (before the 80/10/10 replacement)."""
    b, t = special_mask.shape
    n = b * t
    p = centre_probability(config, step)
    special = special_mask.reshape(-1)
    if p <= 0.0 or n == 0:
        return np.zeros((b, t), dtype=bool)
    # Bernoulli(p) centres on the flat batch, drawn as geometric gaps: ~p*n draws instead of n.
    expected = int(n * p + 6 * np.sqrt(n * p) + 16)
    gaps = rng.geometric(p, size=expected) if p < 1.0 else np.ones(expected, dtype=np.int64)
    pos = np.cumsum(gaps) - 1
    while pos[-1] < n - 1:  # rare: the first draw fell short of the end
        more = rng.geometric(p, size=expected) if p < 1.0 else np.ones(expected, dtype=np.int64)
        pos = np.concatenate([pos, pos[-1] + np.cumsum(more)])
    centres = pos[pos < n]
    centres = centres[~special[centres]]  # only real tokens can be centres
    widths = span_widths(config, step)
    w = np.asarray(widths)[rng.integers(0, len(widths), size=centres.size)] if len(widths) > 1 \
        else np.full(centres.size, widths[0])
    return spans_to_mask(centres, w, special, t).reshape(b, t)


def spans_to_mask(centres: np.ndarray, widths: np.ndarray, special: np.ndarray, t: int) -> np.ndarray:
    """Flat boolean mask of the spans: the centre at flat index c with width m covers the tokens
    c - m/2 + 1 .. c + m/2 of its row (``(m - 1) // 2`` left, ``m // 2`` right), clipped at the row's
    ends and at the tokens that may not be masked (``special`` True: [CLS], [SEP], padding)."""
    n = special.shape[0]
    left, right = _extent(widths)
    row_start = (centres // t) * t
    lo = np.maximum(centres - left, row_start)  # clip spans at the row: never leak into the next one
    hi = np.minimum(centres + right, row_start + t - 1)
    # Expand each span into its token indices: ~p*n centres x max width, far fewer than n tokens.
    idx = lo[:, None] + np.arange(int(np.max(widths, initial=1)))
    idx = idx[idx <= hi[:, None]]
    mask = np.zeros(n, dtype=bool)
    mask[idx[~special[idx]]] = True  # filter the few span indices, not the whole batch
    return mask


def apply_mask(ids: np.ndarray, special_mask: np.ndarray, rng: np.random.Generator, config: MaskingConfig,
               step: int, mask_id: int, random_ids: np.ndarray,
               inplace: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask a batch of token ids.

    Args:
        ids: int [B, T] token ids.
        special_mask: bool [B, T], True at [CLS], [SEP] and padding.
        rng: the batch's generator (see `masking_rng`).
        step: the training step (selects the RandomMask phase).
        mask_id: the [MASK] id; random_ids: the ids a replaced token is drawn from (the k-mers).
        inplace: corrupt ``ids`` itself instead of a copy (the data pipeline, which owns the batch).
    Returns:
        (input_ids, labels, mask): the corrupted ids, labels (-100 except at masked positions, where
        they hold the original id), and the boolean mask of chosen positions.
    """
    ids = np.asarray(ids)
    mask = choose_masked(special_mask, rng, config, step)
    flat_idx = np.flatnonzero(mask)
    labels = np.full(ids.shape, IGNORE_INDEX, dtype=ids.dtype)
    labels.reshape(-1)[flat_idx] = ids.reshape(-1)[flat_idx]
    inputs = ids if inplace else ids.copy()
    r = rng.random(flat_idx.size)
    to_mask = flat_idx[r < config.mask_token_frac]
    to_random = flat_idx[(r >= config.mask_token_frac) & (r < config.mask_token_frac + config.random_token_frac)]
    flat = inputs.reshape(-1)
    flat[to_mask] = mask_id
    flat[to_random] = random_ids[rng.integers(0, len(random_ids), size=to_random.size)]
    return inputs, labels, mask


# ------------------------------------------------------------------------------------------ analysis
@dataclass
class HiddenReport:
    """What a mask truly hides in a batch of k-mer tokens.

    hidden_per_seq: int [B], bases covered by masked tokens only (no visible token covers them).
    masked_per_seq: int [B], masked tokens.
    run_rows, run_starts: int [R], the row and first token position of every maximal run of
        consecutive masked tokens.
    run_lengths: int [R], the length (in tokens) of every run.
    run_hidden: int [R], the bases each run truly hides.
    """

    hidden_per_seq: np.ndarray
    masked_per_seq: np.ndarray
    run_rows: np.ndarray
    run_starts: np.ndarray
    run_lengths: np.ndarray
    run_hidden: np.ndarray


def hidden_nucleotides(mask: np.ndarray, spans: np.ndarray) -> HiddenReport:
    """Count the bases a mask truly hides: covered by some masked token and by no unmasked one.

    With overlapping k-mers (stride 1) an isolated run of m masked tokens hides max(0, m - k + 1)
    bases (for 6-mers, m - 5): every other base of the run is still spelled out by a visible
    neighbour. With non-overlapping tokens every masked token hides its k bases. This is the paper's
    argument for why DNABERT's masking is nearly trivial with overlapping tokens.

    Args:
        mask: bool [B, T], the masked positions.
        spans: int [B, T, 2], each token's [start, end) in bases (-1 for special/padding tokens).
    """
    mask = np.asarray(mask, dtype=bool)
    b, t = mask.shape
    real = spans[..., 0] >= 0
    length = int(spans[..., 1].max(initial=0)) + 1  # bases per row, with room for the end marker
    offs = (np.arange(b) * length)[:, None]
    # Coverage counts per base by visible tokens and by masked tokens, via difference arrays.
    def coverage(sel: np.ndarray) -> np.ndarray:
        starts = (spans[..., 0] + offs)[sel]
        ends = (spans[..., 1] + offs)[sel]
        d = np.bincount(starts, minlength=b * length + 1)[: b * length + 1]
        d = d - np.bincount(ends, minlength=b * length + 1)[: b * length + 1]
        return np.cumsum(d[: b * length]).reshape(b, length)

    visible = coverage(real & ~mask)
    masked = coverage(real & mask)
    hidden = (masked > 0) & (visible == 0)
    hidden_per_seq = hidden.sum(axis=1)
    masked_per_seq = (mask & real).sum(axis=1)
    # Maximal runs of masked tokens along each row, and the hidden bases inside each run's span.
    m = np.zeros((b, t + 2), dtype=np.int8)
    m[:, 1:-1] = mask & real
    edges = np.diff(m, axis=1)
    rs_r, rs_c = np.nonzero(edges == 1)
    re_r, re_c = np.nonzero(edges == -1)  # same row-major order as the starts
    run_lengths = re_c - rs_c
    cum = np.concatenate([np.zeros((b, 1), np.int64), np.cumsum(hidden, axis=1)], axis=1)
    first = spans[rs_r, rs_c, 0]
    last = spans[re_r, re_c - 1, 1]
    run_hidden = cum[rs_r, last] - cum[rs_r, first]
    return HiddenReport(hidden_per_seq, masked_per_seq, rs_r, rs_c, run_lengths, run_hidden)
