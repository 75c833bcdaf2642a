"""Reliability: kills, pre-emption signals, hostile input, and disks that refuse writes."""

from __future__ import annotations

import errno
import gzip
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from randommask import checkpoint as ckpt
from randommask import pretrain as pt
from randommask.config import from_dict, load_yaml, to_dict
from randommask.errors import RandomMaskError
from randommask.genome import GenomeStore, prepare, read_fasta
from randommask.tasks import load_csv
from randommask.tokenizers import KmerTokenizer
from realdata import GENOME, GUE

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ kills
def test_kill_test_short(tmp_path):
    kill = load_script("kill_test")
    assert kill.kill_test(str(GENOME), tmp_path, steps=30, kills=3, seed=1, verbose=False)
    assert not list((tmp_path / "interrupted" / "checkpoints").glob(".step-*.tmp-*"))  # stale writes cleaned


def test_benchmark_kill_short(tmp_path):
    kill = load_script("kill_test")
    assert kill.benchmark_kill_test(str(GUE), tmp_path, kills=2, seed=3, verbose=False)


def start(out: Path, steps: int, pause: bool = False) -> tuple[subprocess.Popen, Path]:
    log = out.parent / "stdout.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # With pause, every checkpoint write is held 60 s before its rename (tests/pause_checkpoint.py).
    launcher = [str(Path(__file__).with_name("pause_checkpoint.py")), "60"] if pause else ["-m", "randommask.cli"]
    cmd = [sys.executable, *launcher, "pretrain", str(GENOME), "--out", str(out), "--steps", str(steps),
           "--batch-size", "4", "--max-tokens", "64", "--log_interval", "1", "--save_interval", "1000",
           "--eval_interval", "1000", "--eval_windows", "4", "--progress", "false"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    while not ((out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.02)
    return proc, log


def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    proc, log = start(out, steps=100_000)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "stopped by signal" in text and "--resume" in text
    latest = ckpt.latest_checkpoint(out)
    step = ckpt.load_checkpoint(latest)["step"]
    assert 3 <= step < 100_000 and latest.name == f"step-{step}.pt"


def test_second_signal_exits_at_once_and_keeps_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc, log = start(out, steps=100_000, pause=True)
    proc.send_signal(signal.SIGINT)  # first: checkpoint requested; the write is held by the fault pause
    ckpt_dir = out / "checkpoints"
    deadline = time.time() + 60
    while not (ckpt_dir.exists() and list(ckpt_dir.glob(".step-*.tmp-*"))):
        assert time.time() < deadline, log.read_text()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # second: out now, mid-write
    assert proc.wait(timeout=120) == 128 + signal.SIGINT  # not held by the 600 s pause in the write
    assert ckpt.latest_checkpoint(out) is None  # no half checkpoint was published


# ------------------------------------------------------------------------------------------ disks
def test_full_disk_at_checkpoint_keeps_previous(tmp_path, monkeypatch):
    cfg = pt.load_config({"out_dir": str(tmp_path / "r"), "data": {"fasta": [str(GENOME)], "max_tokens": 64},
                          "steps": 4, "batch_size": 2, "save_interval": 2, "eval_interval": 4, "eval_windows": 2,
                          "progress": False, "keep_checkpoints": 0})
    real = torch.save

    def full(obj, f, *a, **k):
        if obj.get("step") == 4:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RandomMaskError, match="No space left on device.*previous checkpoint is kept"):
        pt.pretrain(cfg)
    latest = ckpt.latest_checkpoint(tmp_path / "r")
    assert latest.name == "step-2.pt" and ckpt.load_checkpoint(latest)["step"] == 2
    assert not list((tmp_path / "r" / "checkpoints").glob(".step-*"))


def test_read_only_run_folder_fails_at_start():
    cfg = pt.load_config({"out_dir": "/sys/randommask-run", "data": {"fasta": ["x.fa"]}, "progress": False})
    with pytest.raises(RandomMaskError, match="/sys/randommask-run: cannot write the run folder"):
        pt.pretrain(cfg)


# ------------------------------------------------------------------------------------------ hostile input
FASTA_SEED = b">chr1 test\nACGTNacgtn\nRYKM\n>chr2\r\nGGGG\r\nCC\n"


def reference_fasta(data: bytes) -> list[tuple[str, str]] | None:
    """A slow, obvious FASTA reader: the records, or None when the input is not valid FASTA.

    Names are the first word of the header (any bytes, read as UTF-8 with replacement); sequence lines
    hold IUPAC letters only, with whitespace allowed at their ends.
    """
    records: list[tuple[str, list[str]]] = []
    for raw in data.split(b"\n"):
        line = raw.strip(b" \t\r\x0b\x0c")
        if not line:
            continue
        if raw.startswith(b">"):  # a header starts in column 1
            parts = line[1:].split()
            if not parts:
                return None
            records.append((parts[0].decode("utf-8", errors="replace"), []))
        else:
            letters = b"ACGTUNRYSWKMBDHVacgtunryswkmbdhv"
            if not records or any(c not in letters for c in line):
                return None
            records[-1][1].append(line.decode("ascii"))
    names = [n for n, _ in records]
    if not records or len(set(names)) != len(names) or any(not "".join(s) for _, s in records):
        return None
    table = str.maketrans("acgtuURYSWKMBDHVryswkmbdhvn", "ACGTTTNNNNNNNNNNNNNNNNNNNNN")
    return [(n, "".join(s).translate(table)) for n, s in records]


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf:
            buf.append(value)
            continue
        p = pos % len(buf)
        if kind == 0:
            buf[p] = value
        elif kind == 1:
            del buf[p]
        else:
            buf.insert(p, value)
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=4)
fasta_like = st.one_of(st.binary(max_size=200), edits.map(lambda e: mutate(FASTA_SEED, e)),
                       st.text(alphabet=">ACGTN \n\r\tx", max_size=80).map(str.encode))


@HOSTILE
@given(data=fasta_like, compress=st.sampled_from(["plain", "gzip", "cut-gzip"]))
def test_fasta_reader_and_store_survive_hostile_bytes(tmp_path_factory, data, compress):
    tmp = tmp_path_factory.mktemp("fa")
    path = tmp / "in.fa"
    raw = data if compress == "plain" else gzip.compress(data)
    if compress == "cut-gzip":
        raw = raw[: max(1, len(raw) - 5)]
    path.write_bytes(raw)
    expect = reference_fasta(data) if compress != "cut-gzip" else None
    out = tmp / "store"
    try:
        store = prepare([path], out)
    except RandomMaskError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        assert expect is None, f"valid FASTA refused: {e}"
        assert not (out / "index.json").exists() and not list(out.glob(".*tmp*")) if out.exists() else True
        return
    assert expect is not None, "invalid FASTA accepted"
    got = [(r.name, "".join("ACGTN"[c] for c in store.record_codes(i))) for i, r in enumerate(store.records)]
    assert got == expect
    assert [(n, "".join("ACGTN"[c] for c in s)) for n, s in read_fasta(path)] == expect


@HOSTILE
@given(index=st.binary(max_size=120) | edits.map(lambda e: mutate(b'{"format": "randommask-genome"}', e)),
       bases=st.binary(max_size=40))
def test_store_open_survives_hostile_files(tmp_path_factory, index, bases):
    tmp = tmp_path_factory.mktemp("store")
    (tmp / "index.json").write_bytes(index)
    (tmp / "bases.u8").write_bytes(bases)
    with pytest.raises(RandomMaskError) as e:  # none of these is a valid store
        GenomeStore.open(tmp)
    assert "\n" not in str(e.value)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(edit=edits)
def test_store_open_survives_mutated_real_index(tmp_path_factory, edit):
    tmp = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.getbasetemp() / "genome-store"
    if not (src / "index.json").exists():
        prepare([GENOME], src)
    index = (src / "index.json").read_bytes()
    (tmp / "index.json").write_bytes(mutate(index, edit))
    (tmp / "bases.u8").write_bytes((src / "bases.u8").read_bytes())
    try:
        store = GenomeStore.open(tmp)
    except RandomMaskError as e:
        assert "\n" not in str(e)
        return
    # Accepted: then it must describe the same genome.
    ref = GenomeStore.open(src)
    assert store.total_length == ref.total_length
    assert np.array_equal(store.record_codes(0), ref.record_codes(0))


CSV_SEED = b"sequence,label\nACGT,0\nGGCC,1\n"


@HOSTILE
@given(data=st.binary(max_size=120) | edits.map(lambda e: mutate(CSV_SEED, e)))
def test_csv_loader_survives_hostile_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("csv") / "train.csv"
    path.write_bytes(data)
    try:
        seqs, labels = load_csv(path)
    except RandomMaskError as e:
        assert "\n" not in str(e) and "train.csv" in str(e)
        return
    # Accepted: every row is DNA with a non-negative integer label, as the file says.
    lines = [x for x in data.decode("utf-8-sig").replace("\r\n", "\n").split("\n") if x.strip()]
    assert len(seqs) == len(labels) == len(lines) - 1
    for (seq, label), line in zip(zip(seqs, labels, strict=True), lines[1:], strict=True):
        s, lab = (x.strip() for x in line.split(","))
        assert seq == s.upper() and int(lab) == label >= 0


@HOSTILE
@given(data=st.binary(max_size=80)
       | edits.map(lambda e: mutate(b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nA\nC\nG\nT\n", e)))
def test_vocab_loader_survives_hostile_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_bytes(data)
    try:
        tok = KmerTokenizer.from_vocab_file(path)
    except RandomMaskError as e:
        assert "\n" not in str(e) and "vocab.txt" in str(e)
        return
    assert sorted(tok.vocab) == sorted(KmerTokenizer(tok.k).vocab)
    assert tok.vocab == [t.strip() for t in data.decode().splitlines()][: tok.vocab_size]


@HOSTILE
@given(data=st.binary(max_size=120)
       | edits.map(lambda e: mutate(b"steps: 10\noptim:\n  lr: 0.001\ndata:\n  fasta: [a.fa]\n", e)))
def test_config_loader_survives_hostile_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(data)
    try:
        cfg = pt.load_config(load_yaml(path))
    except RandomMaskError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(cfg.steps, int) and cfg.steps >= 1 and isinstance(cfg.optim.lr, float)
    # Accepted: the config round-trips through plain data unchanged.
    assert from_dict(pt.PretrainConfig, to_dict(cfg)) == cfg


def _kill_when(cmd: list[str], log: Path, ready, env: dict) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``ready()`` holds (the process must still be running then)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 300  # a hang guard only
    while not ready():
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_study_requeued_with_the_same_command_line(tmp_path):
    """A study job killed before its first checkpoint, then after one, finishes when rerun as it was started."""
    out = tmp_path / "study"
    run = out / "pretrain" / "ov-dnabert"
    cmd = [sys.executable, "-m", "randommask.cli", "study", str(GENOME), "--gue", str(GUE), "--preset", "cpu-smoke",
           "--arm", "ov-dnabert", "--steps", "30", "--out", str(out), "--progress", "false", "--resume", "auto"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 1. Killed while writing its first checkpoint (held there): nothing to resume from yet.
    held = [sys.executable, str(Path(__file__).with_name("pause_checkpoint.py")), "600", *cmd[3:]]
    _kill_when(held, tmp_path / "1.txt", lambda: bool(list(run.glob("checkpoints/.step-*.tmp-*"))), env)
    assert ckpt.latest_checkpoint(run) is None and (run / "metrics.jsonl").read_text()
    # 2. The same command starts the run afresh; killed once it has checkpoints.
    _kill_when(cmd, tmp_path / "2.txt", lambda: ckpt.latest_checkpoint(run) is not None, env)
    saved = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))["step"]
    assert 0 < saved < 30
    # 3. The same command resumes at that checkpoint and finishes the arm, fine-tuning included.
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resuming at step {saved}" in done.stdout
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # every step logged once: nothing left over from the killed starts
    assert (run / "study-arm-done.json").is_file()
    ft = out / "finetune"
    finished = sorted(p.relative_to(ft).parts[0] for p in ft.glob("*/runs/**/results.json"))
    assert finished == ["ov-dnabert.ft-nov"] * 3 + ["ov-dnabert.ft-ov"] * 3  # 3 seeds, both strides
