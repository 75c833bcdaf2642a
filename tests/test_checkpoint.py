"""Run folders: one reader (`checkpoint.open_run`) for every command, and old folders still load.

``tests/data/run-v0`` was written by the code before the Tokenizer protocol (see tests/data/README.md):
it must still fine-tune, analyze and export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from randommask import checkpoint as ckpt
from randommask.errors import RandomMaskError

OLD_RUN = Path(__file__).resolve().parent / "data" / "run-v0"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "run-v0"
    shutil.copytree(OLD_RUN, run)
    return run


def test_open_run_reads_an_old_folder(old_run) -> None:
    run = ckpt.open_run(old_run)
    assert run.step == 6 and run.kind == "pretrain" and run.checkpoint.name == "step-6.pt"
    assert run.state["tokenizer"] == {"name": "kmer3", "k": 3, "stride": 1}  # the old layout
    assert run.tokenizer.name == "kmer3" and run.tokenizer.vocab_size == 5 + 4**3
    assert run.tokenizer.vocab == (old_run / "vocab.txt").read_text().split()
    assert [m["step"] for m in run.metrics] == [2, 4, 6]
    assert run.checkpoints == [old_run / "checkpoints" / "step-6.pt"]
    # One checkpoint file of the run opens the same run; a checkpoint name is looked up under checkpoints/.
    assert ckpt.open_run(run.checkpoint).path == old_run
    assert ckpt.open_run(old_run, "step-6.pt").step == 6


def test_open_run_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(RandomMaskError, match="model folder not found"):
        ckpt.open_run(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RandomMaskError, match="not a randommask run folder.*Hugging Face"):
        ckpt.open_run(tmp_path)


def test_an_old_folder_fine_tunes_analyzes_and_exports(old_run, tmp_path) -> None:
    from randommask.analysis.report import AnalyzeConfig, analyze
    from randommask.finetune import FinetuneConfig, finetune
    from randommask.hf import export_run

    task = tmp_path / "task"
    task.mkdir()
    rows = "sequence,label\n" + "".join(f"{'ACGT' * 5 if i % 2 else 'TTGCA' * 4},{i % 2}\n" for i in range(8))
    for name in ("train.csv", "dev.csv", "test.csv"):
        (task / name).write_text(rows)
    results = finetune(FinetuneConfig(model=str(old_run), task=str(task), out_dir=str(tmp_path / "ft"),
                                      max_steps=2, batch_size=4, progress=False))
    assert results["tokenizer"] == {"name": "kmer3", "k": 3, "stride": 1}
    assert results["model"]["step"] == 6

    values = analyze(AnalyzeConfig(run=str(old_run), out=str(tmp_path / "analysis"), windows=2, projection="none",
                                   mask_draws=1, progress=False))
    assert values["step"] == 6 and values["masks"]["strategy"] == "randommask"

    out = export_run(old_run, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["randommask"]["tokenizer"] == "kmer3"
    assert (out / "model.safetensors").is_file()


def test_tokenizers_round_trip_through_their_spec() -> None:
    from randommask.tokenizers import Tokenizer, from_name, from_spec

    for name in ("kmer6", "kmer3-nonoverlap", "nt"):
        tok = from_name(name)
        assert isinstance(tok, Tokenizer)
        back = from_spec(tok.spec, tok.vocab)
        assert back.name == name and back.vocab == tok.vocab and back.spec == tok.spec
    old = {"name": "kmer6", "k": 6, "stride": 1}  # what every run folder has stored
    assert from_spec(old).spec == old
    with pytest.raises(RandomMaskError, match="unknown tokenizer type 'wordpiece'"):
        from_spec({"type": "wordpiece", "name": "wp"})
    with pytest.raises(RandomMaskError, match="holds no tokenizer.json"):
        from_spec({"type": "bpe", "name": "bpe4096"})
    tok = from_name("kmer4")
    assert tok.with_params(stride=4).name == "kmer4-nonoverlap" and tok.with_params(stride=None) is tok


def test_masking_strategies_describe_themselves_and_plan_without_mutation() -> None:
    from randommask.masking import STRATEGIES, MaskingConfig, describe_lines, plan

    assert set(STRATEGIES) == {"bert", "dnabert", "randommask"}
    cfg = MaskingConfig(strategy="randommask")
    planned = plan(cfg, total_steps=50, span_unit=3)
    assert (cfg.total_steps, cfg.k) == (10_000, 6)  # the config given is left as it was
    assert (planned.total_steps, planned.k) == (50, 3)
    lines = describe_lines(planned)
    assert lines[0].startswith("- Masking: RandomMask, a curriculum of 5 phases over 50 steps")
    assert "span widths 3, 5, 7, 9, 11 k-mers" in lines[-1]
    assert plan(MaskingConfig(strategy="bert"), 50, 3).k == 6  # BERT's masking counts single tokens
    assert describe_lines(MaskingConfig(strategy="dnabert", k=6))[0].startswith("- Masking: DNABERT, spans of 6")
