"""The one registry of ``randommask`` commands: each a config class, a function, and how its options read.

This module stands on top of the house: it imports every workflow's config class and function directly,
and no workflow imports it (nor `randommask.cli`, which parses arguments with this registry). A new
command is one `Command` entry here. The ``run`` functions below are the thin adapters from parsed
arguments to a workflow: they print the closing line a person reads, nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from randommask.analysis.report import AnalyzeConfig, analyze
from randommask.bpe_train import TokenizerTrainConfig, train_tokenizer
from randommask.config import from_dict, load_yaml
from randommask.demo import DemoConfig, run_demo
from randommask.errors import RandomMaskError
from randommask.evaluate import BenchmarkConfig, benchmark, load_benchmark_config
from randommask.finetune import FinetuneConfig, finetune, load_finetune_config
from randommask.hf import ExportConfig, ImportConfig, export_run, import_hf
from randommask.inference import EmbedConfig, PredictConfig, embed, predict
from randommask.pretrain import PretrainConfig, load_config, pretrain
from randommask.study import StudyConfig, run_study


@dataclass
class Command:
    """One subcommand: its config class, the function that runs it, and how its options read."""

    name: str
    help: str
    config_cls: type
    run: Callable[[Any, argparse.Namespace], Any]
    positionals: list[tuple[str, str, str | None]] = field(default_factory=list)  # (metavar, field, nargs)
    aliases: dict[str, str] = field(default_factory=dict)  # "--lr" -> "optim.lr"
    flags: list[tuple[str, str]] = field(default_factory=list)  # extra store_true flags: (flag, help)
    extra: list[tuple[str, dict]] = field(default_factory=list)  # other argparse options: (flag, kwargs)
    load: Callable[[dict], Any] | None = None  # plain data -> config (default: from_dict + its checks)


@dataclass
class PrepareConfig:
    """Prepare FASTA files once into a memory-mapped genome store."""

    fasta: list[str] = field(default_factory=list)  # FASTA files (plain, gzip or bgzip) to prepare
    out: str = ""  # the store folder to write (bases.u8 + index.json)
    progress: bool = True  # show a progress bar


def resume_option(help_text: str) -> tuple[str, dict]:
    """``--resume`` (bare: True) or ``--resume auto``, for `Command.extra`; put it last or write ``--resume=auto``."""
    return ("--resume", {"nargs": "?", "const": True, "default": False, "choices": ["auto"], "metavar": "auto",
                         "help": help_text})


def validated(cls: type) -> Callable[[dict], Any]:
    """Plain data -> ``cls``, then the config's own ``validate()``: a bad value fails before any work."""
    def load(data: dict) -> Any:
        cfg = from_dict(cls, data)
        cfg.validate()
        return cfg

    return load


# ------------------------------------------------------------------------------------------ adapters
def run_prepare(cfg: PrepareConfig, ns: argparse.Namespace) -> None:
    from randommask.genome import prepare

    if not cfg.fasta:
        raise RandomMaskError("give at least one FASTA file")
    if not cfg.out:
        raise RandomMaskError("give the output folder with --out")
    for f in cfg.fasta:
        if not Path(f).exists():
            raise RandomMaskError(f"{f}: FASTA file not found")
    store = prepare([Path(f) for f in cfg.fasta], Path(cfg.out), progress=cfg.progress)
    n = store.n_count
    print(f"prepared {len(store.records)} records, {store.total_length:,} bases ({n:,} N) into {cfg.out}")


def run_pretrain(cfg: PretrainConfig, ns: argparse.Namespace) -> int:
    result = pretrain(cfg, resume=ns.resume, init_from=ns.init_from)
    if result.get("eval_loss") is not None:
        print(f"done: step {result['step']}, eval loss {result['eval_loss']:.4f}, eval masked-token accuracy "
              f"{result['eval_acc']:.4f}; run folder {cfg.out_dir}")
    return 0


def run_export(cfg: ExportConfig, ns: argparse.Namespace) -> int:
    if not cfg.run or not cfg.out:
        raise RandomMaskError("give the run folder and the output folder: randommask export RUN OUT")
    out = export_run(cfg.run, cfg.out, checkpoint=cfg.checkpoint, force=cfg.force)
    print(f"exported {cfg.run} to {out}: load it with transformers' from_pretrained({str(out)!r})")
    return 0


def run_import(cfg: ImportConfig, ns: argparse.Namespace) -> int:
    if not cfg.source or not cfg.out:
        raise RandomMaskError("give the Hugging Face folder and the output folder: randommask import HF_FOLDER OUT")
    out = import_hf(cfg.source, cfg.out, stride=cfg.stride, force=cfg.force)
    info = load_yaml(out / "config.yaml")
    print(f"imported {cfg.source} into {out} (tokenizer {info['tokenizer']}); "
          f"use it with --init-from {out} or as the model of finetune, embed, analyze")
    return 0


def _just(fn: Callable[[Any], Any]) -> Callable[[Any, argparse.Namespace], int]:
    """A workflow that needs only its config, as a command (its result is what it wrote and printed)."""
    def run(cfg: Any, ns: argparse.Namespace) -> int:
        fn(cfg)
        return 0

    return run


#: Options every fine-tuning command shares, with short aliases.
FINETUNE_ALIASES = {"--lr": "learning_rate"}
MODEL_INPUT = [("MODEL", "model", "?"), ("INPUT", "input", "?")]


def all_commands() -> list[Command]:
    """Every command, in the order ``randommask --help`` lists them."""
    return [
        Command("prepare", "Prepare FASTA files (plain, gzip, bgzip) into a genome store.", PrepareConfig,
                run_prepare, positionals=[("FASTA", "fasta", "*")], aliases={"--out": "out"}),
        Command("pretrain", "Pre-train a BERT-like DNA model with masked-language modelling.",
                PretrainConfig, run_pretrain, load=load_config,
                positionals=[("FASTA", "data.fasta", "*")],
                aliases={"--out": "out_dir", "--store": "data.store", "--masking": "masking.strategy",
                         "--lr": "optim.lr", "--batch-size": "batch_size", "--max-tokens": "data.max_tokens",
                         "--workers": "data.num_workers"},
                extra=[resume_option("continue the run in the output folder from its latest checkpoint (there must "
                                     "be one); --resume auto: continue when there is one, start the run otherwise"),
                       ("--init-from", {"metavar": "RUN", "default": None,
                                        "help": "start from the weights of another run folder"})]),
        Command("tokenizer train", "Learn a BPE vocabulary (DNABERT-2's tokenizer) from FASTA files or a store; "
                "writes tokenizer.json for --tokenizer bpe:OUT.", TokenizerTrainConfig, _just(train_tokenizer),
                load=validated(TokenizerTrainConfig), positionals=[("FASTA", "fasta", "*")]),
        Command("demo", "Pre-train the tiny model with RandomMask on human chromosome 20 and report.",
                DemoConfig, _just(run_demo), aliases={"--out": "out_dir"}),
        Command("export", "Export a run folder as a Hugging Face transformers folder (config.json, "
                "model.safetensors, tokenizer files, model card).", ExportConfig, run_export,
                positionals=[("RUN", "run", None), ("OUT", "out", None)]),
        Command("import", "Import a Hugging Face BertForMaskedLM folder (e.g. DNABERT) as a randommask run "
                "folder.", ImportConfig, run_import,
                positionals=[("HF_FOLDER", "source", None), ("OUT", "out", None)]),
        Command("finetune", "Fine-tune a pre-trained run (or --from-scratch) on one GUE task folder; best dev MCC "
                "model, test scored once.", FinetuneConfig, _just(finetune), load=load_finetune_config,
                positionals=[("MODEL", "model", "?"), ("TASK", "task", "?")],
                aliases={**FINETUNE_ALIASES, "--out": "out_dir"}),
        Command("benchmark", "Fine-tune a model (or --from-scratch) on GUE tasks x seeds; results.csv/.json/.md, "
                "resumable.", BenchmarkConfig, _just(benchmark), load=load_benchmark_config,
                positionals=[("MODEL", "model", "?"), ("GUE", "gue", "?")],
                aliases={**FINETUNE_ALIASES, "--out": "out_dir"},
                extra=[resume_option("accepted for one requeue command line: a benchmark always keeps the finished "
                                     "runs in --out and runs the rest (--resume and --resume auto alike)")]),
        Command("predict", "Class probabilities of a fine-tuned run for sequences in a FASTA or CSV file.",
                PredictConfig, _just(predict), load=validated(PredictConfig), positionals=MODEL_INPUT),
        Command("embed", "Embeddings (mean-pooled or [CLS]) of sequences in a FASTA or CSV file, to .npy.",
                EmbedConfig, _just(embed), load=validated(EmbedConfig), positionals=MODEL_INPUT),
        Command("analyze", "Figures and a report on a pre-training run: curves, embeddings, attention, "
                "layers, masks.", AnalyzeConfig, _just(analyze), positionals=[("RUN", "run", None)]),
        Command("study", "Run the paper's tokenizer x masking experiment grid and report on it.", StudyConfig,
                _just(run_study), positionals=[("FASTA", "fasta", "*")], aliases={"--out": "out_dir"},
                load=lambda d: from_dict(StudyConfig, d),
                extra=[resume_option("accepted for one requeue command line: a study always continues what "
                                     "--out holds (--resume and --resume auto alike)")]),
    ]
