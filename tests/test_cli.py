"""The command line: options generated from the configs, each with the text the code gives its field."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from randommask.cli import commands, main
from randommask.config import field_docs, leaf_docs, leaf_fields
from randommask.evaluate import BenchmarkConfig
from randommask.masking import MaskingConfig


def test_every_option_of_every_command_is_documented() -> None:
    missing = [f"{c.name} --{dotted}" for c in commands()
               for dotted, _, _ in leaf_fields(c.config_cls) if not leaf_docs(c.config_cls).get(dotted)]
    assert missing == []


def test_help_shows_the_field_text_and_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--optim.lr FLOAT, --lr FLOAT peak learning rate (DNABERT: 4e-4) (default: 0.0004)" in out
    assert "--batch-size INT windows per micro-batch per rank (default: 32)" in out
    # A docstring entry with a continuation line is read whole.
    assert "or always use the phase maximum (False). (default: True)" in out


def test_field_docs_sources() -> None:
    @dataclass
    class Base:
        """Doc.

        alpha: from the docstring,
            continued here.
        - `beta`: a bullet, 50% of it.
        """

        alpha: int = 1
        beta: float = 0.5
        gamma: list[int] = field(default_factory=list)  # from a comment
        delta: str = ""
        zeta: int = 0  # a comment that goes on
        # on the comment lines under it
        # (two of them)

        # a comment above a field, after a blank line, is not zeta's
        eta: int = 0

    @dataclass
    class Child(Base):
        """Child."""

        epsilon: bool = False  # the child's own

    docs = field_docs(Child)
    assert docs == {"alpha": "from the docstring, continued here.", "beta": "a bullet, 50% of it.",
                    "gamma": "from a comment", "epsilon": "the child's own",
                    "zeta": "a comment that goes on on the comment lines under it (two of them)"}
    assert field_docs(MaskingConfig)["k"].startswith("k-mer length")
    assert field_docs(BenchmarkConfig)["learning_rate"].startswith("peak learning rate")  # inherited



def test_a_command_group_alone_prints_its_own_help(capsys) -> None:
    assert main(["tokenizer"]) == 2
    out = capsys.readouterr().out
    assert "usage: randommask tokenizer" in out and "train" in out and "pretrain" not in out
