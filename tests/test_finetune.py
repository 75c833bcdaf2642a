"""Fine-tuning: end to end from a tiny pre-trained run, from scratch, stride override, plans and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from randommask import checkpoint as ckpt
from randommask.cli import main
from randommask.errors import RandomMaskError
from randommask.finetune import (
    FinetuneConfig,
    build_classifier,
    finetune,
    plan_training,
    resolve_model,
    score_split,
    shift_positionals,
)
from randommask.model import BertForSequenceClassification, ModelConfig, load_hf_state_dict
from randommask.runtime import autocast_for, lr_factor
from randommask.tasks import load_task

FAST = ["--max-steps", "4", "--eval-steps", "2", "--batch-size", "8", "--eval-batch-size", "32", "--progress", "false"]


def write_task(folder: Path, n_train: int = 48, n_eval: int = 24, length: int = 40, seed: int = 0,
               with_train: bool = True) -> Path:
    """A learnable toy task: class 1 sequences carry GGGGGGGG at a random place."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def rows(n: int) -> str:
        lines = ["sequence,label"]
        for i in range(n):
            seq = list(rng.choice(list("ACT"), size=length))
            if i % 2:
                at = int(rng.integers(0, length - 8))
                seq[at : at + 8] = "GGGGGGGG"
            lines.append(f"{''.join(seq)},{i % 2}")
        return "\n".join(lines) + "\n"

    for name, n in (("train.csv", n_train), ("dev.csv", n_eval), ("test.csv", n_eval)):
        if name != "train.csv" or with_train:
            (folder / name).write_text(rows(n))
    return folder


@pytest.fixture(scope="module")
def toy_task(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("tasks") / "toy")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------------------ end to end
def test_finetune_end_to_end(pretrained, toy_task, tmp_path):
    out = tmp_path / "ft"
    assert main(["finetune", str(pretrained), str(toy_task), "--out", str(out), *FAST, "--lr", "1e-3"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["test"]) == {"mcc", "f1", "accuracy", "loss"}
    assert res["fallback"] is False and res["protocol"].startswith("standard")
    assert res["hparams"]["total_steps"] == 4 and res["hparams"]["learning_rate"] == 1e-3
    assert res["seed"] == 0 and res["wall_time_s"] > 0 and res["model"]["step"] == 4

    # The kept checkpoint is the first evaluation with the best dev MCC.
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "dev_mcc" in line]
    assert [e["step"] for e in evals] == [2, 4]
    best = max(evals, key=lambda e: e["dev_mcc"])  # max keeps the first of equals, as finetune does
    assert res["best"]["step"] == best["step"] and res["best"]["dev"]["mcc"] == best["dev_mcc"]
    path = ckpt.latest_checkpoint(out)
    assert path.name == f"step-{best['step']}.pt" and res["checkpoint"] == f"checkpoints/{path.name}"
    state = ckpt.load_checkpoint(path)
    assert state["kind"] == "finetune" and state["labels"] == [0, 1] and state["task"] == "toy"
    assert state["model_config"]["num_labels"] == 2 and state["tokenizer"]["k"] == 6
    assert (out / "config.yaml").is_file() and (out / "vocab.txt").is_file()

    # The saved model reproduces the reported test metrics.
    model = BertForSequenceClassification(ModelConfig.from_dict(state["model_config"]))
    load_hf_state_dict(model, state["model"])
    pre = ckpt.load_pretrained(out)
    task = load_task(toy_task)
    m = score_split(model, pre.tokenizer, task.test, state["max_length"], 32, torch.device("cpu"),
                    autocast_for(torch.device("cpu")))
    assert m["mcc"] == pytest.approx(res["test"]["mcc"]) and m["loss"] == pytest.approx(res["test"]["loss"], 1e-5)

    # A finished run is never overwritten.
    assert main(["finetune", str(pretrained), str(toy_task), "--out", str(out), *FAST]) == 2


def test_encoder_weights_come_from_the_pretrained_run(pretrained):
    spec = resolve_model(FinetuneConfig(model=str(pretrained), task="x"))
    model = build_classifier(spec, 3, seed=0)
    word = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(model.state_dict()[word], spec.state[word])
    assert model.classifier.out_features == 3
    scratch = resolve_model(FinetuneConfig(model=str(pretrained), from_scratch=True, task="x"))
    assert scratch.state is None and scratch.config == spec.config  # same architecture, no weights
    assert not torch.equal(build_classifier(scratch, 2, seed=0).state_dict()[word], spec.state[word])
    # dropout: the model's own unless given; the weights do not depend on it.
    assert model.config.hidden_dropout == spec.config.hidden_dropout
    other = build_classifier(spec, 3, seed=0, dropout=0.25)
    assert (other.config.hidden_dropout, other.config.attention_dropout) == (0.25, 0.25)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True))


def test_tokenizer_stride_override(pretrained, toy_task, tmp_path):
    cfg = FinetuneConfig(model=str(pretrained), task=str(toy_task), out_dir=str(tmp_path / "ft"), tokenizer_stride=6,
                         max_steps=2, eval_steps=2, batch_size=8, progress=False, save_model=False)
    res = finetune(cfg)
    assert res["tokenizer"] == {"name": "kmer6-nonoverlap", "k": 6, "stride": 6}
    assert res["hparams"]["max_length"] == 40 // 6 + 2  # 40 nt of the longest toy sequence, 6 per token
    assert res["checkpoint"] is None and not ckpt.list_checkpoints(tmp_path / "ft")


def test_from_scratch_cli_forms(toy_task, tmp_path, capsys):
    fallback = write_task(tmp_path / "nofit", n_eval=40, with_train=False)
    assert main(["finetune", str(fallback), "--from-scratch", "--out", str(tmp_path / "a"), *FAST]) == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["model"]["from_scratch"] and res["model"]["preset"] == "tiny" and res["tokenizer"]["name"] == "kmer6"
    assert res["fallback"] is True and "fallback" in res["protocol"]
    assert res["sizes"]["train"] + res["sizes"]["dev"] == 40
    # argparse hands `--from-scratch TASK` the task as the flag's value: it still means the task.
    assert main(["finetune", "--from-scratch", str(toy_task), "--tokenizer", "kmer3", "--out", str(tmp_path / "b"),
                 *FAST]) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["tokenizer"]["k"] == 3


def test_shift_positionals():
    assert shift_positionals({"model": "T", "from_scratch": True}, "model", "task") == \
        {"model": "", "task": "T", "from_scratch": True}
    assert shift_positionals({"from_scratch": "T"}, "model", "task") == {"model": "", "task": "T", "from_scratch": True}
    assert shift_positionals({"model": "M", "from_scratch": "T"}, "model", "task")["task"] == "T"
    assert shift_positionals({"model": "M", "task": "T"}, "model", "task") == {"model": "M", "task": "T"}


# ------------------------------------------------------------------------------------------ plan
def test_plan_defaults_follow_dnabert2(tmp_path):
    folder = write_task(tmp_path / "prom" / "prom_core_toy", n_train=100, length=70)
    task = load_task(folder)
    assert task.name == "prom/prom_core_toy" and task.group == "CPD"
    spec = resolve_model(FinetuneConfig(from_scratch=True, task="x"))
    plan = plan_training(FinetuneConfig(from_scratch=True, task="x"), task, spec.tokenizer, spec.config, 100)
    assert plan["learning_rate"] == 3e-5 and plan["batch_size"] == 32 and plan["epochs"] == 4
    assert plan["steps_per_epoch"] == 4 and plan["total_steps"] == 16 and plan["warmup_steps"] == 16  # capped
    assert plan["max_length"] == 70 - 6 + 1 + 2 and plan["eval_steps"] == 400
    capped = plan_training(FinetuneConfig(from_scratch=True, task="x", max_steps=5, max_length=20), task,
                           spec.tokenizer, spec.config, 100)
    assert capped["total_steps"] == 5 and capped["max_length"] == 20
    with pytest.raises(RandomMaskError, match="positions"):
        plan_training(FinetuneConfig(from_scratch=True, task="x", max_length=513), task, spec.tokenizer,
                      spec.config, 100)


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = [lr_factor(s, 4, 10) for s in range(10)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0
    assert all(a > b for a, b in zip(f[4:], f[5:], strict=False)) and f[-1] == pytest.approx(1 / 6)
    assert lr_factor(10, 4, 10) == 0.0


# ------------------------------------------------------------------------------------------ bad input
def _scratch(task: Path, tmp_path: Path) -> list[str]:
    return ["finetune", str(task), "--from-scratch", "--out", str(tmp_path / "out"), *FAST]


def test_task_folder_without_csv(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(_scratch(tmp_path / "empty", tmp_path)) == 2
    assert "no train.csv, dev.csv or test.csv" in one_error_line(capsys)


def test_wrong_header(toy_task, tmp_path, capsys):
    folder = write_task(tmp_path / "t")
    (folder / "dev.csv").write_text("seq,class\nACGT,0\n")
    assert main(_scratch(folder, tmp_path)) == 2
    line = one_error_line(capsys)
    assert "dev.csv, line 1" in line and "header must be 'sequence,label'" in line


def test_label_not_an_integer(tmp_path, capsys):
    folder = write_task(tmp_path / "t")
    text = (folder / "train.csv").read_text().splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",yes"
    (folder / "train.csv").write_text("\n".join(text) + "\n")
    assert main(_scratch(folder, tmp_path)) == 2
    line = one_error_line(capsys)
    assert "train.csv, line 4" in line and "'yes' is not an integer" in line


def test_test_class_missing_from_training(tmp_path, capsys):
    folder = write_task(tmp_path / "t")
    (folder / "test.csv").write_text("sequence,label\nACGTACGTAC,0\nACGTACGTAC,2\n")
    assert main(_scratch(folder, tmp_path)) == 2
    line = one_error_line(capsys)
    assert "test.csv, line 3" in line and "class 2 does not occur in the training data" in line


def test_model_folder_that_is_not_a_run(toy_task, tmp_path, capsys):
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "weights.bin").write_bytes(b"\0" * 16)
    assert main(["finetune", str(tmp_path / "notarun"), str(toy_task), *FAST]) == 2
    assert "not a randommask run folder" in one_error_line(capsys)
    assert main(["finetune", str(tmp_path / "missing"), str(toy_task), *FAST]) == 2
    assert "model folder not found" in one_error_line(capsys)


def test_missing_arguments_and_conflicts(toy_task, tmp_path, capsys):
    assert main(["finetune", "--task", str(toy_task)]) == 2
    assert "--from-scratch" in one_error_line(capsys)
    assert main(["finetune", str(tmp_path), str(toy_task), "--preset", "small"]) == 2
    assert "--preset is only for --from-scratch" in one_error_line(capsys)
    assert main(["finetune", str(toy_task), "--from-scratch", "--tokenizer-stride", "4"]) == 2
    assert "stride must be 1" in one_error_line(capsys)
    assert main(["finetune", str(toy_task), "--from-scratch", "--dropout", "1.5"]) == 2
    assert "dropout must be in [0, 1), got 1.5" in one_error_line(capsys)
    assert main(["finetune", str(toy_task), "--from-scratch", "--patience-from-mcc", "1"]) == 2
    assert "patience_from_mcc must be in [-1, 1) (an MCC), got 1.0" in one_error_line(capsys)
