"""GUE task loading, fallback protocol, selectors, groups/hyper-parameters and CSV validation."""

from pathlib import Path

import numpy as np
import pytest

from randommask.errors import RandomMaskError
from randommask.tasks import (
    GROUPS,
    PUBLISHED,
    default_hparams,
    find_tasks,
    load_csv,
    load_task,
    task_group,
)
from realdata import GUE


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8", newline="")
    return p


GOOD = "sequence,label\nACGT,0\nGGCC,1\nTTAA,0\nCCGG,1\n"


def _task(folder: Path, train=GOOD, dev=GOOD, test=GOOD) -> Path:
    for name, text in (("train.csv", train), ("dev.csv", dev), ("test.csv", test)):
        if text is not None:
            _write(folder, name, text)
    return folder


# ------------------------------------------------------------------------------- real GUE tasks


def test_load_standard_task():
    t = load_task(GUE / "prom" / "prom_core_all")
    assert t.name == "prom/prom_core_all" and t.group == "CPD"
    assert not t.fallback and "standard" in t.protocol
    assert t.num_classes == 2
    folder = GUE / "prom" / "prom_core_all"
    lines = {s: (folder / f"{s}.csv").read_text().count("\n") - 1 for s in ("train", "dev", "test")}
    assert (len(t.train), len(t.dev), len(t.test)) == (lines["train"], lines["dev"], lines["test"])
    for split in (t.train, t.dev, t.test):
        assert split.labels.dtype == np.int64 and len(split.sequences) == split.labels.shape[0]
        assert set(np.unique(split.labels)) == {0, 1}
        assert all(len(s) == 70 for s in split.sequences[:100])
    assert t.train.source.name == "train.csv" and t.test.source.name == "test.csv"
    assert t.hparams["epochs"] == 4


def test_load_fallback_task():
    folder = GUE / "EMP" / "H3"
    assert not (folder / "train.csv").exists()
    seqs, labels = load_csv(folder / "dev.csv")
    test_seqs, test_labels = load_csv(folder / "test.csv")
    n = len(seqs)

    t = load_task(folder, seed=0)
    assert t.fallback and t.name == "EMP/H3" and t.group == "EMP"
    assert "fallback" in t.protocol and "not comparable" in t.protocol and "seed 0" in t.protocol
    # Dev (model selection) is a seeded 10% of dev.csv; train is the rest; disjoint and covering.
    assert len(t.dev) == round(0.1 * n) and len(t.train) + len(t.dev) == n
    assert t.train.source == t.dev.source == folder / "dev.csv"
    assert not set(t.train.rows.tolist()) & set(t.dev.rows.tolist())
    assert sorted(t.train.rows.tolist() + t.dev.rows.tolist()) == list(range(n))
    assert not set(t.train.sequences) & set(t.dev.sequences)  # dev.csv of EMP/H3 has no duplicates
    assert t.dev.sequences == [seqs[i] for i in t.dev.rows]
    np.testing.assert_array_equal(t.dev.labels, labels[t.dev.rows])
    # Stratified: class proportions kept within one row per class.
    for c in (0, 1):
        assert abs(int((t.dev.labels == c).sum()) - 0.1 * int((labels == c).sum())) <= 1
    # Test untouched: exactly test.csv, in order.
    assert t.test.sequences == test_seqs and t.test.source == folder / "test.csv"
    np.testing.assert_array_equal(t.test.labels, test_labels)
    # Deterministic per seed, different across seeds.
    again = load_task(folder, seed=0)
    np.testing.assert_array_equal(again.dev.rows, t.dev.rows)
    other = load_task(folder, seed=1)
    assert not np.array_equal(other.dev.rows, t.dev.rows)
    assert len(other.dev) == len(t.dev)
    # Holdout fraction is configurable.
    assert len(load_task(folder, dev_holdout=0.2).dev) == round(0.2 * n)


# The task folders of the GUE copy the project is developed with (../shared/data/GUE), without Covid.
GUE_LAYOUT = ("EMP/H3", "EMP/H3K14ac", "EMP/H3K36me3", "EMP/H3K4me1", "EMP/H3K4me2", "EMP/H3K79me3", "EMP/H3K9ac",
              "EMP/H4", "EMP/H4ac", "mouse/0", "mouse/1", "mouse/3", "mouse/4", "prom/prom_300_all",
              "prom/prom_300_notata", "prom/prom_300_tata", "prom/prom_core_all", "prom/prom_core_notata",
              "splice/reconstructed", "tf/0", "tf/1", "tf/2", "tf/4")


def test_committed_excerpts_are_whole_real_tasks():
    assert sorted(p.relative_to(GUE).as_posix() for p in find_tasks(GUE)) == [
        "EMP/H3", "mouse/0", "prom/prom_core_all", "tf/0"]
    for folder in find_tasks(GUE):
        for split in ("train", "dev", "test"):
            if (folder / f"{split}.csv").exists():
                seqs, labels = load_csv(folder / f"{split}.csv")
                assert len(seqs) == 200 and set(labels.tolist()) == {0, 1}


@pytest.fixture
def gue_layout(tmp_path) -> Path:
    """GUE's folder layout, each task holding a real excerpt's test.csv (selectors only read the folders)."""
    text = (GUE / "tf" / "0" / "test.csv").read_text()
    for rel in GUE_LAYOUT:
        _write(tmp_path / rel, "test.csv", text)
    return tmp_path


def test_find_tasks_selectors(gue_layout):
    root = gue_layout
    everything = find_tasks(root)
    rel = [p.relative_to(root).as_posix() for p in everything]
    assert rel == sorted(rel) == sorted(GUE_LAYOUT)
    assert all(task_group(r) in GROUPS for r in rel)

    def sel(*s):
        return [p.relative_to(root).as_posix() for p in find_tasks(root, list(s))]

    emp = sel("EMP")
    assert emp and all(r.startswith("EMP/") for r in emp) and len(emp) == 9
    assert sel("cpd") == ["prom/prom_core_all", "prom/prom_core_notata"]
    assert sel("PD") == ["prom/prom_300_all", "prom/prom_300_notata", "prom/prom_300_tata"]
    assert sel("EMP/H3") == ["EMP/H3"]  # exact folder, not EMP/H3K14ac etc.
    assert sel("prom") == sel("PD", "CPD")
    assert sel("prom/prom_core_*") == sel("CPD")
    assert sel("TF-M", "tf/0") == ["mouse/0", "mouse/1", "mouse/3", "mouse/4", "tf/0"]
    with pytest.raises(RandomMaskError, match="unknown selector 'nope'.*EMP, TF-H"):
        find_tasks(root, ["nope"])
    with pytest.raises(RandomMaskError, match="group Covid has no task"):
        find_tasks(root, ["Covid"])


def test_find_tasks_tmp(tmp_path):
    _task(tmp_path / "EMP" / "X")
    _task(tmp_path / "tf" / "1", train=None)
    (tmp_path / "empty").mkdir()
    assert find_tasks(tmp_path) == [tmp_path / "EMP" / "X", tmp_path / "tf" / "1"]
    assert find_tasks(tmp_path, ["TF-H"]) == [tmp_path / "tf" / "1"]
    with pytest.raises(RandomMaskError, match="no task folders"):
        find_tasks(tmp_path / "empty")
    with pytest.raises(RandomMaskError, match="not found"):
        find_tasks(tmp_path / "missing")


# ------------------------------------------------------------------------ groups, hparams, refs


def test_task_group_and_hparams():
    cases = {
        "EMP/H3": ("EMP", 3),
        "tf/0": ("TF-H", 3),
        "mouse/4": ("TF-M", 5),
        "prom/prom_300_all": ("PD", 4),
        "prom/prom_300_notata": ("PD", 4),
        "prom/prom_300_tata": ("PD", 10),
        "prom/prom_core_all": ("CPD", 4),
        "prom/prom_core_notata": ("CPD", 4),
        "prom/prom_core_tata": ("CPD", 10),
        "splice/reconstructed": ("Splice", 5),
        "virus/covid": ("Covid", 9),
        "my/own_task": ("other", 3),
        "GUE/EMP/H4ac": ("EMP", 3),
    }
    for name, (group, epochs) in cases.items():
        assert task_group(name) == group, name
        hp = default_hparams(name)
        assert hp["epochs"] == epochs, name
        assert hp["learning_rate"] == 3e-5 and hp["batch_size"] == 32 and hp["group"] == group
    assert default_hparams("EMP/H3")["warmup_steps"] == 50
    assert default_hparams("EMP/H3")["max_length_nt"] == 500
    assert default_hparams("prom/prom_core_all")["max_length_nt"] == 70


def test_published():
    assert PUBLISHED["DNABERT-2"]["EMP"] == 55.98
    assert PUBLISHED["DNABERT (6-mer)"]["Splice"] == 84.07
    assert PUBLISHED["Nucleotide Transformer 2500M-multi"]["PD"] == 88.15
    assert PUBLISHED["RandomMask"] == {"EMP": 68.16}
    for model in ("DNABERT (6-mer)", "Nucleotide Transformer 2500M-multi", "DNABERT-2"):
        assert set(PUBLISHED[model]) == {"EMP", "TF-H", "TF-M", "PD", "CPD", "Splice"}


# ------------------------------------------------------------------------------------ bad input


def test_load_csv_tolerates_bom_crlf_and_case(tmp_path):
    p = _write(tmp_path, "x.csv", "\ufeffsequence,label\r\nacgtn,1\r\nRYKM , 0\r\n\r\n")
    seqs, labels = load_csv(p)
    assert seqs == ["ACGTN", "RYKM"] and labels.tolist() == [1, 0] and labels.dtype == np.int64


@pytest.mark.parametrize(
    "text, line, pattern",
    [
        ("seq,label\nACGT,0\n", 1, "header must be 'sequence,label'"),
        ("sequence,label,extra\nACGT,0\n", 1, "header must be"),
        ("", 1, "empty file"),
        ("sequence,label\n", 2, "no data rows"),
        ("sequence,label\nACGT,0\nACGT,x\n", 3, "label 'x' is not an integer"),
        ("sequence,label\nACGT,0\nACGT,1.0\n", 3, "label '1.0' is not an integer"),
        ("sequence,label\nACGT,-1\n", 2, "label -1 is negative"),
        ("sequence,label\nACGT,0\nAC,GT,1\n", 3, "expected 2 comma-separated fields"),
        ("sequence,label\nACGT\n", 2, "expected 2 comma-separated fields"),
        ("sequence,label\nACGT,0\n,1\n", 3, "empty sequence"),
        ("sequence,label\nACGT,0\nACGT,1\nACXT,0\n", 4, "non-DNA character 'X' at position 3"),
        ("sequence,label\nAC-T,0\n", 2, "non-DNA character '-'"),
    ],
)
def test_load_csv_errors(tmp_path, text, line, pattern):
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(RandomMaskError, match=pattern) as e:
        load_csv(p)
    msg = str(e.value)
    assert str(p) in msg and f"line {line}:" in msg and "\n" not in msg


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(RandomMaskError, match="missing.csv: file not found"):
        load_csv(tmp_path / "missing.csv")


def test_task_no_csv(tmp_path):
    (tmp_path / "t").mkdir()
    with pytest.raises(RandomMaskError, match="no train.csv, dev.csv or test.csv") as e:
        load_task(tmp_path / "t")
    assert str(tmp_path / "t") in str(e.value)
    with pytest.raises(RandomMaskError, match="task folder not found"):
        load_task(tmp_path / "nope")
    with pytest.raises(RandomMaskError, match="missing test.csv"):
        load_task(_task(tmp_path / "u", test=None))


def test_task_bad_csv_reports_file_and_line(tmp_path):
    folder = _task(tmp_path / "t", test="sequence,label\nACGT,0\nACGT,one\n")
    with pytest.raises(RandomMaskError, match=r"test\.csv, line 3: label 'one' is not an integer"):
        load_task(folder)
    folder = _task(tmp_path / "w", dev="sequence;label\nACGT;0\n")
    with pytest.raises(RandomMaskError, match=r"dev\.csv, line 1: header"):
        load_task(folder)


def test_task_test_class_unseen_in_train(tmp_path):
    folder = _task(tmp_path / "t", test="sequence,label\nACGT,0\nACGT,1\nGGGG,2\n")
    with pytest.raises(RandomMaskError, match=r"test\.csv, line 4: class 2 does not occur in the training"):
        load_task(folder)
    # Fallback protocol: the training data is dev.csv minus the holdout.
    folder = _task(tmp_path / "f", train=None, test="sequence,label\nACGT,0\nACGT,3\n")
    with pytest.raises(RandomMaskError, match=r"test\.csv, line 3: class 3 does not occur.*\(dev\.csv\)"):
        load_task(folder)


def test_task_label_checks(tmp_path):
    one_class = "sequence,label\nACGT,1\nACGT,1\n"
    with pytest.raises(RandomMaskError, match=r"train\.csv: training data has only class 1"):
        load_task(_task(tmp_path / "a", train=one_class, dev=one_class, test=one_class))
    gap = "sequence,label\nACGT,1\nACGT,2\n"
    with pytest.raises(RandomMaskError, match=r"train\.csv: .*class 0 never occurs"):
        load_task(_task(tmp_path / "b", train=gap, dev=gap, test=gap))
    with pytest.raises(RandomMaskError, match="dev_holdout"):
        load_task(_task(tmp_path / "c", train=None), dev_holdout=1.5)


def test_fallback_small_and_multiclass(tmp_path):
    rows = "".join(f"{'ACGT'[i % 4] * 5},{i % 3}\n" for i in range(31))
    folder = _task(tmp_path / "splice" / "mine", train=None, dev="sequence,label\n" + rows)
    t = load_task(folder, seed=3)
    assert t.fallback and t.name == "splice/mine" and t.group == "Splice" and t.num_classes == 3
    assert len(t.dev) == 3 and len(t.train) == 28
    assert set(t.dev.labels.tolist()) <= {0, 1, 2} and set(t.train.labels.tolist()) == {0, 1, 2}
