"""BPE runs through the workflows after pre-training: finetune and benchmark on the GUE excerpts, predict and
embed (long sequences read in windows, windows the encoding had to cut), analyze."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from bpe_fixtures import bpe_run, small_bpe
from randommask.bpe import BpeTokenizer
from randommask.cli import main
from randommask.finetune import FinetuneConfig, finetune
from randommask.inference import EmbedConfig, PredictConfig, WindowPlan, embed, plan_windows, predict
from realdata import GENOME, GUE

PROM = GUE / "prom" / "prom_core_all"  # 70-nt promoter cores, 200 rows a split


@pytest.fixture(scope="module")
def bpe(tmp_path_factory, one_thread) -> dict[str, Path]:
    """A 256-token vocabulary, a tiny run pre-trained with it and that run fine-tuned on a GUE excerpt."""
    root = tmp_path_factory.mktemp("bpe")
    tok = small_bpe(root / "tok")
    pre = bpe_run(root / "pre", tok)
    ft = root / "ft"
    results = finetune(FinetuneConfig(model=str(pre), task=str(PROM), out_dir=str(ft), max_steps=6, eval_steps=3,
                                      batch_size=16, learning_rate=1e-3, max_train_examples=96, progress=False))
    return {"tok": tok, "pre": pre, "ft": ft, "results": results}


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def genome_dna(n: int, start: int = 20_000) -> str:
    """``n`` bases of the committed chr20 excerpt (real DNA compresses as the vocabulary expects)."""
    from randommask.alphabet import BASES
    from randommask.genome import read_fasta

    _, codes = next(iter(read_fasta(GENOME)))
    seq = "".join(BASES[c] for c in codes[start : start + n])
    assert len(seq) == n and "N" not in seq
    return seq


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------------------ finetune, benchmark
def test_finetune_a_bpe_run_on_a_gue_excerpt(bpe, tmp_path):
    from sklearn.metrics import log_loss, matthews_corrcoef

    r = bpe["results"]
    assert r["tokenizer"]["type"] == "bpe" and r["tokenizer"]["name"] == "bpe256"
    assert r["sizes"]["test"] == 200 and r["full_sizes"]["test"] == 200
    assert -1.0 <= r["best"]["dev"]["mcc"] <= 1.0 and -1.0 <= r["test"]["mcc"] <= 1.0
    # 70-nt sequences: BPE gives at most one token a base, so 72 positions hold every sequence whole.
    assert r["hparams"]["max_length"] == 72 and r["truncated"] == {"train": 0, "dev": 0, "test": 0}
    # The longest input given is what encoding found, which transformers, reading the file alone, bounds.
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(bpe["tok"] / "tokenizer.json"))
    counts = {name: [len(hf(row["sequence"])["input_ids"]) for row in read_csv(PROM / f"{name}.csv")]
              for name in ("train", "dev", "test")}
    assert max(counts["dev"] + counts["test"]) <= r["longest_input"] <= max(sum(counts.values(), [])) < 72
    # The test score is the saved model's: predict reads test.csv with it and sklearn scores its labels.
    out = tmp_path / "test.predictions.csv"
    summary = predict(PredictConfig(model=str(bpe["ft"]), input=str(PROM / "test.csv"), out=str(out),
                                    progress=False))
    assert summary["truncated"] == 0 and summary["overflowed_windows"] == 0
    rows = read_csv(out)
    labels = [int(x["label"]) for x in rows]
    predicted = [int(x["predicted_label"]) for x in rows]
    assert r["test"]["mcc"] == pytest.approx(matthews_corrcoef(labels, predicted), abs=1e-9)
    assert r["test"]["accuracy"] == pytest.approx(np.mean(np.array(labels) == np.array(predicted)))
    # A model this small barely learns, so the loss pins it down: the mean cross-entropy of predict's probabilities.
    probs = np.array([[float(x["prob_0"]), float(x["prob_1"])] for x in rows])
    probs /= probs.sum(1, keepdims=True)  # printed with 6 decimals
    assert r["test"]["loss"] == pytest.approx(log_loss(labels, probs), abs=1e-5)


def test_tokenizer_stride_on_a_bpe_run_is_one_line(bpe, capsys, tmp_path):
    assert main(["finetune", str(bpe["pre"]), str(PROM), "--tokenizer-stride", "1", "--out", str(tmp_path / "x"),
                 "--progress", "false"]) == 2
    line = one_error_line(capsys)
    assert "--tokenizer-stride 1" in line and "bpe256" in line and "BPE tokenizer takes no stride" in line
    assert not (tmp_path / "x").exists()
    for command, run in (("predict", "ft"), ("embed", "pre")):
        assert main([command, str(bpe[run]), str(PROM / "dev.csv"), "--tokenizer-stride", "3",
                     "--out", str(tmp_path / command), "--progress", "false"]) == 2
        assert "--tokenizer-stride 3" in one_error_line(capsys)


def test_finetune_from_scratch_with_a_bpe_vocabulary(bpe, tmp_path):
    r = finetune(FinetuneConfig(from_scratch=True, tokenizer=f"bpe:{bpe['tok']}", task=str(PROM),
                                out_dir=str(tmp_path / "scratch"), max_steps=2, batch_size=8, max_train_examples=16,
                                max_eval_examples=16, progress=False))
    assert r["model"]["tokenizer"] == "bpe256" and r["tokenizer"]["type"] == "bpe"
    assert -1.0 <= r["test"]["mcc"] <= 1.0


def test_benchmark_a_bpe_run_on_the_gue_excerpts(bpe, tmp_path):
    from randommask.evaluate import BenchmarkConfig, benchmark

    summary = benchmark(BenchmarkConfig(model=str(bpe["pre"]), gue=str(GUE), seeds=1, out_dir=str(tmp_path / "b"),
                                        max_steps=2, batch_size=8, max_train_examples=16, max_eval_examples=16,
                                        progress=False))
    tasks = {t["task"] for t in summary["tasks"]}
    assert tasks == {"EMP/H3", "mouse/0", "prom/prom_core_all", "tf/0"}
    assert all(-1.0 <= t["mcc_mean"] <= 1.0 for t in summary["tasks"])
    for path in (tmp_path / "b" / "runs").rglob("results.json"):
        done = json.loads(path.read_text())
        assert done["tokenizer"]["type"] == "bpe" and done["model"]["masking"] == "bert"
        assert done["truncated"] == {"train": 0, "dev": 0, "test": 0}  # every sequence fits one token a base
    assert "bert masking" in (tmp_path / "b" / "results.md").read_text()


# ------------------------------------------------------------------------------------------ predict and embed
def test_plan_truncated_counts_bases_no_window_read():
    """A window cut by its encoding loses bases unless a neighbour reads them (coverage, not a guess)."""
    plan = WindowPlan(record=np.array([0, 0, 0, 1]), start=np.array([0, 60, 120, 0]), end=np.array([80, 140, 200, 50]),
                      windows=np.array([3, 1]), too_long=np.array([True, False]), window_nt=80, overlap=20)
    assert list(plan.truncated) == [False, False] and not plan.overflowed.any()
    plan.read_end = np.array([70, 140, 200, 50])  # the first window stops at 70: the second starts at 60
    assert list(plan.overflowed) == [True, False, False, False] and list(plan.truncated) == [False, False]
    plan.read_end = np.array([80, 110, 200, 50])  # bases 110..119 are read by no window
    assert list(plan.truncated) == [True, False]
    plan.read_end = np.array([80, 140, 190, 30])  # the 3' ends themselves
    assert list(plan.truncated) == [True, True]


def test_embed_windows_on_long_bpe_input(bpe, tmp_path, capsys):
    from transformers import PreTrainedTokenizerFast

    seq = genome_dna(1500)
    windows = plan_of(bpe, len(seq), 64)
    assert len(windows) > 1
    fa = tmp_path / "long.fa"
    fa.write_text(f">long\n{seq}\n>short\n{seq[:90]}\n")
    res = embed(EmbedConfig(model=str(bpe["pre"]), input=str(fa), out=str(tmp_path / "w.npy"), long="windows",
                            max_length=64, progress=False))
    note = capsys.readouterr().out
    assert res["too_long"] == 1 and res["truncated"] == 0 and res["overflowed_windows"] == 0
    assert "1 of 2 sequences are longer than the model's maximum of 64 tokens" in note
    assert (tmp_path / "w.ids.tsv").read_text().splitlines()[1:] == [f"0\tlong\t1500\t{len(windows)}\t0",
                                                                     "1\tshort\t90\t1\t0"]
    # Mean pooling over windows is the mean over every token read: the windows embedded one by one, weighted
    # by their token counts, which transformers' own reading of the vocabulary counts independently.
    parts = tmp_path / "parts.fa"
    parts.write_text("".join(f">w{i}\n{seq[s:e]}\n" for i, (s, e) in enumerate(windows)))
    embed(EmbedConfig(model=str(bpe["pre"]), input=str(parts), out=str(tmp_path / "parts.npy"), max_length=64,
                      progress=False))
    hf = PreTrainedTokenizerFast(tokenizer_file=str(bpe["tok"] / "tokenizer.json"))
    tokens = np.array([len(hf(seq[s:e])["input_ids"]) for s, e in windows])
    assert tokens.max() <= 64
    expected = (np.load(tmp_path / "parts.npy") * tokens[:, None]).sum(0) / tokens.sum()
    assert np.allclose(np.load(tmp_path / "w.npy")[0], expected, atol=1e-5)


def plan_of(bpe: dict, length: int, max_length: int) -> list[tuple[int, int]]:
    from randommask.checkpoint import open_run

    plan = plan_windows(np.array([length]), open_run(bpe["pre"]).tokenizer, max_length, "windows")
    return list(zip(plan.start.tolist(), plan.end.tolist(), strict=True))


def test_windows_the_encoding_cuts_are_reported(bpe, tmp_path, capsys):
    """Runs of N give one [UNK] a base: such a window holds far more tokens than the vocabulary's compression
    promised, so encoding cuts it; the sequence must come out marked truncated, and the cut counted."""
    from randommask.checkpoint import open_run

    tok = open_run(bpe["pre"]).tokenizer
    window_nt = tok.bases_for_tokens(30)
    assert window_nt > 60  # the chosen lengths fit one window in bases
    csv_in = tmp_path / "in.csv"
    csv_in.write_text("id,sequence\n" + f"dna,{genome_dna(60)}\n" + f"ns,{'N' * 60}\n" + f"long_ns,{'n' * 400}\n")
    res = embed(EmbedConfig(model=str(bpe["pre"]), input=str(csv_in), out=str(tmp_path / "t.npy"), max_length=32,
                            progress=False))
    out = capsys.readouterr().out
    ids = [line.split("\t") for line in (tmp_path / "t.ids.tsv").read_text().splitlines()[1:]]
    assert [(r[1], r[4]) for r in ids] == [("dna", "0"), ("ns", "1"), ("long_ns", "1")]
    assert res["truncated"] == 2 and res["overflowed_windows"] == 2 and res["too_long"] == 1
    # "ns": 60 tokens, 30 kept; "long_ns": its first window_nt bases, 30 of them kept.
    assert (f"2 window(s) of 2 sequence(s) gave more than 32 tokens (DNA the vocabulary compresses less than usual): "
            f"encoded up to the maximum, {30 + (window_nt - 30)} bases cut from their 3' ends; 2 of these sequences "
            "have bases no window read (marked truncated)") in out
    # Read in windows, the run of N still loses bases between windows: each window reads only 30 of them.
    pred = predict(PredictConfig(model=str(bpe["ft"]), input=str(csv_in), out=str(tmp_path / "p.csv"),
                                 long="windows", max_length=32, progress=False))
    rows = read_csv(tmp_path / "p.csv")
    assert [(r["id"], r["truncated"]) for r in rows] == [("dna", "0"), ("ns", "1"), ("long_ns", "1")]
    assert int(rows[2]["windows"]) > 1 and pred["truncated"] == 2
    assert pred["overflowed_windows"] == 1 + int(rows[2]["windows"])
    assert re.search(r"\d+ window\(s\) of 2 sequence\(s\) gave more than 32 tokens", capsys.readouterr().out)


# ------------------------------------------------------------------------------------------ analyze
def test_analyze_a_bpe_run(bpe, tmp_path):
    from randommask.analysis.report import AnalyzeConfig, analyze

    out = tmp_path / "analysis"
    v = analyze(AnalyzeConfig(run=str(bpe["pre"]), out=str(out), windows=4, mask_draws=2, projection="none",
                              progress=False, device="cpu"))
    report = (out / "report.md").read_text()
    assert "is defined for k-mers, tokens of one width, so it is skipped" in report
    assert "embeddings" not in v and set(v["figures"]) == {"curves", "attention", "layers", "masks"}
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "json" not in v["tokenizer"] and v["tokenizer"]["type"] == "bpe"
    assert f"uniform guess over the {len(BpeTokenizer.from_file(bpe['tok']).kmer_ids)} ordinary tokens" in report
    # BERT masking of non-overlapping tokens: every masked token hides all its bases, a span of one token its width.
    (row,) = v["masks"]["phases"]
    assert row["widths"] == [1] and 1.0 < row["expected_hidden_per_span"] < 14
    assert row["mean_hidden_per_span"] >= row["expected_hidden_per_span"] * 0.9


def test_hidden_bases_of_bpe_masks_are_the_masked_tokens_widths(bpe):
    """`Encoding.spans` of BPE tokens: a masked token hides exactly its bases (tokens never overlap)."""
    from randommask.masking import hidden_nucleotides

    tok = BpeTokenizer.from_file(bpe["tok"])
    enc = tok.encode_batch([genome_dna(300), genome_dna(120, start=40_000) + "NNN" + genome_dna(50)])
    mask = (np.random.default_rng(0).random(enc.ids.shape) < 0.3) & ~enc.special_mask
    rep = hidden_nucleotides(mask, enc.spans)
    width = enc.spans[..., 1] - enc.spans[..., 0]
    assert list(rep.hidden_per_seq) == list((width * mask).sum(1))
    assert rep.run_hidden.sum() == (width * mask).sum()


def test_analysis_reads_pretrains_eval_windows(bpe):
    """analyze measures the windows pretrain evaluated on (cut in bases as pretrain cuts them)."""
    from randommask.analysis.probe import eval_encoding, open_store
    from randommask.checkpoint import open_run
    from randommask.pretrain import eval_batches, load_config

    run = open_run(bpe["pre"])
    cfg = load_config(run.config)
    store = open_store(run)
    theirs = eval_batches(store, run.tokenizer.fill_bases(cfg.data.max_tokens - 2), run.tokenizer, cfg)[0]
    ours = eval_encoding(run, store, theirs.ids.shape[0])
    assert np.array_equal(ours.ids, theirs.ids) and np.array_equal(ours.spans, theirs.spans)
