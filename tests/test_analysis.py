"""`randommask analyze`: the measures on hand-made inputs, and a report on a tiny real run."""

from __future__ import annotations

import json
import math
import re

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
    silhouettes,
    token_width,
    top_k_share,
)
from realdata import GENOME

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, one_thread):
    from randommask.analysis.report import AnalyzeConfig, analyze
    from randommask.pretrain import load_config, pretrain

    run = tmp_path_factory.mktemp("analysis") / "run"
    pretrain(load_config({"out_dir": str(run), "data": {"fasta": [str(GENOME)], "max_tokens": 64}, "steps": 20,
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


def test_effective_rank_of_weight_matrices_of_known_rank():
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    v, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    for r in (1, 3, 7, 64):  # r equal singular values: exactly r
        w = 0.02 * u[:, :r] @ v[:, :r].T
        assert effective_rank(w) == pytest.approx(r, abs=1e-6)
        assert effective_rank(torch.from_numpy(w).float()) == pytest.approx(r, rel=1e-4)
    # Singular values 3 and 1: exp of the entropy of (3/4, 1/4), by hand.
    w = u[:, :2] @ np.diag([3.0, 1.0]) @ v[:, :2].T
    assert effective_rank(w) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), abs=1e-9)


def slow_silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """The textbook silhouette with cosine distance, one point at a time."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1.0 - unit @ unit.T
    scores = []
    for i in range(len(x)):
        same = (labels == labels[i]) & (np.arange(len(x)) != i)
        if not same.any():
            scores.append(0.0)
            continue
        a = dist[i, same].mean()
        b = min(dist[i, labels == c].mean() for c in set(labels.tolist()) if c != labels[i])
        scores.append((b - a) / max(a, b))
    return float(np.mean(scores))


def test_silhouettes_of_planted_clusters_and_shuffled_labels():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    labels = np.repeat(np.array(list("ACGT")), 50)
    emb = centres[np.repeat(np.arange(4), 50)] + 0.05 * rng.standard_normal((200, 16))
    shuffled = rng.permutation(labels)
    got = silhouettes(emb, {"planted": labels.tolist(), "shuffled": shuffled.tolist()})
    assert got["planted"] == pytest.approx(slow_silhouette(emb, labels), abs=1e-9)
    assert got["shuffled"] == pytest.approx(slow_silhouette(emb, shuffled), abs=1e-9)
    assert got["planted"] > 0.9  # tight, well-separated clusters
    # Labels that say nothing about the points: near 0 (a little below: b(i) is the nearest other group).
    assert -0.15 < got["shuffled"] < 0.02
    # One label for all: no silhouette.
    assert math.isnan(silhouettes(emb, {"one": ["A"] * 200})["one"])
    # Above max_points a fixed subset is scored: the same answer for planted clusters, reproducibly.
    sub = silhouettes(emb, {"planted": labels.tolist()}, max_points=100, seed=3)["planted"]
    assert sub > 0.9 and sub == silhouettes(emb, {"planted": labels.tolist()}, max_points=100, seed=3)["planted"]


def test_token_width_tells_kmers_from_bpe():
    assert token_width(["ACGTAC", "TTGCAA"]) == 6 and token_width(["A", "C", "G", "T"]) == 1
    assert token_width(["A", "AC", "GATTACA"]) is None  # BPE: no central or last nucleotide in a fixed place


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
    from randommask.analysis.probe import build_model
    from randommask.checkpoint import load_pretrained
    from randommask.model import ModelConfig
    from randommask.pretrain import load_config, pretrain

    # Learning rate 0: the saved weights are the initial ones.
    pretrain(load_config({"out_dir": str(tmp_path), "seed": 7, "data": {"fasta": [str(GENOME)], "max_tokens": 16},
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


def test_values_of_a_real_run(analysed):
    _, _, v = analysed
    a, layers, heads = v["attention"], v["model"]["num_layers"], v["model"]["num_heads"]
    n = v["windows"]["tokens"]
    assert a["uniform_entropy"] == pytest.approx(math.log(n))  # full-length eval windows
    # At initialisation (weights ~ N(0, 0.02)) queries and keys are nearly orthogonal: attention is uniform,
    # entropy ln n and the top key holds 1/n, the top five 5/n.
    init = a["init"]
    assert np.array(init["entropy"]).shape == (layers, heads)
    np.testing.assert_allclose(init["entropy"], math.log(n), rtol=2e-3)
    for k in (1, 5):  # the k largest of n near-equal weights: k/n and a little more
        share = np.array(init["top_k_share"][str(k)])
        assert np.all(share >= k / n - 1e-6) and np.all(share < 1.25 * k / n), (k, share)
    # Random word embeddings: k-mers sharing a central dinucleotide are no closer than any others.
    assert all(abs(s) < 0.05 for s in v["embeddings"]["silhouette_init"].values()), v["embeddings"]
    lay = v["layers"]
    for key in ("effective_rank", "effective_rank_init", "effective_rank_uncentred"):
        assert len(lay[key]) == layers + 1
    phases = v["masks"]["phases"]
    assert [p["phase"] for p in phases] == [1, 2, 3, 4, 5]
    assert [p["widths"] for p in phases] == [[6], [6, 8], [6, 8, 10], [6, 8, 10, 12], [6, 8, 10, 12, 14]]
    ot = v["over_time"]
    assert ot["steps"] == [0, 10, 20]
    assert ot["relative_change"]["layer 1"][0] == 0.0  # step 0 is the re-created initial model itself
    assert {g: c[-1] for g, c in ot["relative_change"].items()} == lay["relative_change"]  # step 20: the run
    assert len(ot["entropy_per_layer"]) == 3


def test_cli_registration_and_errors(tmp_path):
    from randommask.cli import main
    from randommask.commands import all_commands

    assert any(c.name == "analyze" for c in all_commands())
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert main(["analyze", str(tmp_path), "--reference", "nowhere"]) == 2
