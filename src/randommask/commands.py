"""The CLI's commands: each one a config class and a function (see `randommask.cli`).

Workflow modules that own a command expose ``cli_commands() -> list[Command]``; `all_commands`
collects them in the order ``randommask --help`` lists them.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path

from randommask.cli import Command, resume_option
from randommask.errors import RandomMaskError

# Modules with a cli_commands() function, after the ones defined here.
COMMAND_MODULES: list[str] = ["randommask.demo", "randommask.hf", "randommask.finetune", "randommask.evaluate",
                               "randommask.inference", "randommask.analysis.report", "randommask.study"]


@dataclass
class PrepareConfig:
    """Prepare FASTA files once into a memory-mapped genome store."""

    fasta: list[str] = field(default_factory=list)  # FASTA files (plain, gzip or bgzip) to prepare
    out: str = ""  # the store folder to write (bases.u8 + index.json)
    progress: bool = True  # show a progress bar


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


def run_pretrain(cfg, ns: argparse.Namespace) -> dict:
    from randommask.pretrain import pretrain

    result = pretrain(cfg, resume=ns.resume, init_from=ns.init_from)
    if result.get("eval_loss") is not None:
        print(f"done: step {result['step']}, eval loss {result['eval_loss']:.4f}, eval masked-token accuracy "
              f"{result['eval_acc']:.4f}; run folder {cfg.out_dir}")
    return 0


def all_commands() -> list[Command]:
    from randommask.pretrain import PretrainConfig, load_config

    cmds = [
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
    ]
    for name in COMMAND_MODULES:
        cmds.extend(importlib.import_module(name).cli_commands())
    return cmds
