"""``randommask tokenizer train``: a BPE vocabulary from a genome, checked against transformers' own reading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from randommask.bpe import BpeTokenizer
from randommask.cli import main as cli_main
from randommask.genome import GenomeStore, held_out_windows, prepare
from realdata import GENOME


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    assert cli_main(["tokenizer", "train", str(GENOME), "--out", str(out), "--vocab-size", "300", "--windows", "200",
                     "--window-nt", "500", "--heldout-windows", "50", "--progress", "false"]) == 0
    return out


def test_writes_a_tokenizer_json_that_transformers_reads_as_we_do(trained):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(trained / "tokenizer.json"))
    ours = BpeTokenizer.from_file(trained)
    assert len(hf) == ours.vocab_size == 300
    assert ours.vocab[:9] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "G", "T"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        seq = "".join(rng.choice(list("ACGTacgtN"), size=int(rng.integers(1, 300))))
        assert hf(seq)["input_ids"] == ours.encode(seq).ids[0].tolist()  # [CLS] ... [SEP], lowercase, N


def test_report_gives_the_held_out_compression_and_time(trained, tmp_path):
    from transformers import PreTrainedTokenizerFast

    report = json.loads((trained / "tokenizer-report.json").read_text())
    assert report["vocab_size"] == 300 and report["windows"] == 200 and report["bases"] == 200 * 500
    assert report["seconds"] > 0
    # Recount the held-out compression with transformers on the same held-out windows.
    prepare([GENOME], tmp_path / "s", progress=False)
    windows = held_out_windows(GenomeStore.open(tmp_path / "s"), 500, 50, 0, 0.05, 0.01)
    hf = PreTrainedTokenizerFast(tokenizer_file=str(trained / "tokenizer.json"))
    text = ["".join("ACGTN"[c] for c in w) for w in windows]
    tokens = sum(len(hf(t, add_special_tokens=False)["input_ids"]) for t in text)
    assert report["heldout"]["bases_per_token"] == pytest.approx(sum(map(len, text)) / tokens)
    assert report["heldout"]["bases_per_token"] > 2  # merges did something on human DNA


def test_a_genome_too_short_for_the_windows_is_named_in_one_line(tmp_path, capsys):
    fasta = tmp_path / "short.fa"
    fasta.write_text(">a\nACGTACGTAC\n")
    assert cli_main(["tokenizer", "train", str(fasta), "--out", str(tmp_path / "t"), "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{fasta}:" in err and "--window-nt" in err


def test_refuses_to_overwrite_and_bad_sizes_in_one_line(trained, capsys):
    for args, words in ((["--store", "x", str(GENOME)], "one of them"),
                        (["--vocab-size", "8", str(GENOME)], "below the alphabet"),
                        ([str(GENOME)], "--force")):
        assert cli_main(["tokenizer", "train", "--out", str(trained), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("randommask tokenizer train: error:") and words in err
