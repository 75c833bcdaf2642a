"""Our own BERT encoder for DNA language models (the BERT / DNABERT layout).

Post-LayerNorm transformer blocks, learned absolute position embeddings, token-type embeddings
and exact (erf) GELU. Module names are chosen so that `state_dict()` keys and shapes are exactly
those of Hugging Face `transformers.BertForMaskedLM` / `BertForSequenceClassification`: export to
and import from HF is then a matter of slicing/padding the vocabulary (see `hf_state_dict` and
`load_hf_state_dict`), never of renaming.

Attention runs through `torch.nn.functional.scaled_dot_product_attention` (fused kernels); when
attention probabilities are asked for, it is computed explicitly instead, since SDPA cannot
return them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from randommask.errors import RandomMaskError
from randommask.masking import IGNORE_INDEX

__all__ = [
    "PRESETS",
    "BertEncoderModel",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "EncoderOutput",
    "MaskedLMOutput",
    "ModelConfig",
    "SequenceClassifierOutput",
    "hf_config_dict",
    "hf_state_dict",
    "load_hf_state_dict",
    "model_config",
    "num_parameters",
]



# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Shape and regularisation of a BERT encoder.

    `pad_vocab_multiple` rounds the embedding / decoder matrices up to a multiple of itself
    (e.g. 64) so matrix multiplies hit fast kernel shapes; logits are always sliced back to
    `vocab_size`, so the padding is invisible outside the model.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    pad_token_id: int = 0
    num_labels: int = 2
    pad_vocab_multiple: int = 1

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "num_labels",
            "pad_vocab_multiple",
        ):
            value = getattr(self, name)
            # bool is an int subclass; `True` layers is a typo, not a number.
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RandomMaskError(f"model config: {name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise RandomMaskError(
                f"model config: hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        pad = self.pad_token_id
        if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < self.vocab_size:
            raise RandomMaskError(
                f"model config: pad_token_id must be an integer in [0, {self.vocab_size}), got {pad!r}"
            )
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise RandomMaskError(f"model config: {name} must be in [0, 1), got {value!r}")
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise RandomMaskError(f"model config: {name} must be a positive number, got {value!r}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding / decoder matrices: vocab_size rounded up to pad_vocab_multiple."""
        m = self.pad_vocab_multiple
        return -(-self.vocab_size // m) * m

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (JSON/YAML friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a dict such as `to_dict()` wrote; unknown or missing keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RandomMaskError(f"model config: unknown key(s) {', '.join(unknown)}")
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise RandomMaskError(f"model config: missing key(s) {', '.join(missing)}")
        return cls(**dict(data))


# Parameter counts at vocab 4101 (6-mer + 5 specials), MLM head included: tiny ~1.0M,
# small ~10M, base ~89M (DNABERT).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 128,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 512,
        "max_position_embeddings": 512,
    },
    "small": {
        "hidden_size": 320,
        "num_layers": 7,
        "num_heads": 5,
        "intermediate_size": 1280,
        "max_position_embeddings": 512,
    },
    "base": {
        "hidden_size": 768,
        "num_layers": 12,
        "num_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
    },
}


def model_config(preset: str, vocab_size: int, **overrides: Any) -> ModelConfig:
    """Config of a named preset (`tiny`, `small`, `base`) for a vocabulary, with field overrides."""
    if preset not in PRESETS:
        raise RandomMaskError(f"unknown model preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    values: dict[str, Any] = {**PRESETS[preset], "vocab_size": vocab_size, **overrides}
    return ModelConfig.from_dict(values)


def hf_config_dict(config: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for `transformers.BertConfig` describing the same model (unpadded vocab)."""
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu",  # HF "gelu" is the exact erf form, as here
        "hidden_dropout_prob": config.hidden_dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_token_id,
        "num_labels": config.num_labels,
        "position_embedding_type": "absolute",
    }


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


@dataclass
class EncoderOutput:
    """`last_hidden_state` [B, T, H]; `pooler_output` [B, H] or None; per-layer tuples or None.

    `hidden_states` holds the embeddings output followed by every layer's output (num_layers + 1
    entries, as in HF); `attentions` holds each layer's probabilities [B, heads, T_q, T_k].
    """

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class MaskedLMOutput:
    """`logits` [B, T, vocab] or, with masked_only, [n_masked, vocab] in row-major position order.

    `loss` is the mean cross-entropy over labels != -100 (None without labels); `num_masked` is a
    0-dim long tensor counting those labels (a tensor, so reading it needs no device sync).
    """

    logits: Tensor
    loss: Tensor | None = None
    num_masked: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput:
    """`logits` [B, num_labels]; `loss` cross-entropy (MSE when num_labels == 1) or None."""

    logits: Tensor
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


# --------------------------------------------------------------------------------------------
# Modules (names mirror HF so state_dict keys match one-to-one)
# --------------------------------------------------------------------------------------------


def dropout_keep(shape: tuple[int, ...], p: float, device: torch.device) -> tuple[Tensor, float]:
    """A boolean keep-mask with each entry dropped with probability ~p, and the exact drop rate used.

    `bernoulli_` on the CPU costs 9-10 ns per element, and the attention probabilities of a training
    step hold tens of millions of them; four 16-bit lanes cut from each full-range 64-bit draw cost
    ~2 ns. The drop rate is quantised to a multiple of 1/65536 (p=0.1 becomes 0.1000061); callers
    rescale by the returned rate, so the expectation is exact. Uses the default generator, so
    `torch.manual_seed` and checkpointed RNG state govern it like any other dropout.
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)
    lanes = words.view(torch.int16)[:n].view(shape)
    cut = round(p * 65536)
    return lanes >= cut - 32768, cut / 65536


def attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask), dropout p on the probabilities, times v: SDPA's math, for the CPU.

    On the CPU, SDPA with dropout leaves its fused kernel for a generic path that draws the mask with
    `bernoulli_` and checks for fully masked rows; here the mask is cheaper (`dropout_keep`), masked
    entries are zeroed in place of multiplied, and the 1/(1-p) rescale is applied to the [.., T, d]
    context instead of the [.., T, T] probabilities. Same distribution as `F.dropout` on the probabilities.
    """
    q, k, v = (x.contiguous() for x in (q, k, v))  # 4-D matmuls on views, not on gathered copies
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-1, -2))
    if mask is not None:
        scores = scores + mask
    keep, rate = dropout_keep(tuple(scores.shape), p, scores.device)
    probs = torch.where(keep, scores.softmax(dim=-1), 0.0)  # one pass (masked_fill would clone first)
    return torch.matmul(probs, v) * (1.0 / (1.0 - rate))


class BertEmbeddings(nn.Module):
    """Word + learned absolute position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.padded_vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        seq_len = input_ids.shape[1]
        if seq_len > self.max_positions:
            raise RandomMaskError(
                f"sequence of {seq_len} tokens is longer than max_position_embeddings {self.max_positions}"
            )
        # Positions are made on the fly rather than kept as a buffer: nothing extra in state_dict.
        positions = torch.arange(seq_len, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        if token_type_ids is None:
            # All segment-0: add the single row instead of gathering a [B, T] index of zeros.
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head attention projections and the attention itself (SDPA or explicit)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_dropout

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # [B, heads, T, d]

    def forward(
        self,
        hidden: Tensor,
        keep: Tensor | None,
        output_attentions: bool = False,
        queries: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention of `queries` [B, Tq, H] (default: `hidden` itself) over `hidden` [B, T, H]."""
        # One matrix multiply for the projections that read `hidden` (query, key, value or key, value):
        # the weights are concatenated on the fly, the parameters (and HF names) stay separate.
        projections = (self.key, self.value) if queries is not None else (self.query, self.key, self.value)
        weight = torch.cat([p.weight for p in projections])
        bias = torch.cat([p.bias for p in projections])
        b, t, _ = hidden.shape
        heads = F.linear(hidden, weight, bias).view(b, t, len(projections), self.num_heads, self.head_dim)
        heads = heads.permute(2, 0, 3, 1, 4)  # [n_proj, B, heads, T, d]
        if queries is None:
            q, k, v = heads.unbind(0)
        else:
            k, v = heads.unbind(0)
            q = self._heads(self.query(queries))
        mask = None
        if keep is not None:
            # Additive mask built in q's dtype (autocast may make it bf16/fp16): finfo.min rather
            # than -inf keeps an all-padding row finite (uniform) instead of NaN, as HF does.
            mask = torch.zeros(keep.shape, dtype=q.dtype, device=q.device)
            mask = mask.masked_fill(~keep, torch.finfo(q.dtype).min)
        dropout_p = self.dropout_p if self.training else 0.0
        probs = None
        if output_attentions:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores + mask
            probs = scores.softmax(dim=-1)
            # Returned probabilities are pre-dropout: rows sum to 1 even in training mode.
            context = torch.matmul(F.dropout(probs, p=dropout_p, training=self.training), v)
        elif dropout_p > 0.0 and q.device.type == "cpu":
            context = attention_with_dropout(q, k, v, mask, dropout_p)
        else:  # CUDA's fused kernels apply dropout themselves; without dropout the CPU's is fused too
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        b, _, t, _ = context.shape
        return context.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim), probs


class BertSelfOutput(nn.Module):
    """Attention output projection, dropout, residual, post-LayerNorm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, context: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(context)) + residual)


class BertAttention(nn.Module):
    """Self-attention sub-block (`attention.self` + `attention.output`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(
        self,
        hidden: Tensor,
        keep: Tensor | None,
        output_attentions: bool = False,
        rows: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        if rows is None:
            context, probs = self.self(hidden, keep, output_attentions)
            return self.output(context, hidden), probs
        # Only the query rows `rows` = (idx [B, m] positions, valid [B, m]) are computed; keys and
        # values still come from every token. The result is flat: [n_valid, H] in row-major order.
        idx, valid = rows
        queries = hidden.gather(1, idx[..., None].expand(-1, -1, hidden.shape[-1]))
        context, _ = self.self(hidden, keep, queries=queries)
        return self.output(context[valid], queries[valid]), None


class BertIntermediate(nn.Module):
    """Feed-forward expansion with exact GELU."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return F.gelu(self.dense(hidden))  # approximate="none": the erf GELU of BERT


class BertOutput(nn.Module):
    """Feed-forward contraction, dropout, residual, post-LayerNorm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertLayer(nn.Module):
    """One post-LN transformer block."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self,
        hidden: Tensor,
        keep: Tensor | None,
        output_attentions: bool = False,
        rows: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """`rows` (see `BertAttention`): compute the block for those positions only, output [n, H]."""
        attended, probs = self.attention(hidden, keep, output_attentions, rows)
        return self.output(self.intermediate(attended), attended), probs


class BertEncoder(nn.Module):
    """The stack of layers (`encoder.layer.{i}`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_layers))


class BertPooler(nn.Module):
    """dense + tanh on the first ([CLS]) token."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: Tensor) -> Tensor:
        return self.pool(hidden[:, 0])

    def pool(self, cls_states: Tensor) -> Tensor:
        """The pooled output of [CLS]'s final states [B, H] alone."""
        return self.activation(self.dense(cls_states))


def _init_weights(module: nn.Module, std: float) -> None:
    """BERT initialisation: N(0, std) weights, zero biases, LayerNorm ones/zeros."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@torch.compiler.disable  # data-dependent shapes: run eagerly between compiled graphs
def _query_rows(subset: Tensor) -> tuple[Tensor, Tensor] | None:
    """(idx [B, m], valid [B, m]): each row's selected positions in order, padded to the row maximum m.

    None when nothing is selected. Reading m is one host-device sync.
    """
    counts = subset.sum(dim=1)
    m = int(counts.max()) if counts.numel() else 0
    if m == 0:
        return None
    # A stable sort puts each row's selected positions first, in position order.
    idx = torch.sort(subset.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :m]
    valid = torch.arange(m, device=subset.device)[None, :] < counts[:, None]
    return idx, valid


class BertEncoderModel(nn.Module):
    """Embeddings + encoder (+ optional pooler): the HF `BertModel` layout.

    Set `gradient_checkpointing = True` to recompute each layer's activations in the backward pass
    instead of keeping them (`torch.utils.checkpoint`): less memory, about one more forward of compute.
    """

    def __init__(self, config: ModelConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(lambda m: _init_weights(m, config.initializer_range))
        self._zero_vocab_padding()

    @torch.no_grad()
    def _zero_vocab_padding(self) -> None:
        # Rows past vocab_size are never looked up; zero keeps them inert and exports clean.
        self.embeddings.word_embeddings.weight[self.config.vocab_size :].zero_()

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        query_subset: Tensor | None = None,
        cls_only: bool = False,
    ) -> EncoderOutput:
        """Encode `input_ids` [B, T]; `attention_mask` [B, T] is 1 for real tokens, 0 for padding.

        `query_subset` (bool [B, T]): only these positions' final states are wanted, and
        `last_hidden_state` is then [n_selected, H] in row-major order (as `hidden[query_subset]`).
        The last layer then runs its queries, output projection and feed-forward on those positions
        only (keys and values still cover every token): the same values, less work. With hidden
        states or attentions asked for, everything is computed and the selection made at the end.
        `cls_only`: the same for the first position ([CLS]) of every row, which is all a sequence
        classifier reads: `last_hidden_state` is [B, H] and `pooler_output` is pooled from it.
        """
        if cls_only and query_subset is not None:
            raise ValueError("give query_subset or cls_only, not both")
        keep = None
        if attention_mask is not None:
            keep = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, T_k], broadcast over heads/queries
        rows = None
        if not (output_attentions or output_hidden_states):
            if query_subset is not None:
                rows = _query_rows(query_subset)
            elif cls_only:  # position 0 of every row: no selection to sort out
                first = torch.zeros(input_ids.shape[0], 1, dtype=torch.long, device=input_ids.device)
                rows = (first, torch.ones_like(first, dtype=torch.bool))
        hidden = self.embeddings(input_ids, token_type_ids)
        all_hidden: list[Tensor] = [hidden]
        all_probs: list[Tensor] = []
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        last = len(self.encoder.layer) - 1
        for i, layer in enumerate(self.encoder.layer):
            layer_rows = rows if i == last else None
            if checkpointing:
                hidden, probs = torch.utils.checkpoint.checkpoint(
                    layer, hidden, keep, output_attentions, layer_rows, use_reentrant=False
                )
            else:
                hidden, probs = layer(hidden, keep, output_attentions, layer_rows)
            all_hidden.append(hidden)
            if probs is not None:
                all_probs.append(probs)
        if query_subset is not None and rows is None:
            hidden = hidden[query_subset]  # the full path (or nothing selected): select at the end
        if cls_only and rows is None:
            hidden = hidden[:, 0]
        pooled = None
        if self.pooler is not None and query_subset is None:  # a subset has no [CLS] column to pool
            pooled = self.pooler.pool(hidden) if cls_only else self.pooler(hidden)
        return EncoderOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_probs) if output_attentions else None,
        )


class BertPredictionHeadTransform(nn.Module):
    """dense + GELU + LayerNorm before the vocabulary projection."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """Transform + decoder; `decoder.bias` is the same Parameter as `bias` (HF keeps both keys)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.padded_vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.padded_vocab_size))
        self.decoder.bias = self.bias
        self.vocab_size = config.vocab_size

    def forward(self, hidden: Tensor) -> Tensor:
        logits = self.decoder(self.transform(hidden))
        # Padded columns are sliced off, so no caller ever sees or predicts them.
        return logits[..., : self.vocab_size] if logits.shape[-1] != self.vocab_size else logits


class BertOnlyMLMHead(nn.Module):
    """Wrapper that gives the `cls.predictions.*` key prefix."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.predictions(hidden)


class BertForMaskedLM(nn.Module):
    """BERT with the masked-language-model head; decoder weight tied to the word embeddings."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertEncoderModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.cls.apply(lambda m: _init_weights(m, config.initializer_range))
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make the decoder use the word-embedding matrix (and decoder.bias the head bias)."""
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        masked_only: bool = False,
        token_type_ids: Tensor | None = None,
    ) -> MaskedLMOutput:
        """MLM logits and loss; `labels` [B, T] hold target ids, -100 where no loss is taken.

        With `masked_only=True` the head (transform + decoder, the vocab-sized matmul) runs only
        on the labelled positions, which is most of the MLM cost saved when ~15% are masked; so do
        the last layer's queries, output projection and feed-forward (nothing else reads them).
        Loss, logits and gradients are those of the full path.
        """
        if masked_only and labels is None:
            raise ValueError("masked_only=True needs labels to know which positions are masked")
        selected = labels != IGNORE_INDEX if labels is not None else None
        out = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            query_subset=selected if masked_only else None,
        )
        hidden = out.last_hidden_state
        loss = num_masked = None
        if labels is None:
            logits = self.cls(hidden)
        else:
            assert selected is not None
            num_masked = selected.sum()
            if masked_only:
                logits = self.cls(hidden)  # the encoder already kept only the masked rows: [n_masked, vocab]
                targets = labels[selected]
            else:
                logits = self.cls(hidden)
                targets = labels
            # Sum / count (count clamped to 1) rather than mean: a batch with nothing masked gives
            # 0 instead of NaN, and both paths reduce the same way.
            total = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            loss = total / num_masked.clamp(min=1)
        return MaskedLMOutput(
            logits=logits,
            loss=loss,
            num_masked=num_masked,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class BertForSequenceClassification(nn.Module):
    """BERT + pooler ([CLS] dense + tanh) + dropout + linear classifier."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.num_labels = config.num_labels
        self.bert = BertEncoderModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        _init_weights(self.classifier, config.initializer_range)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        token_type_ids: Tensor | None = None,
    ) -> SequenceClassifierOutput:
        """Class logits [B, num_labels]; loss is cross-entropy (MSE if num_labels == 1)."""
        # Only [CLS]'s final state reaches the classifier, so the last layer runs its queries, output
        # projection and feed-forward for [CLS] alone (`cls_only`): the same logits as BERT's full last
        # layer. It saves most of one layer's work: ~40% of a 2-layer model's multiply-adds, ~8% of a
        # 12-layer one's (bench/RESULTS.md, "Fine-tuning, CPU").
        out = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            cls_only=True,
        )
        assert out.pooler_output is not None  # built with add_pooling_layer=True
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.reshape(-1))
        return SequenceClassifierOutput(
            logits=logits, loss=loss, hidden_states=out.hidden_states, attentions=out.attentions
        )


# --------------------------------------------------------------------------------------------
# Hugging Face interchange
# --------------------------------------------------------------------------------------------

# Keys whose first dimension is the vocabulary (padded inside our model, unpadded in HF).
_VOCAB_SUFFIXES = (
    "embeddings.word_embeddings.weight",
    "cls.predictions.decoder.weight",
    "cls.predictions.bias",
    "cls.predictions.decoder.bias",
)
# Tied aliases -> the key that owns the values (HF ties them the same way).
_TIED = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
# HF buffers that some versions put in state_dict; we compute them on the fly.
_HF_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def _config_of(model: nn.Module) -> ModelConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"{type(model).__name__} is not a randommask BERT model")
    return config


def hf_state_dict(model: nn.Module, include_tied: bool = True) -> dict[str, Tensor]:
    """State dict in HF `BertForMaskedLM` / `BertForSequenceClassification` / `BertModel` layout.

    Vocabulary padding is stripped. `include_tied=False` drops the tied aliases
    (`cls.predictions.decoder.{weight,bias}`), as HF does on disk; safetensors refuses shared
    tensors, so use it when saving with safetensors.
    """
    config = _config_of(model)
    out: dict[str, Tensor] = {}
    for key, tensor in model.state_dict().items():
        if not include_tied and key in _TIED:
            continue
        tensor = tensor.detach()
        if key.endswith(_VOCAB_SUFFIXES) and tensor.shape[0] != config.vocab_size:
            # Copy rather than view: a slice would still hold the padded storage.
            tensor = tensor[: config.vocab_size].clone()
        out[key] = tensor
    return out


def load_hf_state_dict(
    model: nn.Module, state_dict: Mapping[str, Tensor], strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load an HF-layout BERT state dict into our model; returns (missing_keys, unexpected_keys).

    Handles: vocabulary padding (rows appended as zeros), tied aliases absent from the file,
    HF buffers (`position_ids`, `token_type_ids`), old `LayerNorm.gamma/beta` names, and the
    `bert.` prefix present or absent (e.g. a `BertModel` checkpoint into a task model).
    Use `strict=False` to start a task model from a pre-trained MLM checkpoint.
    """
    config = _config_of(model)
    own = model.state_dict()
    wants_prefix = any(key.startswith("bert.") for key in own)
    sd: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        if key.endswith(_HF_BUFFERS):
            continue
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        is_head = key.startswith(("cls.", "classifier."))
        if wants_prefix and not is_head and not key.startswith("bert."):
            key = "bert." + key
        elif not wants_prefix and key.startswith("bert."):
            key = key[len("bert.") :]
        sd[key] = tensor
    # The owner of a tied pair wins, as in HF; fill aliases a file left out.
    for alias, owner in _TIED.items():
        if alias in own:
            if owner in sd:
                sd[alias] = sd[owner]
            elif alias in sd:
                sd[owner] = sd[alias]
    padded = config.padded_vocab_size
    for key, tensor in list(sd.items()):
        if key not in own:
            continue
        target = own[key].shape
        if key.endswith(_VOCAB_SUFFIXES) and tensor.shape[0] != target[0]:
            if tensor.shape[0] != config.vocab_size:
                raise RandomMaskError(
                    f"checkpoint {key} has vocabulary {tensor.shape[0]}, model config has {config.vocab_size}"
                )
            pad = tensor.new_zeros((padded - tensor.shape[0], *tensor.shape[1:]))
            tensor = torch.cat([tensor, pad])
            sd[key] = tensor
        if tensor.shape != target:
            raise RandomMaskError(
                f"checkpoint {key} has shape {tuple(tensor.shape)}, model expects {tuple(target)}"
            )
    missing = [key for key in own if key not in sd]
    unexpected = [key for key in sd if key not in own]
    if strict and (missing or unexpected):
        # A one-line user error instead of torch's multi-line RuntimeError.
        raise RandomMaskError(
            f"checkpoint does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}"
            f", unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    model.load_state_dict(sd, strict=False)
    if isinstance(model, BertForMaskedLM):
        model.tie_weights()  # load_state_dict copies in place, but re-tie in case anything swapped
    return missing, unexpected


def num_parameters(model: nn.Module, exclude_embeddings: bool = False) -> int:
    """Number of distinct parameters (tied ones counted once), optionally without embeddings."""
    params = {id(p): p for p in model.parameters()}
    if exclude_embeddings:
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                params.pop(id(module.weight), None)
    return sum(p.numel() for p in params.values())
