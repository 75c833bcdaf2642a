"""`randommask analyze`: the measures on hand-made inputs, and a report on a tiny real run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from randommask.analysis.measures import (
    AttentionStats,
    attention_entropy,
    effective_rank,
    expected_hidden,
    kmer_labels,
    relative_change,
    top_k_share,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LAMBDA = DATA / "genomes" / "lambda_NC_001416.fa.gz"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def one_thread():
    # Two threads on a shared 2-core machine are many times slower than one for these tiny models.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, one_thread):
    if not LAMBDA.exists():
        pytest.skip(f"{LAMBDA} not found")
    from randommask.analysis.report import AnalyzeConfig, analyze
    from randommask.pretrain import load_config, pretrain

    run = tmp_path_factory.mktemp("analysis") / "run"
    pretrain(load_config({"out_dir": str(run), "data": {"fasta": [str(LAMBDA)], "max_tokens": 64}, "steps": 20,
                          "batch_size": 8, "save_interval": 10, "keep_checkpoints": 0, "eval_interval": 10,
                          "eval_windows": 8, "progress": False}))
    values = analyze(AnalyzeConfig(run=str(run), windows=4, map_points=300, tsne_iter=250, mask_draws=2,
                                   progress=False))
    return run, run / "analysis", values


# ------------------------------------------------------------------------------------------ measures
def _uniform(lengths: list[int], heads: int = 3, width: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention uniform over each row's real keys; padding keys and padding query rows hold junk."""
    b = len(lengths)
    mask = torch.zeros(b, width, dtype=torch.long)
    probs = torch.rand(b, heads, width, width)  # junk everywhere first
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        probs[i, :, :n, :n] = 1.0 / n
        probs[i, :, :n, n:] = 0.7  # junk weight on padding keys must be ignored
    return probs, mask


def test_attention_entropy_uniform_is_log_length_and_one_hot_is_zero():
    for n in (7, 4, 1):
        probs, mask = _uniform([n])
        assert torch.allclose(attention_entropy(probs, mask), torch.full((3,), math.log(n)), atol=1e-5)
        assert torch.allclose(top_k_share(probs, mask, 1), torch.full((3,), 1.0 / n), atol=1e-5)
        assert torch.allclose(top_k_share(probs, mask, 5), torch.full((3,), min(5, n) / n), atol=1e-5)
    probs, mask = _uniform([7, 4])
    rows = 7 * math.log(7) + 4 * math.log(4)
    assert torch.allclose(attention_entropy(probs, mask), torch.full((3,), rows / 11), atol=1e-5)
    one_hot = torch.zeros(2, 3, 7, 7)
    one_hot[..., 2] = 1.0
    one_hot[1, :, 4:, :] = 0.3  # padding query rows: junk, not counted
    _, mask = _uniform([7, 4])
    assert torch.allclose(attention_entropy(one_hot, mask), torch.zeros(3), atol=1e-6)
    assert torch.allclose(top_k_share(one_hot, mask, 1), torch.ones(3), atol=1e-6)


def test_attention_stats_accumulates_layers_and_batches():
    stats = AttentionStats(top_k=(1, 5))
    for lengths in ([7, 4], [6]):
        probs, mask = _uniform(lengths)
        stats.add([probs, probs], mask)
    rows = 7 * math.log(7) + 4 * math.log(4) + 6 * math.log(6)
    assert stats.entropy.shape == (2, 3)
    assert np.allclose(stats.entropy, rows / 17, atol=1e-5)
    assert stats.uniform_entropy == pytest.approx(rows / 17)
    assert np.allclose(stats.share(1), (7 * (1 / 7) + 4 * (1 / 4) + 6 * (1 / 6)) / 17, atol=1e-5)


def test_effective_rank_isotropic_and_rank_one():
    rng = np.random.default_rng(0)
    d = 32
    assert effective_rank(rng.standard_normal((4000, d))) == pytest.approx(d, rel=0.02)
    u, v = rng.standard_normal((500, 1)), rng.standard_normal((1, d))
    assert effective_rank(u @ v) == pytest.approx(1.0, abs=1e-9)
    q, _ = np.linalg.qr(rng.standard_normal((100, 5)))
    assert effective_rank(q) == pytest.approx(5.0, abs=1e-6)  # equal singular values: exactly the rank
    assert effective_rank(np.ones((50, 8)) + u[:50] @ v[:, :8], center=True) == pytest.approx(1.0, abs=1e-9)


def test_small_measures():
    assert [expected_hidden(m, 6) for m in (1, 5, 6, 10, 14)] == [0, 0, 1, 5, 9]  # m - 5 for 6-mers
    assert expected_hidden(2, 6, stride=6) == 12  # non-overlapping: every base of a masked token
    labels = kmer_labels(["ACGTAC", "TTGCAA"])
    assert labels == {"central dinucleotide": ["GT", "GC"], "first nucleotide": ["A", "T"],
                      "last nucleotide": ["C", "A"]}
    w0 = {"bert.encoder.layer.0.attention.self.query.weight": torch.ones(4, 4),
          "bert.encoder.layer.0.output.LayerNorm.weight": torch.ones(4),
          "bert.embeddings.word_embeddings.weight": torch.ones(3, 4),
          "cls.predictions.decoder.weight": torch.ones(3, 4)}
    w = dict(w0, **{"bert.encoder.layer.0.attention.self.query.weight": 3 * torch.ones(4, 4)})
    change = relative_change(w, w0, num_layers=1)
    assert change == {"embeddings": 0.0, "layer 1": pytest.approx(2.0)}


# ------------------------------------------------------------------------------------------ a real run
def test_fresh_init_with_the_seed_is_pretrains_initial_model(tmp_path, one_thread):
    if not LAMBDA.exists():
        pytest.skip(f"{LAMBDA} not found")
    from randommask.analysis.probe import build_model
    from randommask.checkpoint import load_pretrained
    from randommask.model import ModelConfig
    from randommask.pretrain import load_config, pretrain

    # Learning rate 0: the saved weights are the initial ones.
    pretrain(load_config({"out_dir": str(tmp_path), "seed": 7, "data": {"fasta": [str(LAMBDA)], "max_tokens": 16},
                          "steps": 1, "batch_size": 2, "eval_windows": 2, "progress": False,
                          "optim": {"lr": 0.0}}))
    pre = load_pretrained(tmp_path)
    state = build_model(ModelConfig.from_dict(pre.model_config), None, seed=7).state_dict()
    assert state.keys() == pre.model_state.keys()
    assert all(torch.equal(state[k], v) for k, v in pre.model_state.items())


def test_report_links_every_figure(analysed):
    _, out, values = analysed
    report = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(linked) == sorted(values["figures"].values())
    assert set(values["figures"]) == {"curves", "embedding_map", "embedding_silhouette", "attention", "layers",
                                      "masks", "over_time"}
    for name in linked:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    assert json.loads((out / "figures.json").read_text()) == values


def test_values_in_range(analysed):
    _, _, v = analysed
    a, hidden = v["attention"], v["model"]["hidden_size"]
    ln_l = math.log(v["windows"]["tokens"])
    assert a["uniform_entropy"] == pytest.approx(ln_l)  # full-length eval windows
    for part in (a, a["init"]):
        ent = np.array(part["entropy"])
        assert ent.shape == (v["model"]["num_layers"], v["model"]["num_heads"])
        assert np.all(ent >= 0) and np.all(ent <= ln_l + 1e-6)
        one, five = np.array(part["top_k_share"]["1"]), np.array(part["top_k_share"]["5"])
        assert np.all((one >= 0) & (one <= 1)) and np.all((five >= one - 1e-9) & (five <= 1 + 1e-9))
    lay = v["layers"]
    for key in ("effective_rank", "effective_rank_init", "effective_rank_uncentred"):
        ranks = np.array(lay[key])
        assert len(ranks) == v["model"]["num_layers"] + 1
        assert np.all(ranks >= 1) and np.all(ranks <= hidden)
    assert all(0 < c < 10 for c in lay["relative_change"].values())
    assert all(-1 <= s <= 1 for s in v["embeddings"]["silhouette"].values())
    assert all(-1 <= s <= 1 for s in v["embeddings"]["silhouette_init"].values())
    phases = v["masks"]["phases"]
    assert [p["phase"] for p in phases] == [1, 2, 3, 4, 5]
    for p in phases:
        assert 0 < p["masked_token_fraction"] < 1 and 0 < p["hidden_base_fraction"] < 1
        assert p["expected_hidden_per_span"] == np.mean([w - 5 for w in p["widths"]])
    ot = v["over_time"]
    assert ot["steps"] == [0, 10, 20]
    assert ot["relative_change"]["layer 1"][0] == 0.0  # step 0 is the re-created initial model itself
    assert len(ot["entropy_per_layer"]) == 3


def test_cli_registration_and_errors(tmp_path):
    from randommask.cli import main
    from randommask.commands import all_commands

    assert any(c.name == "analyze" for c in all_commands())
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert main(["analyze", str(tmp_path), "--reference", "nowhere"]) == 2
