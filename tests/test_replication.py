"""The replication study: its units, the long-window tail, fine-tuning from a checkpoint until a plateau, and a
report that merges whatever has finished."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from randommask import checkpoint as ckpt
from randommask import replication
from randommask.errors import RandomMaskError
from randommask.masking import MaskingConfig, phase_starts, span_widths
from randommask.replication_report import holm, paired_tasks, run_means, runs_compared, t_interval, write_report
from randommask.study import PRESETS
from realdata import GENOME, GUE


def tiny_preset(**over) -> dict:
    p = dict(PRESETS["replication-smoke"])
    p.update(steps=6, batch_size=4, max_tokens=32, long_max_tokens=64, long_every=3, log_interval=1,
             eval_interval=3, tasks=["prom/prom_core_all", "tf/0"], emp_tasks=[])
    p.update(over)
    return p


# ------------------------------------------------------------------------------------------ masking, batches
def test_no_curriculum_uses_the_last_phase_from_step_0():
    curriculum = MaskingConfig(strategy="randommask", total_steps=100)
    flat = MaskingConfig(strategy="randommask", total_steps=100, curriculum=False)
    assert span_widths(flat, 0) == span_widths(curriculum, 99) == [6, 8, 10, 12, 14]
    assert span_widths(curriculum, 0) == [6]
    assert phase_starts(flat) == [0]


@pytest.mark.parametrize("placement", [{"long_every": 3}, {"long_fraction": 0.25}])
def test_long_steps_hold_longer_windows_and_the_same_tokens(tmp_path, placement):
    from randommask.genome import GenomeStore, SamplerConfig, WindowSampler, prepare
    from randommask.pretrain import MaskedBatches, load_config, long_shape, long_step
    from randommask.tokenizers import KmerTokenizer

    prepare([GENOME], tmp_path / "store", progress=False)
    store = GenomeStore.open(tmp_path / "store")
    cfg = load_config({"out_dir": str(tmp_path / "run"), "steps": 8, "batch_size": 4, "data": {
        "store": str(tmp_path / "store"), "max_tokens": 32, "long_max_tokens": 64, "short_prob": 0.0, **placement}})
    long_steps = [s for s in range(8) if long_step(cfg, s) is not None]
    kind = "long" if "long_every" in placement else "tail"
    assert all(long_step(cfg, s)[0] == kind for s in long_steps)
    # Interleaved: steps 2 and 5 (every third); the tail: the last quarter, steps 6 and 7.
    assert long_steps == ([2, 5] if "long_every" in placement else [6, 7])
    assert long_shape(cfg, kind) == (2, 64)  # 2 windows of 64 tokens = 4 windows of 32
    tok = KmerTokenizer.from_name("kmer6")
    short = WindowSampler(store, SamplerConfig(tok.bases_for_tokens(30), short_prob=0.0, seed=0), "train")
    long = WindowSampler(store, SamplerConfig(tok.bases_for_tokens(62), short_prob=0.0, seed=0), "train")
    batches = MaskedBatches(short, tok, cfg.masking, cfg, 0, 0, {kind: long})
    assert tuple(batches.batch(0)["input_ids"].shape) == (4, 32)
    for nth, step in enumerate(long_steps):
        b = batches.batch(step)
        assert tuple(b["input_ids"].shape) == (2, 64) and int(b["attention_mask"].sum()) == 128
        assert torch.equal(b["input_ids"], batches.batch(step)["input_ids"])  # a function of the step
        # The n-th long step reads windows 2n and 2n + 1 of the long stream: its masked labels are their tokens.
        enc = tok.encode_batch([long.draw(long.global_index(2 * nth + j)) for j in range(2)], max_length=64,
                               truncation=True)
        labels = b["labels"].numpy()
        assert (labels != -100).sum() > 0
        assert np.array_equal(labels[labels != -100], enc.ids[labels != -100])


def test_interleaved_long_steps_and_a_tail_of_another_length():
    from randommask.pretrain import load_config, long_kinds, long_shape, long_step

    cfg = load_config({"steps": 20, "batch_size": 8, "data": {"store": "x", "max_tokens": 32, "long_max_tokens": 64,
                                                             "long_every": 4, "long_fraction": 0.25,
                                                             "tail_max_tokens": 128}})
    where = [long_step(cfg, s) for s in range(20)]
    # Steps 3, 7, 11 are interleaved long steps; 15..19 the tail (step 15 would have been a long one too).
    assert [s for s, w in enumerate(where) if w and w[0] == "long"] == [3, 7, 11]
    assert [w for w in where[15:]] == [("tail", n) for n in range(5)]
    assert long_kinds(cfg) == ["long", "tail"]
    assert long_shape(cfg, "long") == (4, 64) and long_shape(cfg, "tail") == (2, 128)


def test_long_steps_are_checked():
    from randommask.pretrain import load_config

    with pytest.raises(RandomMaskError, match="must exceed"):
        load_config({"data": {"store": "x", "max_tokens": 32, "long_max_tokens": 32, "long_every": 4}})
    with pytest.raises(RandomMaskError, match="tail's windows"):
        load_config({"data": {"store": "x", "max_tokens": 32, "long_fraction": 0.1}})
    with pytest.raises(RandomMaskError, match="set data.long_fraction"):
        load_config({"data": {"store": "x", "max_tokens": 32, "tail_max_tokens": 512}})


# ------------------------------------------------------------------------------------------ the plan
def test_plan_fine_tunes_the_main_arms_at_thirds_with_more_seeds_at_the_end(tmp_path):
    p = PRESETS["cpu-replication"]
    plan = replication.finetune_plan(p, tmp_path)
    main = [u for u in plan if u["arm"] == "ov-dnabert" and u["pretrain_seed"] == 1 and not u.get("emp")
            and not u.get("long")]
    assert [u["step"] for u in main] == [7000, 14000, 21000]
    assert [u["seeds"] for u in main] == [3, 3, 5]
    assert main[0]["model"] == tmp_path / "pretrain" / "ov-dnabert.s1" / "checkpoints" / "step-7000.pt"
    ablation = [u for u in plan if u["arm"] == "rm-phases-10"]
    assert [(u["step"], u["seeds"], u["pretrain_seed"]) for u in ablation] == [(21000, 3, 0)]
    assert len(main[0]["tasks"]) == 9
    assert {u["arm"] for u in plan if u.get("emp")} == {"ov-dnabert", "ov-randommask", "scratch"}
    # 7000 is a saved step: checkpoints every twelfth of the run.
    assert 7000 % max(1, p["steps"] // 12) == 0 and 14000 % (p["steps"] // 12) == 0


# ------------------------------------------------------------------------------------------ units
@pytest.fixture(scope="module")
def unit(tmp_path_factory) -> tuple[dict, Path, dict]:
    root = tmp_path_factory.mktemp("rep")
    p = tiny_preset()
    arm = replication.arms_of(p)["ov-dnabert"]
    data = {"fasta": [str(GENOME)]}
    run = replication.pretrain_unit(p, arm, 0, root, data, "cpu", False)
    return p, root, {"run": run, "arm": arm, "data": data}


def test_pretrain_unit_keeps_the_thirds_and_is_skipped_when_done(unit):
    p, root, u = unit
    steps = sorted(int(x.stem.split("-")[1]) for x in ckpt.list_checkpoints(u["run"]))
    assert {2, 4, 6} <= set(steps)
    before = (u["run"] / "metrics.jsonl").read_text()
    replication.pretrain_unit(p, u["arm"], 0, root, u["data"], "cpu", False)  # finished: nothing runs
    assert (u["run"] / "metrics.jsonl").read_text() == before


def test_pretrain_unit_refuses_other_settings_on_resume(unit, tmp_path):
    p, root, u = unit
    import shutil

    copy = tmp_path / "pretrain" / "ov-dnabert.s0"
    shutil.copytree(u["run"], copy)
    for late in ("step-4.pt", "step-5.pt", "step-6.pt"):
        (copy / "checkpoints" / late).unlink(missing_ok=True)
    (copy / "checkpoints" / "latest").write_text("step-3.pt" if (copy / "checkpoints" / "step-3.pt").exists()
                                                 else "step-2.pt")
    with pytest.raises(RandomMaskError, match="optim.lr"):
        replication.pretrain_unit({**p, "lr": p["lr"] * 2}, u["arm"], 0, tmp_path, u["data"], "cpu", False)


def test_finetune_from_a_checkpoint_file_stops_at_a_plateau_and_scores_all_of_dev(unit, tmp_path):
    from randommask.finetune import encode_split, finetune, load_finetune_config, score_encoded
    from randommask.model import BertForSequenceClassification, ModelConfig
    from randommask.tasks import load_task

    p, root, u = unit
    point = u["run"] / "checkpoints" / "step-2.pt"
    out = tmp_path / "ft"
    res = finetune(load_finetune_config({
        "model": str(point), "task": str(GUE / "prom" / "prom_core_all"), "out_dir": str(out), "progress": False,
        "learning_rate": 1e-12, "warmup_steps": 0, "max_steps": 40, "eval_steps": 2, "patience": 2,
        "select_dev_examples": 50, "device": "cpu"}))
    assert res["model"]["step"] == 2 and res["model"]["checkpoint"] == "step-2.pt"
    # A learning rate of 1e-12 changes nothing: dev MCC never improves after the first evaluation, so two more
    # evaluations end the run (steps 2, 4, 6) instead of the 40 planned.
    assert res["stopped_at"] == 6 and res["steps_run"] == 6
    # With min_steps, patience cannot end the run before that step (evaluations at 2, 4, ..., 10).
    late = finetune(load_finetune_config({
        "model": str(point), "task": str(GUE / "prom" / "prom_core_all"), "out_dir": str(tmp_path / "late"),
        "progress": False, "learning_rate": 1e-12, "warmup_steps": 0, "max_steps": 40, "eval_steps": 2,
        "patience": 2, "min_steps": 10, "select_dev_examples": 50, "device": "cpu", "save_model": False}))
    assert late["stopped_at"] == 10 and late["best"]["step"] == 2
    # With patience_from_mcc, evaluations count towards the plateau only once the best dev MCC has passed it: a
    # run that never takes off (lr 1e-12, best dev MCC below 0.99) is not stopped, whatever the patience; a
    # threshold already passed at the first evaluation stops it where plain patience does.
    def waiting(threshold: float) -> dict:
        return finetune(load_finetune_config({
            "model": str(point), "task": str(GUE / "prom" / "prom_core_all"), "progress": False,
            "out_dir": str(tmp_path / f"wait{threshold}"), "learning_rate": 1e-12, "warmup_steps": 0, "max_steps": 16,
            "eval_steps": 2, "patience": 2, "patience_from_mcc": threshold, "select_dev_examples": 50,
            "device": "cpu", "save_model": False}))
    never = waiting(0.99)
    assert never["stopped_at"] is None and never["steps_run"] == 16
    assert never["best"]["dev_selection"]["mcc"] < 0.99  # the score the rule reads: the threshold was never passed
    assert waiting(-1.0)["stopped_at"] == 6
    assert res["best"]["selection_rows"] == 50
    # The reported dev score is the best model on every dev row, not on the 50 used for selection.
    state = ckpt.load_checkpoint(next((out / "checkpoints").glob("step-*.pt")))
    model = BertForSequenceClassification(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    task = load_task(GUE / "prom" / "prom_core_all")
    tok = ckpt.tokenizer_from_state(out, state)
    full = score_encoded(model, encode_split(tok, task.dev, res["hparams"]["max_length"]), 64, torch.device("cpu"),
                         lambda: torch.autocast("cpu", enabled=False))
    assert res["sizes"]["dev"] == len(task.dev) > 50
    assert full["mcc"] == pytest.approx(res["best"]["dev"]["mcc"], abs=1e-9)
    assert full["loss"] == pytest.approx(res["best"]["dev"]["loss"], rel=1e-5)


def test_fine_tuning_units_resume_and_skip(unit, capsys):
    p, root, u = unit
    p = {**p, "tasks": ["prom/prom_core_all"], "seeds": 3, "end_seeds": 3, "ft_max_steps": 4, "ft_eval_steps": 2,
         "ft_epochs": 7}
    plan = [x for x in replication.finetune_plan(p, root) if x["arm"] == "ov-dnabert" and x["step"] == 2
            and x["pretrain_seed"] == 0]
    assert len(plan) == 1
    replication.finetune_unit(p, plan[0], str(GUE), "cpu", False)
    results = sorted(Path(plan[0]["folder"]).glob("runs/**/results.json"))
    assert len(results) == 3
    # The study's epoch limit replaces the task group's DNABERT-2 default (CPD's 4).
    assert {json.loads(r.read_text())["hparams"]["epochs"] for r in results} == {7.0}
    stamp = [r.stat().st_mtime_ns for r in results]
    capsys.readouterr()
    replication.finetune_unit(p, plan[0], str(GUE), "cpu", False)
    assert "3 already finished, 0 to run" in capsys.readouterr().out
    assert [r.stat().st_mtime_ns for r in results] == stamp


def test_fine_tuning_runs_seed_by_seed_and_takes_a_seed_range(unit, capsys):
    p, root, u = unit
    p = {**p, "tasks": ["prom/prom_core_all", "tf/0"], "seeds": 3, "end_seeds": 3, "ft_max_steps": 2,
         "ft_eval_steps": 2}
    plan = [x for x in replication.finetune_plan(p, root) if x["arm"] == "ov-dnabert" and x["step"] == 4
            and x["pretrain_seed"] == 0]
    folder = Path(plan[0]["folder"])

    def finished() -> list[tuple[str, int]]:  # (task, seed) in the order the runs finished
        runs = sorted(folder.glob("runs/**/results.json"), key=lambda r: r.stat().st_mtime_ns)
        return [(json.loads(r.read_text())["task"], json.loads(r.read_text())["seed"]) for r in runs]

    replication.finetune_unit(p, plan[0], str(GUE), "cpu", False, seeds=range(1, 2))
    assert finished() == [("prom/prom_core_all", 1), ("tf/0", 1)]
    replication.finetune_unit(p, plan[0], str(GUE), "cpu", False, seeds=range(0, 9))  # clipped to the unit's 3
    assert [s for _, s in finished()] == [1, 1, 0, 0, 2, 2]  # every task at seed 0 before any at seed 2
    assert "6 already finished, 0 to run" in capsys.readouterr().out  # the unit's tables over all its seeds


def test_run_fine_tunes_only_the_asked_unit_and_seeds(unit, tmp_path):
    import shutil

    p, root, u = unit
    p = {**p, "tasks": ["tf/0"], "ft_max_steps": 2, "ft_eval_steps": 2}
    shutil.copytree(u["run"], tmp_path / "pretrain" / "ov-dnabert.s0")
    replication.run(p, tmp_path, arm="ov-dnabert", pretrain_seed=0, stage="finetune", report_only=False,
                    data=u["data"], gue=str(GUE), device="cpu", progress=False, ft_unit="step-4",
                    ft_seeds=range(1, 2))
    done = sorted(r.relative_to(tmp_path).as_posix() for r in tmp_path.glob("finetune/**/seed-*/results.json"))
    assert done == ["finetune/ov-dnabert.s0/step-4/runs/tf/0/seed-1/results.json"]
    assert (tmp_path / "report.md").exists()
    with pytest.raises(RandomMaskError, match="no fine-tuning unit is named 'step-5'; the names are .*step-2, step-4"):
        replication.run(p, tmp_path, arm="ov-dnabert", pretrain_seed=0, stage="finetune", report_only=False,
                        data=u["data"], gue=str(GUE), device="cpu", progress=False, ft_unit="step-5")


def test_a_unit_whose_fine_tunes_have_all_finished_is_not_pre_trained_again(unit, tmp_path, capsys):
    """On a new machine the checkpoints are gone: a finished unit must keep its loss curve, not rerun (on
    another CPU, another model); one fine-tune missing and it is pre-trained again."""
    import shutil

    p, root, u = unit
    p = {**p, "tasks": ["tf/0"], "seeds": 1, "end_seeds": 1, "long_check_tasks": []}
    run = tmp_path / "pretrain" / "ov-dnabert.s0"
    shutil.copytree(u["run"], run)
    shutil.rmtree(run / "checkpoints")
    (run / "metrics.jsonl").write_text('{"step": 6, "loss": 1.0}\n')  # stands for a synced curve
    own = [x for x in replication.finetune_plan(p, tmp_path) if x["arm"] == "ov-dnabert" and x["pretrain_seed"] == 0]
    assert [x["step"] for x in own] == [2, 4, 6]
    for x in own:
        (Path(x["folder"]) / "runs" / "tf" / "0" / "seed-0").mkdir(parents=True)
        (Path(x["folder"]) / "runs" / "tf" / "0" / "seed-0" / "results.json").write_text(
            json.dumps({"task": "tf/0", "seed": 0, "test": {"mcc": 0.5}, "best": {"step": 2}}))
    kw = {"arm": "ov-dnabert", "pretrain_seed": 0, "report_only": False, "data": u["data"], "gue": str(GUE),
          "device": "cpu", "progress": False}
    replication.run(p, tmp_path, stage="pretrain", **kw)
    assert "ov-dnabert.s0: every fine-tune has finished; not pre-trained again" in capsys.readouterr().out
    assert (run / "metrics.jsonl").read_text() == '{"step": 6, "loss": 1.0}\n'
    assert not (run / "checkpoints").exists()
    (Path(own[0]["folder"]) / "runs" / "tf" / "0" / "seed-0" / "results.json").unlink()
    replication.run(p, tmp_path, stage="pretrain", **kw)
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(run))["step"] == 6
    def losses(path: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in map(json.loads, path.read_text().splitlines())]

    assert losses(run / "metrics.jsonl") == losses(u["run"] / "metrics.jsonl")  # the run again, from step 0


def test_study_takes_a_fine_tuning_unit_and_seed_range():
    from randommask.study import StudyConfig

    assert StudyConfig(ft_seeds="0-2").seed_range() == range(0, 3)
    assert StudyConfig(ft_seeds="4").seed_range() == range(4, 5) and StudyConfig().seed_range() is None
    for bad in ("2-1", "a", "1-", "-1"):
        with pytest.raises(RandomMaskError, match="--ft-seeds takes A-B or A"):
            StudyConfig(ft_seeds=bad, preset="cpu-replication", gue="GUE", store="s").resolved()


def test_more_pre_training_seeds_of_the_main_arms(tmp_path):
    from randommask.study import StudyConfig

    base = {"preset": "cpu-replication", "gue": "GUE", "store": "s"}
    assert StudyConfig(**base).resolved()["main_seeds"] == [0, 1]
    p = StudyConfig(**base, main_seeds=3).resolved()
    assert p["main_seeds"] == [0, 1, 2]
    units = {(u["arm"], u["pretrain_seed"]) for u in replication.finetune_plan(p, tmp_path)}
    assert ("ov-randommask", 2) in units and ("ov-dnabert", 2) in units and ("ov-bert", 1) not in units
    # A seed the arm does not have would pre-train a unit no fine-tune or report ever reads: refused.
    with pytest.raises(RandomMaskError, match="ov-dnabert has pre-training seeds 0, 1, not 2 .--main-seeds 3"):
        StudyConfig(**base, arm="ov-dnabert", pretrain_seed=2).resolved()
    with pytest.raises(RandomMaskError, match="ov-bert has pre-training seeds 0, not 1$"):
        StudyConfig(**base, main_seeds=3, arm="ov-bert", pretrain_seed=1).resolved()
    assert StudyConfig(**base, main_seeds=3, arm="ov-dnabert", pretrain_seed=2).resolved()["main_seeds"][-1] == 2
    with pytest.raises(RandomMaskError, match="--main-seeds is for the replication presets"):
        StudyConfig(preset="cpu-smoke", gue="GUE", store="s", main_seeds=3).resolved()


def test_a_study_folder_with_more_main_seeds_is_reported_whole(tmp_path, capsys):
    """A folder where --main-seeds 3 pre-trained `.s2` units: a later call without the flag (the report, a resume)
    keeps them, instead of a report that silently drops finished runs; an explicit flag still decides."""
    from randommask.study import StudyConfig, run_study

    base = {"preset": "cpu-replication", "gue": "GUE", "store": "s", "out_dir": str(tmp_path)}
    assert StudyConfig(**base).resolved()["main_seeds"] == [0, 1]  # an empty folder: the preset's
    for name in ("ov-dnabert.s0", "ov-randommask.s2.emp", "ov-bert.s4", "ov-dnabert.s10x"):
        (tmp_path / "pretrain" / name).mkdir(parents=True)
    assert StudyConfig(**base).resolved()["main_seeds"] == [0, 1]  # an EMP continuation or ablation: no seed
    (tmp_path / "pretrain" / "ov-randommask.s2").mkdir()
    assert StudyConfig(**base).folder_main_seeds() == 3
    assert StudyConfig(**base).resolved()["main_seeds"] == [0, 1, 2]
    assert StudyConfig(**base, main_seeds=2).resolved()["main_seeds"] == [0, 1]
    assert StudyConfig(**base, arm="ov-dnabert", pretrain_seed=2).resolved()["main_seeds"] == [0, 1, 2]
    run_study(StudyConfig(**base, report_only=True))
    assert f"{tmp_path} holds pre-training seeds 0-2 of the main arms" in capsys.readouterr().out
    report = (tmp_path / "report.md").read_text()
    assert "ov-dnabert.s2: not started" in report and "| pretrain/ov-randommask.s2 | not started |" in report


def test_study_cli_refuses_a_bad_seed_range_in_one_line(tmp_path, capsys):
    from randommask.cli import main

    assert main(["study", "--preset", "cpu-replication", "--ft-seeds", "3-1", "--store", str(tmp_path),
                 "--gue", str(GUE), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ft-seeds takes A-B or A" in err[0] and "'3-1'" in err[0]


# ------------------------------------------------------------------------------------------ EMP continuation
def test_emp_continuation_starts_from_the_end_checkpoint_on_long_windows(unit, tmp_path, capsys):
    import shutil

    from randommask.checkpoint import open_run

    p0, _, u = unit
    p = {**p0, "emp_tasks": ["EMP/H3"], "emp_steps": 3, "emp_batch_size": 2, "emp_max_tokens": 64, "emp_lr": 1e-12,
         "emp_warmup_steps": 0}
    arms = replication.arms_of(p)
    assert replication.emp_pretrain_unit(p, arms["ov-dnabert"], 0, tmp_path, u["data"], "cpu", False) is None
    assert "the EMP continuation waits" in capsys.readouterr().out  # no main unit yet: nothing runs
    shutil.copytree(u["run"], tmp_path / "pretrain" / "ov-dnabert.s0")
    run = replication.emp_pretrain_unit(p, arms["ov-dnabert"], 0, tmp_path, u["data"], "cpu", False)
    assert run == tmp_path / "pretrain" / "ov-dnabert.s0.emp"
    cont, source = open_run(run), open_run(u["run"] / "checkpoints" / f"step-{p['steps']}.pt")
    assert cont.step == 3 and cont.config["batch_size"] == 2 and cont.config["data"]["max_tokens"] == 64
    assert cont.config["optim"]["lr"] == 1e-12 and cont.config["masking"]["strategy"] == "dnabert"
    # At a learning rate of 1e-12 the continued weights are the main unit's end weights: it started from them.
    for name, w in source.model_state.items():
        assert torch.allclose(cont.model_state[name], w, atol=1e-7), name
    # The EMP fine-tunes start from the continuation; the short tasks from the main unit's checkpoints.
    plan = replication.finetune_plan(p, tmp_path)
    emp = [x for x in plan if x.get("emp") and x["arm"] == "ov-dnabert" and x["pretrain_seed"] == 0]
    assert [x["model"] for x in emp] == [run / "checkpoints" / "step-3.pt"]
    assert all(f"pretrain/ov-dnabert.s{x['pretrain_seed']}/" in str(x["model"]) for x in plan
               if x["arm"] == "ov-dnabert" and not x.get("emp"))
    assert "ov-dnabert.s0.emp" in replication.pretrain_units(p, tmp_path)
    before = (run / "metrics.jsonl").read_text()
    replication.emp_pretrain_unit(p, arms["ov-dnabert"], 0, tmp_path, u["data"], "cpu", False)  # done: skipped
    assert (run / "metrics.jsonl").read_text() == before
    write_report(p, tmp_path, "abc", arms, replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()
    assert "- ov-dnabert.s0.emp: " in report and "on 64-token windows at step 3 of 3" in report
    assert "ov-dnabert.s0.emp: training loss" not in report  # not a regime line: not a main unit


def test_emp_continuation_keeps_each_arm_s_end_masking():
    p = {**PRESETS["cpu-replication"]}
    arms = replication.arms_of(p)
    cfg = {a: replication.emp_pretrain_config(p, arms[a], 1, Path("out/pretrain/x.emp"), {"store": "s"}, "cpu",
                                              False) for a in ("ov-dnabert", "ov-randommask")}
    assert cfg["ov-dnabert"]["masking"] == {"strategy": "dnabert"}
    # RandomMask continues at its last phase (the widths it ended the main run with), not from its first.
    assert cfg["ov-randommask"]["masking"] == {"strategy": "randommask", "curriculum": False}
    assert arms["ov-randommask"].masking == {"strategy": "randommask"}  # the arm itself is untouched
    for c in cfg.values():
        assert c["seed"] == 1 and c["data"]["max_tokens"] == 512
        assert c["batch_size"] * c["data"]["max_tokens"] == p["batch_size"] * p["max_tokens"]  # tokens a step
    assert not replication.has_emp_continuation(p, "ov-bert")  # only the main arms are fine-tuned on EMP


# ------------------------------------------------------------------------------------------ statistics, report
def test_holm_adjustment_on_a_known_case():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([0.02, math.nan])[1]) and holm([0.02, math.nan])[0] == pytest.approx(0.02)


def test_t_interval_and_paired_tasks_against_scipy():
    x = [0.5, 0.55, 0.61, 0.52]
    mean, half = t_interval(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(np.mean(x)) and half == pytest.approx((hi - lo) / 2)
    a = {"t1": [0.6, 0.62], "t2": [0.5, 0.52], "t3": [0.7, 0.69], "t4": [0.4, 0.45], "t5": [0.3, 0.31]}
    b = {"t1": [0.58, 0.6], "t2": [0.5, 0.49], "t3": [0.65, 0.66], "t4": [0.41, 0.42], "t5": [0.2, 0.22]}
    r = paired_tasks(a, b)
    diffs = [np.mean(a[t]) - np.mean(b[t]) for t in sorted(a)]
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    assert r["mean_diff"] == pytest.approx(np.mean(diffs)) and r["wins"] == 5


def test_runs_compared_takes_each_pre_training_run_as_one_observation():
    rng = np.random.default_rng(1)
    tasks = ["t1", "t2", "t3"]
    recs = [{"arm": arm, "pretrain_seed": sd, "step": 9, "task": t, "mcc": float(rng.uniform(0.3, 0.7))}
            for arm in ("ov-dnabert", "ov-randommask") for sd in (0, 1) for t in tasks for _ in range(3)]
    recs.append({"arm": "ov-dnabert", "pretrain_seed": 1, "step": 9, "task": "t4", "mcc": 0.9})  # not in every run
    recs.append({"arm": "ov-dnabert", "pretrain_seed": 0, "step": 3, "task": "t1", "mcc": 0.0})  # another point
    r = runs_compared(run_means(recs, 9))

    def unit(arm: str, sd: int) -> float:  # the slow obvious way: mean over tasks of the mean over seeds
        return float(np.mean([np.mean([x["mcc"] for x in recs if x["arm"] == arm and x["pretrain_seed"] == sd
                                       and x["step"] == 9 and x["task"] == t]) for t in tasks]))

    a = [unit("ov-randommask", sd) for sd in (0, 1)]
    b = [unit("ov-dnabert", sd) for sd in (0, 1)]
    test = stats.ttest_ind(a, b, equal_var=True)
    lo, hi = test.confidence_interval(0.95)
    assert r["tasks"] == 3 and r["df"] == 2
    assert r["mean_diff"] == pytest.approx(np.mean(a) - np.mean(b)) and r["p"] == pytest.approx(test.pvalue)
    assert r["ci"] == pytest.approx((hi - lo) / 2)
    # One run of an arm: no run-to-run variance to weigh the difference against.
    assert runs_compared(run_means([x for x in recs if x["pretrain_seed"] == 0], 9)) is None


def _fake_run(folder: Path, task: str, seed: int, mcc: float, best: int = 4, steps: int = 8,
              stopped: int | None = None) -> None:
    run = folder / "runs" / task / f"seed-{seed}"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"task": task, "seed": seed, "test": {"mcc": mcc},
                                                  "best": {"step": best}, "steps_run": steps, "stopped_at": stopped,
                                                  "wall_time_s": 1.0}))


def test_report_counts_the_fine_tunes_that_did_not_plateau(tmp_path):
    p = tiny_preset(arms=["ov-dnabert", "ov-randommask"], tasks=["prom/prom_core_all", "tf/0"])
    plan = replication.finetune_plan(p, tmp_path)
    end = next(u["folder"] for u in plan if u["arm"] == "ov-dnabert" and u["step"] == p["steps"]
               and u["pretrain_seed"] == 0 and not u.get("long"))
    _fake_run(end, "tf/0", 0, 0.5, best=400, steps=800, stopped=800)  # patience ran out: the plateau
    _fake_run(end, "tf/0", 1, 0.5, best=600, steps=1000)  # the cap first, best earlier
    _fake_run(end, "prom/prom_core_all", 0, 0.5, best=1000, steps=1000)  # the cap at its best: still rising
    _fake_run(end, "prom/prom_core_all", 1, 0.5, best=1000, steps=1000)
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()
    assert "How the 4 finished fine-tunes ended" in report and "**1 at their dev plateau**" in report
    assert "**3 at a step or epoch limit before it** (2 of them with their best dev MCC at the last" in report
    assert "| prom/prom_core_all | 0 | 2 | 2 |" in report and "| tf/0 | 1 | 1 | 0 |" in report
    assert "never left chance" not in report
    _fake_run(end, "tf/0", 2, -0.002, best=300, steps=1000, stopped=1000)  # dev MCC stayed at 0: a plateau
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()
    assert ("**1 fine-tune(s) never left chance** (test MCC below 0.05" in report
            and f"ov-dnabert.s0 step {p['steps']} tf/0 seed 2 (test MCC -0.2, stopped at step 1000)." in report)


def test_report_merges_what_finished_and_marks_the_rest(tmp_path):
    p = tiny_preset(arms=["ov-dnabert", "ov-randommask", "rm-phases-2"], seeds=3, end_seeds=3,
                    tasks=["prom/prom_core_all", "tf/0", "mouse/0"])
    rng = np.random.default_rng(0)
    truth: dict[tuple[str, str], list[float]] = {}
    for arm, shift in (("ov-dnabert", 0.0), ("ov-randommask", 0.05)):
        for sd in (0, 1):
            for step in replication.points(p, arm, tmp_path):
                folder = tmp_path / "finetune" / f"{arm}.s{sd}" / f"step-{step}"
                for i, task in enumerate(p["tasks"]):
                    for seed in range(3):
                        mcc = 0.4 + 0.1 * i + shift + 0.01 * rng.standard_normal()
                        _fake_run(folder, task, seed, mcc)
                        if step == p["steps"]:
                            truth.setdefault((arm, task), []).append(mcc)
                            truth.setdefault((arm, sd, task), []).append(mcc)
    # A unit half done, as when another arm's job is still fine-tuning beside this one.
    _fake_run(tmp_path / "finetune" / "rm-phases-2.s0" / f"step-{p['steps']}", "tf/0", 0, 0.5)
    run = tmp_path / "pretrain" / "ov-dnabert.s0"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": l}) + "\n"
                                               for s, l in ((1, 8.0), (2, 3.0), (3, 1.9), (6, 1.5))))
    (run / "config.yaml").write_text("steps: 6\nbatch_size: 4\ndata: {max_tokens: 32}\n")
    summary = write_report(p, tmp_path, "abc123", replication.arms_of(p), replication.pretrain_units(p, tmp_path),
                           replication.finetune_plan(p, tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "commit `abc123`" in report
    assert "ov-dnabert.s0: training loss below 2 at step 3, held-out loss at step never (so far) (half: 3)" \
        in report and "**yes**" in report
    assert "1 of 9 (unfinished)" in report  # the half-done ablation unit
    assert "pretrain/ov-randommask.s0 | not started" in report
    # The end-point comparison: mean per-task difference, and Welch per task, as scipy computes them.
    diffs = [np.mean(truth[("ov-randommask", t)]) - np.mean(truth[("ov-dnabert", t)]) for t in sorted(p["tasks"])]
    assert f"mean difference **{100 * np.mean(diffs):+.2f} MCC**" in report
    pw = stats.ttest_ind(truth[("ov-randommask", "tf/0")], truth[("ov-dnabert", "tf/0")], equal_var=False).pvalue
    assert f"| {pw:.2g} |" in report
    # Both pre-training runs of each arm, and the arms compared with the runs as the unit.
    assert "| task | ov-dnabert.s0 | ov-dnabert.s1 | ov-randommask.s0 | ov-randommask.s1 |" in report
    rm, dn = ([np.mean([np.mean(truth[(arm, sd, t)]) for t in p["tasks"]]) for sd in (0, 1)]
              for arm in ("ov-randommask", "ov-dnabert"))
    lo, hi = stats.ttest_ind(rm, dn).confidence_interval(0.95)
    assert (f"RandomMask minus DNABERT masking {100 * (np.mean(rm) - np.mean(dn)):+.2f} MCC, 95% interval "
            f"{100 * lo:+.2f} to {100 * hi:+.2f}") in report
    assert "Between pre-training runs of one masking, paired by task: ov-dnabert.s1 minus ov-dnabert.s0" in report
    assert (tmp_path / "replication.png").exists()
    end = [c for c in summary["curve"]["ov-randommask"] if c[0] == p["steps"]][0]
    assert end[3] == 6  # 2 pre-training seeds x 3 fine-tuning seeds, every task finished


def test_report_checks_the_ranking_under_longer_fine_tuning(tmp_path):
    p = tiny_preset(arms=["ov-dnabert", "ov-randommask"], tasks=["prom/prom_core_all", "tf/0"],
                    long_check_tasks=["prom/prom_core_all", "tf/0"], main_seeds=[0, 1])
    plan = replication.finetune_plan(p, tmp_path)
    longer = {(u["arm"], u["pretrain_seed"]): u for u in plan if u.get("long")}
    # Planned on every pre-training run: a session continues only the runs its CPU reproduces.
    assert sorted(longer) == [("ov-dnabert", 0), ("ov-dnabert", 1), ("ov-randommask", 0), ("ov-randommask", 1)]
    assert all(u["step"] == p["steps"] and u["seeds"] == 1 and u["folder"].name == f"step-{p['steps']}-long"
               and u["folder"].parent.name == f"{arm}.s{sd}" for (arm, sd), u in longer.items())
    end = {(u["arm"], u["pretrain_seed"]): u["folder"] for u in plan if u["step"] == p["steps"]
           and not u.get("long") and not u.get("emp") and u["arm"] != "scratch"}
    # Seed 1, prom: RandomMask ahead in both; tf/0: ahead in the study's run, behind in the longer one.
    for task, (rm, dn, rm_long, dn_long) in {"prom/prom_core_all": (0.6, 0.5, 0.62, 0.55),
                                             "tf/0": (0.4, 0.3, 0.41, 0.45)}.items():
        _fake_run(end["ov-randommask", 1], task, 0, rm)
        _fake_run(end["ov-dnabert", 1], task, 0, dn)
        _fake_run(longer["ov-randommask", 1]["folder"], task, 0, rm_long)
        _fake_run(longer["ov-dnabert", 1]["folder"], task, 0, dn_long)
    # Seed 0: only RandomMask's longer run on prom has finished; seed 0's study runs are not there either.
    _fake_run(longer["ov-randommask", 0]["folder"], "prom/prom_core_all", 0, 0.7)
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()
    assert "| prom/prom_core_all | 1 | 60.0 (8) | 50.0 (8) | +10.0 | 62.0 (8) | 55.0 (8) | +7.0 | yes |" in report
    assert "| tf/0 | 1 | 40.0 (8) | 30.0 (8) | +10.0 | 41.0 (8) | 45.0 (8) | -4.0 | **no** |" in report
    assert "| prom/prom_core_all | 0 | - | - | - | 70.0 (8) | - | - | not finished |" in report
    section = report[report.index("Longer fine-tuning"):report.index("## Units")]
    assert "| tf/0 | 0 |" not in section  # nothing longer on that pair yet: no row
    assert "the same under the longer run on 1 of 2 (task, pre-training seed) pairs" in report
    # prom +10 and tf/0 +10 in the study's runs; +7 and -4 longer; gains +2, +5, +1, +15 (mean +5.75).
    assert ("RandomMask minus DNABERT masking is +10.00 MCC in the study's runs and +1.50 in the longer ones"
            in report)
    assert "the longer runs score +5.75 MCC against the study's on average (both arms; range +1.0 to +15.0)" in report
    # The longer runs are kept out of the study's own tables: the end point has one run per task and arm.
    assert "| prom/prom_core_all | 50.0 ± 0.0 (1) | 60.0 ± 0.0 (1) |" in report
    # One run a side: no Welch test, said so rather than printed as nan.
    assert "| tf/0 | 40.0 (1) | 30.0 (1) | +10.0 | - | - |" in report and "no Welch test" in report


def test_report_tables_the_emp_group_with_spread_and_the_group_mean(tmp_path):
    p = tiny_preset(arms=["ov-dnabert", "ov-randommask"], emp_tasks=["EMP/H3", "EMP/H4"], main_seeds=[0, 1])
    plan = replication.finetune_plan(p, tmp_path)
    emp = {(u["arm"], u["pretrain_seed"]): u["folder"] for u in plan if u.get("emp")}
    for seed, (h3, h4) in enumerate([(0.50, 0.30), (0.40, 0.20)]):
        _fake_run(emp["ov-dnabert", 1], "EMP/H3", seed, h3)
        _fake_run(emp["ov-dnabert", 1], "EMP/H4", seed, h4)
    _fake_run(emp["scratch", None], "EMP/H3", 0, 0.10)  # H4 not finished: no group mean for scratch
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()
    head = "| task | ov-dnabert.s0 | ov-dnabert.s1 | ov-randommask.s0 | ov-randommask.s1 | scratch |"
    table = report[report.index(head):].split("\n\n")[0].splitlines()
    assert table[2] == "| EMP/H3 | - | 45.0 ± 7.1 (2) | - | - | 10.0 ± 0.0 (1) |"
    assert table[3] == "| EMP/H4 | - | 25.0 ± 7.1 (2) | - | - | - |"
    # Per fine-tuning seed the group mean first (0.40, 0.30), then mean ± sd over the seeds.
    assert table[4] == "| mean over the 2 tasks | - | 35.0 ± 7.1 (2) | - | - | - |"


def test_report_compares_each_pre_training_run_with_the_from_scratch_floor(tmp_path):
    from scipy import stats

    tasks = ["prom/prom_core_all", "tf/0", "mouse/0"]
    p = tiny_preset(arms=["ov-dnabert", "ov-randommask"], tasks=tasks, emp_tasks=["EMP/H3", "EMP/H4", "EMP/H4ac"],
                    main_seeds=[0, 1])
    plan = replication.finetune_plan(p, tmp_path)
    unit = {(u["arm"], u["pretrain_seed"], bool(u.get("emp"))): u["folder"] for u in plan
            if u["step"] in (0, p["steps"]) and not u.get("long")}
    dn = {"prom/prom_core_all": [0.60, 0.62], "tf/0": [0.50], "mouse/0": [0.40, 0.44]}
    floor = {"prom/prom_core_all": [0.55], "tf/0": [0.52, 0.56], "mouse/0": [0.30]}
    for folder, by_task in ((unit["ov-dnabert", 1, False], dn), (unit["scratch", None, False], floor)):
        for task, mccs in by_task.items():
            for seed, mcc in enumerate(mccs):
                _fake_run(folder, task, seed, mcc)
    for task, (pre, none) in {"EMP/H3": (0.40, 0.55), "EMP/H4": (0.50, 0.70), "EMP/H4ac": (0.30, 0.47)}.items():
        _fake_run(unit["ov-randommask", 0, True], task, 0, pre)
        _fake_run(unit["scratch", None, True], task, 0, none)
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()
    # The slow way: per task the mean over seeds, the differences, a t interval and the signed-rank test.
    diffs = [np.mean(dn[t]) - np.mean(floor[t]) for t in sorted(tasks)]
    lo, hi = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    row = (f"| short tasks | ov-dnabert.s1 | 3 | 2 | {100 * np.mean(diffs):+.2f} | {100 * lo:+.2f} to "
           f"{100 * hi:+.2f} | {stats.wilcoxon(diffs).pvalue:.2g} |")
    assert row in report
    assert "| EMP | ov-randommask.s0 | 3 | 0 | -17.33 |" in report
    assert "ov-randommask.s0 -17.33 MCC over 3 tasks (below the floor)" in report  # -15, -20, -17: interval below 0
    assert "ov-dnabert.s1 +4.67 MCC over 3 tasks (not told from the floor)" in report  # +6, -4, +12
    assert "| short tasks | ov-randommask" not in report  # no run of that arm: no row


def test_report_weighs_each_ablation_against_its_seed_s_main_runs_and_the_spread_between_runs(tmp_path):
    tasks = ["prom/prom_core_all", "tf/0", "mouse/0"]
    p = tiny_preset(arms=["ov-dnabert", "ov-randommask", "ov-bert", "rm-phases-2"], tasks=tasks,
                    main_seeds=[0, 1, 2])
    plan = replication.finetune_plan(p, tmp_path)
    end = {(u["arm"], u["pretrain_seed"]): u["folder"] for u in plan
           if u["step"] in (0, p["steps"]) and not u.get("long") and not u.get("emp")}
    base = {"prom/prom_core_all": 0.60, "tf/0": 0.50, "mouse/0": 0.40}
    shift = {("ov-randommask", 0): 0.0, ("ov-randommask", 1): 0.02, ("ov-randommask", 2): 0.01,
             ("ov-dnabert", 0): 0.01, ("ov-dnabert", 1): -0.01, ("ov-dnabert", 2): -0.03, ("ov-bert", 0): -0.10,
             ("rm-phases-2", 0): -0.03, ("scratch", None): -0.05}
    wobble = {"prom/prom_core_all": 0.004, "tf/0": -0.002, "mouse/0": 0.0}  # per (run, task) noise, seeded below
    rng = np.random.default_rng(1)
    mccs: dict[tuple, dict[str, list[float]]] = {}
    for run, d in shift.items():
        for task in tasks:
            for seed in range(2):
                mcc = base[task] + d + wobble[task] * (1 + rng.random()) + 0.001 * seed
                _fake_run(end[run], task, seed, mcc)
                mccs.setdefault(run, {}).setdefault(task, []).append(mcc)
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path), plan)
    report = (tmp_path / "report.md").read_text()

    def cell(a: tuple, b: tuple) -> str:  # the slow way: task means, their differences, scipy's interval and test
        diffs = [np.mean(mccs[a][t]) - np.mean(mccs[b][t]) for t in sorted(tasks)]
        lo, hi = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
        return (f"{100 * np.mean(diffs):+.2f} ({100 * lo:+.2f} to {100 * hi:+.2f}; "
                f"p = {stats.wilcoxon(diffs).pvalue:.2g}; 3 tasks)")

    bert, rm0, dn0, floor = ("ov-bert", 0), ("ov-randommask", 0), ("ov-dnabert", 0), ("scratch", None)
    assert (f"| {cell(bert, rm0)} | {cell(bert, dn0)} | {cell(bert, floor)} |") in report
    assert f"ov-randommask.s1 minus ov-randommask.s0 {cell(('ov-randommask', 1), rm0)}" in report
    assert f"ov-dnabert.s1 minus ov-dnabert.s0 {cell(('ov-dnabert', 1), dn0)}" in report
    # With three seeds, each later run against the first (the seed the ablations share): s2 minus s1 is not one.
    assert f"ov-dnabert.s2 minus ov-dnabert.s0 {cell(('ov-dnabert', 2), dn0)}" in report
    assert f"ov-randommask.s2 minus ov-randommask.s0 {cell(('ov-randommask', 2), rm0)}" in report
    assert "s2 minus ov-dnabert.s1" not in report and "s2 minus ov-randommask.s1" not in report
    # -10 MCC is past the 4-MCC spread between runs of one masking (dnabert s2 minus s0, the widest); -3 is
    # inside it, whatever its interval says (and past s1 minus s0's 2: the third run widened the yardstick).
    widest = cell(("ov-dnabert", 2), dn0).split()[0].lstrip("+-")
    assert f"- ov-bert.s0 against ov-randommask.s0: below it over the tasks, by more than two runs of one masking " \
           f"differ ({widest})" in report
    assert f"- rm-phases-2.s0 against ov-randommask.s0: below it over the tasks, by less than two runs of one " \
           f"masking differ ({widest}): not attributable to the masking" in report


def _pair(diffs: list[float], seeds: list[int]) -> dict:
    by_a = {f"t{i}": [0.5 + d] for i, d in enumerate(diffs)}
    pair = paired_tasks(by_a, {f"t{i}": [0.5] for i in range(len(diffs))})
    return {**pair, "pretrain_seeds": seeds}


def test_verdict_says_which_masking_is_ahead_and_what_is_ruled_out():
    from randommask.replication_report import verdict_lines as verdict

    p = {**PRESETS["cpu-replication"], "tasks": [f"t{i}" for i in range(9)]}
    ahead = [0.03, 0.05, 0.02, 0.04, 0.06, 0.03, 0.05, 0.04, 0.02]
    flat = [0.01, -0.02, 0.0, 0.015, -0.01, 0.02, -0.015, 0.005, -0.005]
    text = "\n".join(verdict(p, {7000: None, 14000: _pair(flat, [0, 1]), 21000: _pair(ahead, [0, 1])}, {}))
    assert "At 29 M tokens (33% of pre-training): not enough finished" in text
    half = 100 * t_interval(flat)[1]
    lo, hi = 100 * np.mean(flat) - half, 100 * np.mean(flat) + half
    assert f"**no difference detected**: an effect beyond {max(abs(lo), abs(hi)):.1f} MCC" in text
    assert ("At 86 M tokens (100% of pre-training): **RandomMask is ahead** (RandomMask minus DNABERT masking "
            "+3.78") in text
    assert "Which masking to use at this compute** (86 M tokens, a `tiny` model): use RandomMask." in text
    assert "provisional" not in text
    assert f"from {100 * np.mean(flat):+.2f} MCC (step 14000) to +3.78 (step 21000)" in text
    assert "Not the same pre-training runs" not in text
    mixed = "\n".join(verdict(p, {7000: _pair(flat, [1]), 21000: _pair(ahead, [0, 1])}, {}))
    assert "Not the same pre-training runs yet (step 7000: seeds 1; step 21000: seeds 0, 1)" in mixed
    # Reversed, on 7 tasks and one pre-training seed: DNABERT ahead, and marked as provisional.
    behind = verdict(p, {21000: _pair([-d for d in ahead[:7]], [0])}, {})
    assert any("**DNABERT's masking is ahead**" in x and "**provisional**: 7 of 9 tasks, 1 of 2 pre-training seeds"
               in x for x in behind)
    assert any("use DNABERT's masking (provisional" in x for x in behind)
    # On 5 tasks the signed-rank test cannot go below 0.0625 however clear the interval: leaning, not established.
    five = verdict(p, {21000: _pair([-d for d in ahead[:5]], [0, 1])}, {})
    assert any("**leaning to DNABERT's masking, not established**" in x for x in five)
    assert any("either (leaning to DNABERT's masking, not established)" in x for x in five)
    assert any("not known yet" in x for x in verdict(p, {7000: _pair(ahead, [0])}, {}))
    # Ahead on the tasks, but the interval over the pre-training runs includes zero: not established, and the
    # effect ruled out is the wider interval's.
    runs = {"mean_diff": 0.03, "ci": 0.05, "df": 2, "p": 0.2, "tasks": 9}
    text = "\n".join(verdict(p, {21000: _pair(ahead, [0, 1])}, {}, {21000: runs}))
    assert "**leaning to RandomMask, not established**: it is ahead on the tasks, but pre-training runs" in text
    assert "over the pre-training runs +3.00, 95% interval -2.00 to +8.00" in text
    assert "either (leaning to RandomMask, not established)" in text
    flat_text = "\n".join(verdict(p, {21000: _pair(flat, [0, 1])}, {}, {21000: runs}))
    assert "**no difference detected**: an effect beyond 8.0 MCC either way" in flat_text
    agree = "\n".join(verdict(p, {21000: _pair(ahead, [0, 1])}, {}, {21000: {**runs, "ci": 0.02}}))
    assert "**RandomMask is ahead**" in agree and "use RandomMask." in agree
    # Every task and pre-training seed, but most fine-tuning seeds still to run: provisional.
    half_done = verdict(p, {21000: {**_pair(ahead, [0, 1]), "fine_tunes": (20, 90)}}, {})
    assert any("**provisional**: 20 of 90 fine-tunes so far" in x for x in half_done)
    # Each pre-training run's own course across the points (like with like), one point alone says nothing.
    courses = {("ov-dnabert", 1): [(7000, 0.621), (14000, 0.604), (21000, 0.574)], ("ov-randommask", 0): [(21000, 0.6)]}
    course = "\n".join(verdict(p, {21000: _pair(flat, [0, 1])}, courses))
    assert ("- ov-dnabert.s1, mean MCC over the 9 tasks: 62.1 at step 7000, 60.4 at step 14000, 57.4 at step 21000 "
            "(-4.7 from the first point to the last).") in course
    assert "ov-randommask.s0, mean MCC" not in course


# ------------------------------------------------------------------------------------------ the BPE arm
def test_bpe_arm_learns_its_vocabulary_once_and_is_fine_tuned_at_equal_tokens_and_equal_bases(tmp_path):
    from randommask.checkpoint import open_run

    p = tiny_preset(steps=12, arms=["ov-dnabert", "ov-randommask", "bpe-bert"], bpe_vocab_size=128, bpe_windows=50)
    arm = replication.arms_of(p)["bpe-bert"]
    assert arm.tokenizer == "bpe" and arm.masking == {"strategy": "bert"}
    assert replication.points(p, "bpe-bert", tmp_path) == [12]  # compression unknown before the vocabulary
    run = replication.pretrain_unit(p, arm, 0, tmp_path, {"fasta": [str(GENOME)]}, "cpu", False)
    vocab = (tmp_path / "tokenizer" / "tokenizer.json").read_text()
    pre = open_run(run)
    assert pre.tokenizer.name == "bpe128" and pre.config["masking"]["strategy"] == "bert"
    bpt = json.loads((tmp_path / "tokenizer" / "tokenizer-report.json").read_text())["heldout"]["bases_per_token"]
    assert bpt > 1.5  # a BPE token covers more than one base of human DNA
    # Equal bases: 12 steps of one new base a token = 12 / bpt steps of BPE, on the checkpoint grid (every step).
    assert replication.points(p, "bpe-bert", tmp_path) == sorted({round(12 / bpt), 12})
    plan = [u for u in replication.finetune_plan(p, tmp_path) if u["arm"] == "bpe-bert"]
    assert [u["step"] for u in plan] == replication.points(p, "bpe-bert", tmp_path)
    replication.pretrain_unit(p, arm, 0, tmp_path, {"fasta": [str(GENOME)]}, "cpu", False)  # done: skipped
    assert (tmp_path / "tokenizer" / "tokenizer.json").read_text() == vocab  # learnt once
    write_report(p, tmp_path, "abc", replication.arms_of(p), replication.pretrain_units(p, tmp_path),
                 replication.finetune_plan(p, tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "what equal compute means" in report and f"{bpt:.2f} bases" in report
    assert "bpe-bert (equal tokens) | 12 |" in report
