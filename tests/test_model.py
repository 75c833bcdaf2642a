"""Tests for randommask.model: parity with Hugging Face BERT, masked-only head, vocab padding."""

from __future__ import annotations

import pytest
import torch
import transformers

from randommask.errors import RandomMaskError
from randommask.model import (
    PRESETS,
    BertEncoderModel,
    BertForMaskedLM,
    BertForSequenceClassification,
    ModelConfig,
    attention_with_dropout,
    dropout_keep,
    hf_config_dict,
    hf_state_dict,
    load_hf_state_dict,
    model_config,
    num_parameters,
)

ATOL = 1e-5
VOCAB = 69  # 4**3 + 5 specials: a 3-mer vocabulary keeps the test fast
# Buffers HF may keep in its state_dict that our model computes on the fly.
HF_BUFFERS = {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}


def small_config(**overrides: object) -> ModelConfig:
    values: dict = {
        "vocab_size": VOCAB,
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 4,
        "intermediate_size": 128,
        "max_position_embeddings": 64,
        "num_labels": 3,
    }
    values.update(overrides)
    return ModelConfig(**values)


def hf_twin(ours: torch.nn.Module, hf_class: type, attn: str = "eager") -> torch.nn.Module:
    """The HF model of the same config carrying our weights (strict load except HF buffers)."""
    config = transformers.BertConfig(**hf_config_dict(ours.config), attn_implementation=attn)
    hf = hf_class(config)
    result = hf.load_state_dict(hf_state_dict(ours), strict=False)
    assert set(result.missing_keys) <= HF_BUFFERS
    assert not result.unexpected_keys
    return hf.eval()


def batch(seed: int = 0, b: int = 3, t: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids with trailing padding on all but the first row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    for row, length in enumerate([t, t - 5, 4][:b]):
        mask[row, length:] = 0
    ids[mask == 0] = 0  # pad token
    return ids, mask


@pytest.fixture(scope="module")
def mlm() -> BertForMaskedLM:
    torch.manual_seed(0)
    return BertForMaskedLM(small_config()).eval()


def test_state_dict_keys_match_hf(mlm: BertForMaskedLM) -> None:
    hf = transformers.BertForMaskedLM(transformers.BertConfig(**hf_config_dict(mlm.config)))
    hf_shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items() if k not in HF_BUFFERS}
    ours = {k: tuple(v.shape) for k, v in mlm.state_dict().items()}
    assert ours == hf_shapes  # identity mapping, no renaming


def test_decoder_tied_to_embeddings(mlm: BertForMaskedLM) -> None:
    pred = mlm.cls.predictions
    assert pred.decoder.weight is mlm.bert.embeddings.word_embeddings.weight
    assert pred.decoder.bias is pred.bias


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_mlm_logits_match_hf(mlm: BertForMaskedLM, attn: str) -> None:
    hf = hf_twin(mlm, transformers.BertForMaskedLM, attn)
    ids, mask = batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1:4] = ids[:, 1:4]
    with torch.no_grad():
        ours = mlm(ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        theirs = hf(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    # Padded query positions are computed the same way by both, so every position is compared.
    torch.testing.assert_close(ours.logits, theirs.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=ATOL, rtol=0)
    assert len(ours.hidden_states) == mlm.config.num_layers + 1
    for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    # No mask at all takes SDPA's unmasked path.
    with torch.no_grad():
        torch.testing.assert_close(mlm(ids).logits, hf(input_ids=ids).logits, atol=ATOL, rtol=0)


def test_sequence_classification_matches_hf() -> None:
    torch.manual_seed(1)
    ours = BertForSequenceClassification(small_config()).eval()
    hf = hf_twin(ours, transformers.BertForSequenceClassification, "sdpa")
    ids, mask = batch(seed=1)
    labels = torch.tensor([0, 2, 1])
    token_types = (torch.arange(ids.shape[1]) >= 8).long().expand_as(ids)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, labels=labels, token_type_ids=token_types)
        b = hf(input_ids=ids, attention_mask=mask, labels=labels, token_type_ids=token_types)
    assert a.logits.shape == (3, 3)
    torch.testing.assert_close(a.logits, b.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(a.loss, b.loss, atol=ATOL, rtol=0)


def test_classifier_cls_only_last_layer_matches_full_layer() -> None:
    """The classifier's last layer runs for [CLS] alone; the full layer (taken when hidden states are
    asked for) gives the same logits and, in training without dropout, the same gradients."""
    torch.manual_seed(3)
    clf = BertForSequenceClassification(small_config(hidden_dropout=0.0, attention_dropout=0.0)).train()
    ids, mask = batch(seed=3)
    labels = torch.tensor([2, 0, 1])
    grads = []
    for full in (False, True):
        clf.zero_grad()
        out = clf(ids, attention_mask=mask, labels=labels, output_hidden_states=full)
        out.loss.backward()
        grads.append((out.logits.detach(), [p.grad.clone() for p in clf.parameters()]))
    (fast_logits, fast_grads), (full_logits, full_grads) = grads
    torch.testing.assert_close(fast_logits, full_logits, atol=ATOL, rtol=0)
    for a, b in zip(fast_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    # The encoder on its own: [CLS]'s states [B, H] and the same pooled output as the full path.
    enc = clf.bert.eval()
    with torch.no_grad():
        whole = enc(ids, attention_mask=mask)
        first = enc(ids, attention_mask=mask, cls_only=True)
    assert first.last_hidden_state.shape == (3, 64)
    torch.testing.assert_close(first.last_hidden_state, whole.last_hidden_state[:, 0], atol=ATOL, rtol=0)
    torch.testing.assert_close(first.pooler_output, whole.pooler_output, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="not both"):
        enc(ids, query_subset=mask.bool(), cls_only=True)


def test_output_attentions(mlm: BertForMaskedLM) -> None:
    hf = hf_twin(mlm, transformers.BertForMaskedLM, "eager")
    ids, mask = batch(seed=2)
    with torch.no_grad():
        plain = mlm(ids, attention_mask=mask)
        ours = mlm(ids, attention_mask=mask, output_attentions=True)
        theirs = hf(input_ids=ids, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(ours.logits, plain.logits, atol=ATOL, rtol=0)
    assert plain.attentions is None
    assert len(ours.attentions) == mlm.config.num_layers
    b, t = ids.shape
    pad_keys = (mask == 0)[:, None, None, :].expand(b, mlm.config.num_heads, t, t)
    for probs, hf_probs in zip(ours.attentions, theirs.attentions, strict=True):
        assert probs.shape == (b, mlm.config.num_heads, t, t)
        torch.testing.assert_close(probs.sum(-1), torch.ones(b, mlm.config.num_heads, t), atol=ATOL, rtol=0)
        assert torch.all(probs[pad_keys] == 0)
        torch.testing.assert_close(probs, hf_probs, atol=ATOL, rtol=0)


def test_encoder_model_outputs() -> None:
    torch.manual_seed(3)
    enc = BertEncoderModel(small_config()).eval()
    ids, mask = batch(seed=3)
    out = enc(ids, attention_mask=mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 17, 64)
    assert out.pooler_output.shape == (3, 64)
    assert out.hidden_states[-1] is out.last_hidden_state
    assert BertEncoderModel(small_config(), add_pooling_layer=False)(ids).pooler_output is None
    with pytest.raises(RandomMaskError, match="max_position_embeddings"):
        enc(torch.zeros(1, 65, dtype=torch.long))


def masked_labels(ids: torch.Tensor, mask: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pick = (torch.rand(ids.shape, generator=g) < 0.3) & mask.bool()
    return torch.where(pick, ids, torch.full_like(ids, -100))


def test_masked_only_matches_full_path(mlm: BertForMaskedLM) -> None:
    ids, mask = batch(seed=4)
    labels = masked_labels(ids, mask, seed=4)
    n = int((labels != -100).sum())
    mlm.zero_grad()
    full = mlm(ids, attention_mask=mask, labels=labels)
    full.loss.backward()
    full_grads = [p.grad.clone() for p in mlm.parameters()]
    mlm.zero_grad()
    sparse = mlm(ids, attention_mask=mask, labels=labels, masked_only=True)
    sparse.loss.backward()
    assert sparse.logits.shape == (n, VOCAB)
    assert int(sparse.num_masked) == int(full.num_masked) == n
    torch.testing.assert_close(sparse.loss, full.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(sparse.logits, full.logits[labels != -100], atol=ATOL, rtol=0)
    for g_full, p in zip(full_grads, mlm.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g_full, atol=ATOL, rtol=0)
    mlm.zero_grad(set_to_none=True)
    # Nothing masked: loss is 0 on both paths rather than NaN.
    none = torch.full_like(ids, -100)
    assert mlm(ids, labels=none).loss.item() == 0.0
    assert mlm(ids, labels=none, masked_only=True).loss.item() == 0.0
    with pytest.raises(ValueError, match="labels"):
        mlm(ids, masked_only=True)


def test_padded_vocab_is_invisible(mlm: BertForMaskedLM) -> None:
    padded = BertForMaskedLM(small_config(pad_vocab_multiple=64)).eval()
    assert padded.config.padded_vocab_size == 128
    assert padded.bert.embeddings.word_embeddings.weight.shape == (128, 64)
    load_hf_state_dict(padded, hf_state_dict(mlm))
    assert padded.cls.predictions.decoder.weight is padded.bert.embeddings.word_embeddings.weight
    ids, mask = batch(seed=5)
    labels = masked_labels(ids, mask, seed=5)
    with torch.no_grad():
        ref = mlm(ids, attention_mask=mask, labels=labels)
        out = padded(ids, attention_mask=mask, labels=labels)
        sparse = padded(ids, attention_mask=mask, labels=labels, masked_only=True)
    assert out.logits.shape == ref.logits.shape == (3, 17, VOCAB)
    torch.testing.assert_close(out.logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.loss, ref.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(sparse.loss, ref.loss, atol=ATOL, rtol=0)
    # Export strips the padding again: shapes and values equal the unpadded model's.
    exported, original = hf_state_dict(padded), hf_state_dict(mlm)
    assert exported.keys() == original.keys()
    for key, value in original.items():
        torch.testing.assert_close(exported[key], value, atol=0, rtol=0)
    untied = hf_state_dict(padded, include_tied=False)
    assert "cls.predictions.decoder.weight" not in untied and "cls.predictions.bias" in untied


def test_load_hf_state_dict_variants(mlm: BertForMaskedLM) -> None:
    sd = hf_state_dict(mlm, include_tied=False)  # as HF stores it on disk
    other = BertForMaskedLM(small_config())
    assert load_hf_state_dict(other, sd) == ([], [])
    ids, _ = batch(seed=6)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(ids).logits, mlm(ids).logits, atol=0, rtol=0)
    # Pre-trained MLM checkpoint into a classifier: the heads differ, the encoder loads.
    clf = BertForSequenceClassification(small_config())
    missing, unexpected = load_hf_state_dict(clf, sd, strict=False)
    assert set(missing) == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }
    assert all(key.startswith("cls.") for key in unexpected)
    torch.testing.assert_close(
        clf.bert.embeddings.word_embeddings.weight, mlm.bert.embeddings.word_embeddings.weight
    )
    with pytest.raises(RandomMaskError, match="missing"):
        load_hf_state_dict(BertForSequenceClassification(small_config()), sd)
    # A BertModel-style checkpoint (no "bert." prefix) into the bare encoder and back.
    enc = BertEncoderModel(small_config(), add_pooling_layer=False)
    load_hf_state_dict(enc, {k: v for k, v in sd.items() if k.startswith("bert.")})
    assert all(not k.startswith("bert.") for k in hf_state_dict(enc))
    with pytest.raises(RandomMaskError, match="vocabulary"):
        load_hf_state_dict(BertForMaskedLM(small_config(vocab_size=70)), sd)


def test_presets_parameter_counts() -> None:
    vocab = 4101  # 4**6 six-mers + 5 specials
    counts = {}
    for name in PRESETS:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            counts[name] = num_parameters(BertForMaskedLM(model_config(name, vocab)))
    assert 0.5e6 <= counts["tiny"] <= 2e6
    assert 5e6 <= counts["small"] <= 15e6
    assert 80e6 <= counts["base"] <= 95e6
    base = model_config("base", vocab)
    assert (base.num_layers, base.hidden_size, base.num_heads, base.intermediate_size) == (12, 768, 12, 3072)
    assert base.max_position_embeddings == 512
    assert model_config("tiny", vocab, hidden_dropout=0.0).hidden_dropout == 0.0
    with pytest.raises(RandomMaskError, match="tiny, small, base"):
        model_config("huge", vocab)


def test_config_validation_and_round_trip() -> None:
    config = small_config(pad_vocab_multiple=8)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.padded_vocab_size == 72
    with pytest.raises(RandomMaskError, match="not divisible by num_heads"):
        small_config(hidden_size=66)
    with pytest.raises(RandomMaskError, match="pad_token_id"):
        small_config(pad_token_id=VOCAB)
    with pytest.raises(RandomMaskError, match="num_layers"):
        small_config(num_layers=0)
    with pytest.raises(RandomMaskError, match="hidden_dropout"):
        small_config(hidden_dropout=1.0)
    with pytest.raises(RandomMaskError, match="unknown key"):
        ModelConfig.from_dict({**config.to_dict(), "hidden_act": "relu"})
    with pytest.raises(RandomMaskError, match="missing key"):
        ModelConfig.from_dict({"vocab_size": 10})


@pytest.mark.parametrize("p", [0.1, 0.5, 0.013])
def test_dropout_keep_rate(p: float) -> None:
    """The cheap keep-mask drops at the quantised rate it reports, which is within 1/65536 of p."""
    torch.manual_seed(0)
    keep, rate = dropout_keep((8, 3, 211, 199), p, torch.device("cpu"))  # numel not a multiple of 4
    assert keep.dtype == torch.bool and keep.shape == (8, 3, 211, 199)
    assert abs(rate - p) <= 0.5 / 65536
    n = keep.numel()
    dropped = 1.0 - keep.float().mean().item()
    assert abs(dropped - rate) < 5 * (rate * (1 - rate) / n) ** 0.5
    # No lane is stuck: every 16-bit lane of the 64-bit draws drops at the same rate.
    lanes = (~keep).flatten()[: n // 4 * 4].view(-1, 4).float().mean(0)
    assert torch.all((lanes - rate).abs() < 5 * (rate * (1 - rate) / (n / 4)) ** 0.5)


def test_attention_with_dropout_matches_explicit_reference() -> None:
    """Same RNG state, same mask: softmax, zero the dropped entries, rescale, times v; and the grads."""
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 17, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.zeros(2, 1, 1, 17, dtype=torch.float64)
    mask[1, ..., 11:] = torch.finfo(torch.float64).min  # padding in the second sequence
    state = torch.get_rng_state()
    out = attention_with_dropout(q, k, v, mask, 0.3)
    torch.set_rng_state(state)
    keep, rate = dropout_keep((2, 3, 17, 17), 0.3, torch.device("cpu"))
    assert 0 < (~keep).sum() < keep.numel()
    probs = ((q @ k.transpose(-1, -2)) / 8**0.5 + mask).softmax(-1)
    ref = (probs * keep / (1 - rate)) @ v
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_training_attention_dropout_is_unbiased_on_cpu() -> None:
    """In training mode the CPU path draws a new mask per call, and its mean is the no-dropout output."""
    model = BertEncoderModel(small_config(hidden_dropout=0.0, attention_dropout=0.2), add_pooling_layer=False)
    ids = torch.randint(5, VOCAB, (2, 12))
    model.eval()
    with torch.no_grad():
        clean = model.encoder.layer[0].attention.self(model.embeddings(ids), None)[0]
    model.train()
    attn = model.encoder.layer[0].attention.self
    with torch.no_grad():
        hidden = model.embeddings(ids)
        draws = torch.stack([attn(hidden, None)[0] for _ in range(4000)])
    assert not torch.equal(draws[0], draws[1])
    torch.testing.assert_close(draws.mean(0), clean, rtol=0, atol=0.02)
