"""GUE benchmark tasks (Genome Understanding Evaluation, DNABERT-2; Zhou et al., ICLR 2024).

A task is a folder holding `train.csv`, `dev.csv` and `test.csv`, each with the header
`sequence,label`, one DNA sequence and one integer class label (0..C-1) per line. The GUE layout is
`<root>/<group folder>/<task>`, e.g. `EMP/H3`, `prom/prom_core_all`, `tf/0`; a task's *name* is that
two-level path.

Evaluation protocols (`Task.protocol` says which one a task used):

* standard (train.csv present): fit on train.csv, select the model on dev.csv, report on test.csv.
* fallback (train.csv absent, dev.csv and test.csv present; some copies of GUE lack train.csv):
  fit on dev.csv minus a seeded, class-stratified holdout of `dev_holdout` (10%) of its rows; the
  holdout is the model-selection dev set; test.csv is used only for the final score. Such scores
  are *not* comparable to published full-train numbers and results must be marked as such
  (`Task.fallback`).

The holdout is drawn with `numpy.random.default_rng(seed)`: the same seed and file give the same
split. Every class keeps at least one row in the training part.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from randommask.alphabet import IUPAC_CODES
from randommask.errors import RandomMaskError

__all__ = [
    "DEFAULT_HPARAMS",
    "GROUPS",
    "GROUP_DIRS",
    "PUBLISHED",
    "SPLIT_FILES",
    "Split",
    "Task",
    "default_hparams",
    "find_tasks",
    "load_csv",
    "load_task",
    "task_group",
]

#: Task groups of GUE as DNABERT-2's Table 4 reports them; "other" is for folders outside them.
GROUPS: tuple[str, ...] = ("EMP", "TF-H", "TF-M", "PD", "CPD", "Splice", "Covid")

#: GUE's top-level folder for each group (prom holds both PD and CPD).
GROUP_DIRS: dict[str, str] = {
    "EMP": "EMP",
    "TF-H": "tf",
    "TF-M": "mouse",
    "PD": "prom",
    "CPD": "prom",
    "Splice": "splice",
    "Covid": "virus",
}

SPLIT_FILES: tuple[str, ...] = ("train.csv", "dev.csv", "test.csv")

HEADER = "sequence,label"

#: IUPAC nucleotide codes accepted in sequences (either case; the alphabet's, U included). Sequences are
#: upper-cased on load.
DNA_ALPHABET = IUPAC_CODES
_BAD_CHAR = re.compile(f"[^{DNA_ALPHABET}{DNA_ALPHABET.lower()}]")
_INT = re.compile(r"[+-]?[0-9]+")

#: Published GUE results, MCC x 100, averaged over each group's tasks (DNABERT-2 paper, Table 4),
#: plus RandomMask's reported EMP average. Keys: model, then group.
PUBLISHED: dict[str, dict[str, float]] = {
    "DNABERT (6-mer)": {
        "EMP": 49.10,
        "TF-H": 64.17,
        "TF-M": 56.43,
        "PD": 81.70,
        "CPD": 71.81,
        "Splice": 84.07,
    },
    "Nucleotide Transformer 2500M-multi": {
        "EMP": 58.06,
        "TF-H": 63.33,
        "TF-M": 67.02,
        "PD": 88.15,
        "CPD": 71.63,
        "Splice": 89.35,
    },
    "DNABERT-2": {
        "EMP": 55.98,
        "TF-H": 70.11,
        "TF-M": 68.00,
        "PD": 84.21,
        "CPD": 70.53,
        "Splice": 84.99,
    },
    "RandomMask": {"EMP": 68.16},
}

#: Fine-tuning settings DNABERT-2 used for k-mer models (finetune/scripts/run_dnabert1.sh and the
#: paper): AdamW lr 3e-5, effective batch 32, linear warm-up. `kmer_max_length` is the script's
#: model_max_length in tokens; `max_length_nt` the task's sequence length in nucleotides;
#: `max_steps` caps training where the script did (mouse: 1000 steps); `eval_steps` is how often
#: the dev set was scored for model selection.
DEFAULT_HPARAMS: dict[str, dict] = {
    "EMP": {"epochs": 3, "max_length_nt": 500, "kmer_max_length": 512, "warmup_steps": 50, "eval_steps": 200},
    "TF-H": {
        "epochs": 3,
        "max_length_nt": 101,
        "kmer_max_length": 110,
        "warmup_steps": 30,
        "eval_steps": 200,
    },
    "TF-M": {
        "epochs": 5,
        "max_length_nt": 101,
        "kmer_max_length": 110,
        "warmup_steps": 30,
        "eval_steps": 200,
        "max_steps": 1000,
    },
    "PD": {"epochs": 4, "max_length_nt": 300, "kmer_max_length": 310, "warmup_steps": 50, "eval_steps": 400},
    "CPD": {"epochs": 4, "max_length_nt": 70, "kmer_max_length": 80, "warmup_steps": 50, "eval_steps": 400},
    "Splice": {
        "epochs": 5,
        "max_length_nt": 400,
        "kmer_max_length": 410,
        "warmup_steps": 50,
        "eval_steps": 200,
    },
    "Covid": {
        "epochs": 9,
        "max_length_nt": 1000,
        "kmer_max_length": 1024,
        "warmup_steps": 50,
        "eval_steps": 200,
    },
    "other": {
        "epochs": 3,
        "max_length_nt": None,
        "kmer_max_length": None,
        "warmup_steps": 50,
        "eval_steps": 200,
    },
}
_COMMON_HPARAMS = {"learning_rate": 3e-5, "batch_size": 32, "max_steps": None}


@dataclass
class Split:
    """One split of a task: sequences (upper-case str) and int64 labels, with where they came from.

    `rows` are the 0-based data-row indices in `source` (file line = row + 2, after the header).
    """

    sequences: list[str]
    labels: np.ndarray
    source: Path
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.sequences)

    def first_line_of(self, label: int) -> int:
        """File line (1-based, header = line 1) of the first row with this label in `source`."""
        idx = np.flatnonzero(self.labels == label)
        return int(self.rows[idx[0]]) + 2 if idx.size else 0


@dataclass
class Task:
    """A loaded GUE task. `fallback` is True when train.csv was absent (see module docstring)."""

    name: str
    group: str
    train: Split
    dev: Split
    test: Split
    num_classes: int
    fallback: bool
    protocol: str
    path: Path = field(default_factory=Path)
    seed: int = 0

    @property
    def hparams(self) -> dict:
        return default_hparams(self.name)


# --------------------------------------------------------------------------------------------
# CSV loading


def _err(path: Path | str, line: int | None, what: str) -> RandomMaskError:
    where = f"{path}, line {line}" if line is not None else f"{path}"
    return RandomMaskError(f"{where}: {what}")


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def load_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a GUE CSV (`sequence,label` header) into (upper-case sequences, int64 labels).

    Tolerates a UTF-8 BOM, CRLF line ends, blank lines and spaces around fields. Raises
    `RandomMaskError` naming the file and line for: a missing or unreadable file, an empty file, a
    wrong header, a line without exactly two fields, an empty sequence, a character outside the
    IUPAC DNA codes, a label that is not an integer or is negative, and a file with no data rows.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _err(path, None, "file not found") from None
    except IsADirectoryError:
        raise _err(path, None, "is a folder, expected a CSV file") from None
    except OSError as e:
        raise _err(path, None, f"cannot read file ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _err(path, line, f"not UTF-8 text (byte 0x{data[e.start]:02x})") from None

    lines = text.split("\n")
    if not text.strip():
        raise _err(path, 1, f"empty file, expected the header {HEADER!r} and data rows")
    header = lines[0].rstrip("\r")
    if header.strip() != HEADER:
        raise _err(path, 1, f"header must be {HEADER!r}, found {_show(header)}")

    sequences: list[str] = []
    labels: list[int] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2:
            raise _err(
                path,
                lineno,
                f"expected 2 comma-separated fields (sequence,label), found {len(fields)}: {_show(line)}",
            )
        seq, lab = fields[0].strip(), fields[1].strip()
        if not seq:
            raise _err(path, lineno, "empty sequence")
        bad = _BAD_CHAR.search(seq)
        if bad:
            raise _err(
                path,
                lineno,
                f"non-DNA character {bad.group()!r} at position {bad.start() + 1} of the sequence "
                f"(allowed: IUPAC codes {DNA_ALPHABET}, any case)",
            )
        if not _INT.fullmatch(lab):
            raise _err(path, lineno, f"label {_show(lab)} is not an integer")
        value = int(lab)
        if value < 0:
            raise _err(path, lineno, f"label {value} is negative; labels must be 0, 1, 2, ...")
        if value >= 2**31:
            raise _err(path, lineno, f"label {value} is too large for a class index")
        sequences.append(seq.upper())
        labels.append(value)
    if not sequences:
        raise _err(path, 2, "no data rows after the header")
    return sequences, np.asarray(labels, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Groups and hyper-parameters


def _parts(name: str | os.PathLike) -> tuple[str, ...]:
    text = os.fspath(name).replace("\\", "/").strip("/")
    return tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))


def task_group(name: str | os.PathLike) -> str:
    """GUE group of a task from its path: the last two components `<group folder>/<task>`.

    EMP/* -> EMP, tf/* -> TF-H, mouse/* -> TF-M, prom/prom_300_* -> PD, prom/prom_core_* -> CPD,
    splice/* -> Splice, virus/covid* -> Covid; anything else -> "other". Leading components (such as
    an absolute path or "GUE/") are ignored.
    """
    parts = _parts(name)
    if len(parts) < 2:
        return "other"
    top, task = parts[-2], parts[-1]
    top_l, task_l = top.lower(), task.lower()
    if top_l == "emp":
        return "EMP"
    if top_l == "tf":
        return "TF-H"
    if top_l == "mouse":
        return "TF-M"
    if top_l == "prom":
        if task_l.startswith("prom_300"):
            return "PD"
        if task_l.startswith("prom_core"):
            return "CPD"
        return "other"
    if top_l == "splice":
        return "Splice"
    if top_l == "virus" and task_l.startswith("covid"):
        return "Covid"
    return "other"


def default_hparams(name: str | os.PathLike) -> dict:
    """DNABERT-2's fine-tuning settings for k-mer models, for the task `name` (e.g. "prom/prom_core_all").

    Keys: epochs, learning_rate, batch_size, warmup_steps, max_steps (None = no cap), eval_steps,
    max_length_nt, kmer_max_length, group. The TATA promoter tasks (prom_300_tata, prom_core_tata)
    train for 10 epochs instead of 4.
    """
    group = task_group(name)
    hp = dict(_COMMON_HPARAMS)
    hp.update(DEFAULT_HPARAMS[group])
    parts = _parts(name)
    if group in ("PD", "CPD") and parts and parts[-1].lower().endswith("_tata"):
        hp["epochs"] = 10
        hp["eval_steps"] = 200
    hp["group"] = group
    return hp


# --------------------------------------------------------------------------------------------
# Task folders


def _task_name(folder: Path) -> str:
    """`<group folder>/<task>` when the parent is a GUE group folder, else the folder's own name."""
    folder = folder.resolve()
    known = {d.lower() for d in GROUP_DIRS.values()}
    if folder.parent.name.lower() in known:
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Row indices (sorted) of a seeded, class-stratified holdout of round(fraction * n) rows.

    Per class, floor(fraction * n_c) rows, plus the remainder of the total spread over the classes
    with the largest fractional parts; every class keeps at least one row outside the holdout.
    """
    n = labels.shape[0]
    classes, counts = np.unique(labels, return_counts=True)
    capacity = counts - 1
    target = min(max(1, int(round(fraction * n))), int(capacity.sum()))
    exact = fraction * counts
    quota = np.minimum(np.floor(exact).astype(np.int64), capacity)
    remaining = target - int(quota.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while remaining > 0:
        progressed = False
        for i in order:
            if remaining == 0:
                break
            if quota[i] < capacity[i]:
                quota[i] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    rng = np.random.default_rng(seed)
    chosen = []
    for c, q in zip(classes, quota, strict=True):
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.permutation(idx)[:q])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _split(path: Path, seqs: list[str], labels: np.ndarray, rows: np.ndarray | None = None) -> Split:
    if rows is None:
        return Split(seqs, labels, path, np.arange(len(seqs), dtype=np.int64))
    return Split([seqs[i] for i in rows], labels[rows], path, rows)


def load_task(
    folder: str | os.PathLike,
    seed: int = 0,
    dev_holdout: float = 0.1,
    *,
    name: str | None = None,
) -> Task:
    """Load a GUE task folder (see the module docstring for the two protocols).

    `name` defaults to `<group folder>/<task>` when the folder sits in a GUE group folder, else the
    folder's name. Raises `RandomMaskError` for a missing folder, a folder without the needed CSV
    files, any bad CSV line (see `load_csv`), training data with fewer than two classes, labels that
    are not 0..C-1, and a dev or test class that the training data lacks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise _err(folder, None, "task folder not found" if not folder.exists() else "not a folder")
    if not 0.0 < float(dev_holdout) < 1.0:
        raise RandomMaskError(f"dev_holdout must be between 0 and 1 (exclusive), got {dev_holdout}")
    present = {f: (folder / f).is_file() for f in SPLIT_FILES}
    if not any(present.values()):
        raise _err(folder, None, "no train.csv, dev.csv or test.csv in this task folder")
    missing = [f for f in ("dev.csv", "test.csv") if not present[f]]
    if missing:
        raise _err(
            folder,
            None,
            f"missing {' and '.join(missing)}; a task folder needs dev.csv and test.csv "
            "(and train.csv, or the fallback protocol trains on dev.csv)",
        )
    name = name or _task_name(folder)
    group = task_group(name)
    train_p, dev_p, test_p = (folder / f for f in SPLIT_FILES)

    test = _split(test_p, *load_csv(test_p))
    if present["train.csv"]:
        fallback = False
        train = _split(train_p, *load_csv(train_p))
        dev = _split(dev_p, *load_csv(dev_p))
        protocol = (
            "standard GUE protocol: trained on train.csv, model selected on dev.csv, scored on test.csv"
        )
    else:
        fallback = True
        seqs, labels = load_csv(dev_p)
        if np.unique(labels).size < 2:
            raise _err(dev_p, None, f"only class {int(labels[0])} present; need at least 2 classes")
        held = _stratified_holdout(labels, float(dev_holdout), int(seed))
        if held.size == 0:
            raise _err(dev_p, None, f"too few rows ({labels.shape[0]}) to hold out a dev set")
        keep = np.setdiff1d(np.arange(labels.shape[0], dtype=np.int64), held)
        train = _split(dev_p, seqs, labels, keep)
        dev = _split(dev_p, seqs, labels, held)
        protocol = (
            f"fallback (train.csv absent): trained on dev.csv minus a seeded stratified "
            f"{dev_holdout:.0%} holdout (seed {seed}; {len(train)} train / {len(dev)} holdout rows), "
            "model selected on the holdout, scored on test.csv only for the final result; "
            "not comparable to published full-train numbers"
        )

    train_classes = np.unique(train.labels)
    if train_classes.size < 2:
        raise _err(
            train.source,
            None,
            f"training data has only class {int(train_classes[0])}; need at least 2 classes",
        )
    for split in (dev, test):
        unseen = np.setdiff1d(np.unique(split.labels), train_classes)
        if unseen.size:
            c = int(unseen[0])
            raise _err(
                split.source,
                split.first_line_of(c),
                f"class {c} does not occur in the training data ({train.source.name}); "
                f"training classes are {', '.join(str(int(x)) for x in train_classes)}",
            )
    num_classes = int(max(train.labels.max(), dev.labels.max(), test.labels.max())) + 1
    gaps = np.setdiff1d(np.arange(num_classes), train_classes)
    if gaps.size:
        raise _err(
            train.source,
            None,
            f"labels must be 0..{num_classes - 1} with every class present, but class "
            f"{', '.join(str(int(x)) for x in gaps)} never occurs",
        )
    return Task(
        name=name,
        group=group,
        train=train,
        dev=dev,
        test=test,
        num_classes=num_classes,
        fallback=fallback,
        protocol=protocol,
        path=folder,
        seed=int(seed),
    )


def find_tasks(root: str | os.PathLike, selectors: list[str] | None = None) -> list[Path]:
    """Task folders (holding train.csv, dev.csv or test.csv) under a GUE root, sorted by path.

    `selectors` (None = all) keep tasks matching any of them. A selector is a group name
    (EMP, TF-H, TF-M, PD, CPD, Splice, Covid, other; any case), a folder path relative to root
    ("EMP/H3", or "prom" for everything below it), or a glob on that path ("prom/prom_core_*").
    Raises `RandomMaskError` if root is not a folder, holds no task, or a selector matches nothing.
    """
    root_p = Path(root)
    if not root_p.is_dir():
        raise _err(root_p, None, "GUE folder not found" if not root_p.exists() else "not a folder")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root_p):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        d = Path(dirpath)
        if any(f in filenames for f in SPLIT_FILES):
            rel = d.relative_to(root_p).as_posix()
            found.append((rel if rel != "." else d.resolve().name, d))
    if not found:
        raise _err(root_p, None, "no task folders (with train.csv, dev.csv or test.csv) here")
    found.sort(key=lambda x: x[0])
    if not selectors:
        return [p for _, p in found]

    by_group = {g.lower(): g for g in (*GROUPS, "other")}
    groups_of = {rel: task_group(rel) for rel, _ in found}
    keep: set[str] = set()
    for sel in selectors:
        s = str(sel).strip().replace("\\", "/").strip("/")
        if s.lower() in by_group:
            g = by_group[s.lower()]
            hits = {rel for rel, _ in found if groups_of[rel] == g}
        elif any(ch in s for ch in "*?["):
            hits = {rel for rel, _ in found if fnmatch.fnmatchcase(rel, s)}
        else:
            hits = {rel for rel, _ in found if rel == s or rel.startswith(s + "/")}
        if not hits:
            order = (*GROUPS, "other")
            present = sorted({groups_of[rel] for rel, _ in found}, key=order.index)
            if s.lower() in by_group:
                what = f"group {by_group[s.lower()]} has no task folder here"
            else:
                what = f"unknown selector {sel!r} (not a group, nor a task folder or glob under it)"
            raise RandomMaskError(
                f"{root_p}: {what}; available groups: {', '.join(present)}; "
                f"or give a task folder such as {found[0][0]!r}"
            )
        keep |= hits
    return [p for rel, p in found if rel in keep]
