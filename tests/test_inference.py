"""predict and embed: outputs, probabilities, pooling, long sequences (truncate / windows), bad input."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from randommask.cli import main
from randommask.errors import RandomMaskError
from randommask.finetune import FinetuneConfig, finetune
from randommask.inference import EmbedConfig, PredictConfig, embed, plan_windows, predict, read_sequences
from randommask.tokenizers import KmerTokenizer
from realdata import GENOME

RNG = np.random.default_rng(0)


def dna(n: int) -> str:
    return "".join(RNG.choice(list("ACGT"), size=n))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny pre-trained run (max 32 positions: long inputs are easy to make) and a fine-tuned one."""
    from randommask.pretrain import load_config, pretrain

    root = tmp_path_factory.mktemp("runs")
    pre = root / "pre"
    pretrain(load_config({"out_dir": str(pre), "steps": 4, "batch_size": 4, "progress": False, "log_interval": 2,
                          "eval_interval": 4, "save_interval": 4, "eval_windows": 4,
                          "model": {"max_position_embeddings": 32},
                          "data": {"fasta": [str(GENOME)], "max_tokens": 32}}))
    task = root / "task"
    task.mkdir()
    for name in ("train.csv", "dev.csv", "test.csv"):
        rows = [f"{dna(40)},{i % 3}" for i in range(24)]  # 37 tokens: capped at 32
        (task / name).write_text("sequence,label\n" + "\n".join(rows) + "\n")
    ft = root / "ft"
    finetune(FinetuneConfig(model=str(pre), task=str(task), out_dir=str(ft), max_steps=3, eval_steps=3, batch_size=8,
                            progress=False, learning_rate=1e-3))
    return {"pre": pre, "ft": ft}


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    seqs = [dna(20), dna(35), dna(100)]  # 100 nt > 30 tokens of 6-mers (35 nt): too long
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id,sequence,label\n" + "".join(f"s{i},{s},{i % 3}\n" for i, s in enumerate(seqs)))
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">r{i} description\n{s[:50]}\n{s[50:]}\n" for i, s in enumerate(seqs)))
    return {"csv": csv_path, "fasta": fa, "seqs": seqs}


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# ------------------------------------------------------------------------------------------ predict
def test_predict_probabilities(runs, inputs, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert main(["predict", str(runs["ft"]), str(inputs["csv"]), "--out", str(out), "--progress", "false"]) == 0
    stdout = capsys.readouterr().out
    assert "1 of 3 sequences are longer than the model's maximum of 32 tokens (35 nt)" in stdout
    assert "read only their first 35 nt" in stdout and "against the label column: mcc" in stdout
    rows = read_csv(out)
    assert list(rows[0]) == ["id", "label", "predicted_label", "prob_0", "prob_1", "prob_2", "length", "windows",
                             "truncated"]
    assert [r["id"] for r in rows] == ["s0", "s1", "s2"] and [r["truncated"] for r in rows] == ["0", "0", "1"]
    probs = np.array([[float(r[f"prob_{c}"]) for c in range(3)] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert [int(r["predicted_label"]) for r in rows] == list(probs.argmax(1))


def test_predict_windows_average_window_probabilities(runs, inputs, tmp_path):
    seq = inputs["seqs"][2]
    whole = predict(PredictConfig(model=str(runs["ft"]), input=str(inputs["fasta"]), out=str(tmp_path / "w.csv"),
                                  long="windows", window_overlap=10, progress=False))
    assert whole["too_long"] == 1 and whole["truncated"] == 0
    row = read_csv(tmp_path / "w.csv")[2]
    assert row["id"] == "r2" and row["truncated"] == "0"
    # The same windows as separate sequences: their mean probability is the windowed prediction.
    tok = KmerTokenizer.from_name("kmer6")
    plan = plan_windows(np.array([len(seq)]), tok, 32, "windows", 10)
    assert int(row["windows"]) == plan.windows[0] == 4  # 35-nt windows, step 25: 0, 25, 50, 65
    parts = tmp_path / "parts.fa"
    parts.write_text("".join(f">w{i}\n{seq[s:e]}\n" for i, (s, e) in enumerate(zip(plan.start, plan.end,
                                                                                      strict=True))))
    predict(PredictConfig(model=str(runs["ft"]), input=str(parts), out=str(tmp_path / "p.csv"), progress=False))
    part_probs = np.array([[float(r[f"prob_{c}"]) for c in range(3)] for r in read_csv(tmp_path / "p.csv")])
    assert np.allclose([float(row[f"prob_{c}"]) for c in range(3)], part_probs.mean(0), atol=5e-6)


def test_predict_needs_a_classifier(runs, inputs, capsys):
    assert main(["predict", str(runs["pre"]), str(inputs["csv"]), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a fine-tuned classifier" in err[0]


# ------------------------------------------------------------------------------------------ embed
def test_embed_shapes_and_ids(runs, inputs, tmp_path):
    for run in ("pre", "ft"):
        out = tmp_path / f"{run}.npy"
        assert main(["embed", str(runs[run]), str(inputs["fasta"]), "--out", str(out), "--progress", "false"]) == 0
        emb = np.load(out)
        assert emb.shape == (3, 128) and emb.dtype == np.float32 and np.isfinite(emb).all()
        ids = (tmp_path / f"{run}.ids.tsv").read_text().splitlines()
        assert ids[0] == "index\tid\tlength\twindows\ttruncated"
        assert ids[1:] == ["0\tr0\t20\t1\t0", "1\tr1\t35\t1\t0", "2\tr2\t100\t1\t1"]
    cls = embed(EmbedConfig(model=str(runs["pre"]), input=str(inputs["csv"]), out=str(tmp_path / "cls"),
                            pooling="cls", layer=1, progress=False))
    assert cls["out"].endswith("cls.npy") and cls["shape"] == (3, 128)
    assert not np.allclose(np.load(tmp_path / "cls.npy"), np.load(tmp_path / "pre.npy"))


def test_embed_windows_pool_over_all_tokens(runs, inputs, tmp_path, capsys):
    seq = inputs["seqs"][2]
    res = embed(EmbedConfig(model=str(runs["pre"]), input=str(inputs["fasta"]), out=str(tmp_path / "w.npy"),
                            long="windows", progress=False))
    assert "read whole in 4 windows of 35 nt overlapping by 8 nt" in capsys.readouterr().out
    assert res["too_long"] == 1 and res["truncated"] == 0
    tok = KmerTokenizer.from_name("kmer6")
    plan = plan_windows(np.array([len(seq)]), tok, 32, "windows")
    covered = np.zeros(len(seq), bool)
    for s, e in zip(plan.start, plan.end, strict=True):
        covered[s:e] = True
        assert e - s == 35
    assert covered.all()
    parts = tmp_path / "parts.fa"
    parts.write_text("".join(f">w{i}\n{seq[s:e]}\n" for i, (s, e) in enumerate(zip(plan.start, plan.end,
                                                                                      strict=True))))
    embed(EmbedConfig(model=str(runs["pre"]), input=str(parts), out=str(tmp_path / "parts.npy"), progress=False))
    windows = np.load(tmp_path / "parts.npy")
    tokens = np.array([tok.num_tokens(e - s) + 2 for s, e in zip(plan.start, plan.end, strict=True)])
    expected = (windows * tokens[:, None]).sum(0) / tokens.sum()  # mean over every token read
    assert np.allclose(np.load(tmp_path / "w.npy")[2], expected, atol=1e-5)
    # Short sequences are read the same either way.
    embed(EmbedConfig(model=str(runs["pre"]), input=str(inputs["fasta"]), out=str(tmp_path / "t.npy"), progress=False))
    assert np.allclose(np.load(tmp_path / "w.npy")[:2], np.load(tmp_path / "t.npy")[:2], atol=1e-6)


def test_plan_windows_non_overlapping_tokens_keep_their_frame():
    tok = KmerTokenizer.from_name("kmer6-nonoverlap")
    plan = plan_windows(np.array([10, 200]), tok, 12, "windows", overlap=13)
    assert plan.window_nt == 60 and list(plan.windows) == [1, 5]
    assert all(s % 6 == 0 for s in plan.start[1:-1]) and plan.end[-1] == 200
    trunc = plan_windows(np.array([10, 200]), tok, 12, "truncate")
    assert list(trunc.truncated) == [False, True] and list(trunc.end) == [10, 60]
    with pytest.raises(RandomMaskError, match="smaller than a window"):
        plan_windows(np.array([200]), tok, 12, "windows", overlap=60)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_inputs(runs, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,seq\nx,ACGT\n")
    assert main(["embed", str(runs["pre"]), str(bad), "--progress", "false"]) == 2
    assert "bad.csv, line 1: no `sequence` column" in capsys.readouterr().err
    bad.write_text("sequence\nACGT\nACGTXA\n")
    with pytest.raises(RandomMaskError, match=r"bad.csv, line 3: invalid nucleotide character 'X' at position 5"):
        read_sequences(bad)
    assert main(["embed", str(runs["pre"]), str(tmp_path / "none.fa")]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["embed", str(runs["pre"]), str(bad), "--long", "split"]) == 2
    assert "--long must be truncate or windows" in capsys.readouterr().err
    assert main(["embed", str(runs["pre"]), str(bad), "--layer", "7"]) == 2
    assert "--layer 7 is out of range" in capsys.readouterr().err
