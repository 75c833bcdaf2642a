"""Fine-tuning throughput: ``randommask.finetune`` against transformers' ``Trainer``, in one process.

Both sides fine-tune the same classifier (`randommask.finetune.build_classifier`: the same weights,
from a pre-trained run or from scratch, seed 0) on the same GUE task, with the same batch, steps,
learning-rate schedule, dropout and dev evaluations, then score the best-dev model once on test:

* transformers: ``BertForSequenceClassification`` (SDPA) under ``Trainer``, the path DNABERT-2's users
  take: the splits tokenized once into a dataset, ``eval_strategy="steps"``, a checkpoint saved at each
  evaluation, ``load_best_model_at_end`` on dev MCC, ``predict`` on test.
* ours: `randommask.finetune.finetune`, splits tokenized once, no attention mask for unpadded batches,
  the best model kept in memory (``--select-dev N`` also scores only N seeded dev rows during training,
  the final dev and test scores use every row).

Wall time covers everything from the loaded task to the test score, tokenization included. Figure:
training examples per second (steps x batch / wall). The sides alternate over ``--rounds`` rounds and
medians are reported, so a machine shared with other work slows both alike.

    python bench/finetune_throughput.py --task ../shared/data/GUE/prom/prom_core_all --threads 1

The last line is the headline ratio (ours / transformers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from randommask.finetune import FinetuneConfig, FinetuneSettings, build_classifier, finetune, resolve_model
from randommask.metrics import classification_metrics
from randommask.model import hf_config_dict, hf_state_dict
from randommask.tasks import load_task

DEFAULT_TASK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "GUE" / "prom" / "prom_core_all"


def settings(a: argparse.Namespace) -> dict[str, Any]:
    """The fine-tuning settings both sides use."""
    base = {"learning_rate": a.lr, "batch_size": a.batch, "max_steps": a.steps, "eval_steps": a.eval_steps,
            "warmup_steps": a.warmup, "dropout": a.dropout, "progress": False, "device": "cpu"}
    if a.run:
        return {**base, "model": a.run}
    return {**base, "from_scratch": True, "tokenizer": "kmer6", "preset": a.preset}


def run_ours(a: argparse.Namespace, out: Path, select_dev: int | None) -> dict[str, Any]:
    data = {**settings(a), "task": str(a.task), "out_dir": str(out), "seed": 0, "save_model": False,
            "eval_batch_size": a.eval_batch}
    if select_dev:
        data["select_dev_examples"] = select_dev
    cfg = FinetuneConfig(**data)
    t0 = time.perf_counter()
    res = finetune(cfg)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "test_mcc": res["test"]["mcc"], "best_step": res["best"]["step"]}


def run_transformers(a: argparse.Namespace, out: Path) -> dict[str, Any]:
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    t0 = time.perf_counter()
    spec = resolve_model(FinetuneSettings(**settings(a)))
    task = load_task(a.task, seed=0)
    tok = spec.tokenizer
    max_len = min(tok.num_tokens(max(len(s) for s in task.train.sequences)) + 2, spec.config.max_position_embeddings)
    ours = build_classifier(spec, task.num_classes, seed=0, dropout=a.dropout)  # the very same initial weights
    model = BertForSequenceClassification(BertConfig(**hf_config_dict(ours.config), attn_implementation="sdpa"))
    missing, unexpected = model.load_state_dict(hf_state_dict(ours), strict=False)
    assert not unexpected and all("position_ids" in k or "token_type_ids" in k for k in missing), (missing, unexpected)

    def dataset(split: Any) -> list[dict[str, torch.Tensor]]:
        enc = tok.encode_batch(split.sequences, max_length=max_len, truncation=True)
        return [{"input_ids": torch.from_numpy(enc.ids[i]).long(),
                 "attention_mask": torch.from_numpy(enc.attention_mask[i]).long(),
                 "labels": torch.tensor(int(split.labels[i]))} for i in range(len(split))]

    train, dev, test = dataset(task.train), dataset(task.dev), dataset(task.test)

    def metrics(p: Any) -> dict[str, float]:
        return {"mcc": classification_metrics(p.label_ids, np.argmax(p.predictions, -1))["mcc"]}

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=a.batch, per_device_eval_batch_size=a.eval_batch,
        max_steps=a.steps, learning_rate=a.lr, warmup_steps=a.warmup, weight_decay=0.01, lr_scheduler_type="linear",
        eval_strategy="steps", eval_steps=a.eval_steps, save_strategy="steps", save_steps=a.eval_steps,
        save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="mcc", greater_is_better=True,
        report_to="none", disable_tqdm=True, use_cpu=True, seed=0, dataloader_num_workers=0, logging_steps=a.steps,
        max_grad_norm=1.0, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=dev, compute_metrics=metrics)
    trainer.train()
    pred = trainer.predict(test)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "test_mcc": metrics(pred)["mcc"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=Path, default=DEFAULT_TASK, help="a GUE task folder")
    ap.add_argument("--run", default="", help="a pre-trained run folder (default: tiny from scratch)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--eval-batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--select-dev", type=int, default=2000, help="our extra row: dev rows scored during training")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    a = ap.parse_args()
    if not (a.task / "dev.csv").exists():
        raise SystemExit(f"{a.task}: not a GUE task folder (give --task)")
    torch.set_num_threads(a.threads)
    rows: dict[str, list[dict[str, Any]]] = {"transformers Trainer": [], "ours": [], "ours, dev selection subset": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            rows["transformers Trainer"].append(run_transformers(a, Path(tmp) / f"hf{r}"))
            rows["ours"].append(run_ours(a, Path(tmp) / f"ours{r}", None))
            if a.select_dev:
                rows["ours, dev selection subset"].append(run_ours(a, Path(tmp) / f"sel{r}", a.select_dev))
    examples = a.steps * a.batch
    print(f"task {a.task.name}, {a.steps} steps x {a.batch}, dev every {a.eval_steps}, {a.threads} thread(s), "
          f"{a.rounds} rounds (medians)")
    print("| side | wall s | train examples/s | test MCC (round 1) |\n| --- | ---: | ---: | ---: |")
    figures = {}
    for name, runs in rows.items():
        if not runs:
            continue
        wall = statistics.median(x["wall_s"] for x in runs)
        figures[name] = {"wall_s": wall, "examples_per_s": examples / wall, "test_mcc": runs[0]["test_mcc"]}
        print(f"| {name} | {wall:.1f} | {examples / wall:.1f} | {runs[0]['test_mcc']:.4f} |")
    base = figures["transformers Trainer"]["wall_s"]
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "figures": figures}, indent=2))
    if "ours, dev selection subset" in figures:
        print(f"ours with a {a.select_dev}-row dev selection subset / transformers: "
              f"{base / figures['ours, dev selection subset']['wall_s']:.2f}x")
    print(f"headline: ours / transformers Trainer, fine-tuning examples per second: "
          f"{base / figures['ours']['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
