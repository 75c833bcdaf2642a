"""The ``randommask`` command.

The top floor: argument parsing over the registry in `randommask.commands`, where every command is a
typed dataclass config plus one function. Its options are generated
from the config's fields (``--optim.lr 1e-3``, ``--masking.strategy dnabert``), with short aliases for
the common ones (``--lr``, ``--masking``); ``--config FILE`` reads a YAML file first, and options on
the command line override it. Errors meant for users print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any

from randommask.commands import Command, all_commands
from randommask.config import from_dict, leaf_docs, leaf_fields, load_yaml, override, parse_scalar
from randommask.errors import RandomMaskError


def _is_list(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(tp) if a is not type(None))
    return origin is list


def _is_bool(tp: Any) -> bool:
    return tp is bool


def build_parser(commands: list[Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="randommask", description="BERT-like DNA foundation models with "
                                     "RandomMask pre-training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, Any] = {}  # "tokenizer train": a command "train" under the group "tokenizer"
    for cmd in commands:
        where, name = sub, cmd.name
        if " " in cmd.name:
            group, name = cmd.name.split(" ", 1)
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} commands", description=f"{group} commands")
                gp.set_defaults(_group_parser=gp)  # `randommask tokenizer` alone prints the group's help
                groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="COMMAND")
            where = groups[group]
        p = where.add_parser(name, help=cmd.help, description=cmd.help)
        for metavar, dotted, nargs in cmd.positionals:
            p.add_argument(f"pos:{dotted}", metavar=metavar, nargs=nargs, default=None,
                           help=f"sets {dotted}")
        p.add_argument("--config", metavar="FILE", help="YAML config file; options given here override it")
        for flag, help_text in cmd.flags:
            p.add_argument(flag, action="store_true", help=help_text)
        for flag, kwargs in cmd.extra:
            p.add_argument(flag, **kwargs)
        reverse_alias = {v: k for k, v in cmd.aliases.items()}
        docs = leaf_docs(cmd.config_cls)
        for dotted, tp, default in leaf_fields(cmd.config_cls):
            names = [f"--{dotted}"] + ([reverse_alias[dotted]] if dotted in reverse_alias else [])
            if "_" in dotted and f"--{dotted.replace('_', '-')}" not in names:
                names.append(f"--{dotted.replace('_', '-')}")
            kwargs: dict[str, Any] = {"dest": f"opt:{dotted}", "default": None,
                                      "help": _help(docs.get(dotted), default)}
            if _is_list(tp):
                kwargs.update(nargs="+", metavar="VALUE")
            elif _is_bool(tp):
                kwargs.update(nargs="?", const="true", metavar="BOOL")
            else:
                kwargs.update(metavar=typing.get_origin(tp) and "VALUE" or getattr(tp, "__name__", "VALUE").upper())
            p.add_argument(*names, **kwargs)
        p.set_defaults(_command=cmd)
    return parser


def _help(doc: str | None, default: Any) -> str:
    # argparse expands "%" in help text; the docs are prose that may contain one.
    text = f"{doc} (default: {default!r})" if doc else f"(default: {default!r})"
    return text.replace("%", "%%")


def config_from_args(cmd: Command, ns: argparse.Namespace) -> Any:
    """YAML file (if any), then positionals and options, then validation by the config class."""
    data: dict = load_yaml(ns.config) if getattr(ns, "config", None) else {}
    for _, dotted, _ in cmd.positionals:
        value = getattr(ns, f"pos:{dotted}")
        if value not in (None, []):
            override(data, dotted, value, cmd.config_cls)
    for dotted, tp, _ in leaf_fields(cmd.config_cls):
        value = getattr(ns, f"opt:{dotted}")
        if value is None:
            continue
        if isinstance(value, list):
            parsed = [parse_scalar(v) if not _is_str_list(tp) else v for v in value]
        elif tp is str or typing.get_args(tp) == (str, type(None)):
            parsed = value
        else:
            parsed = parse_scalar(value)
        override(data, dotted, parsed, cmd.config_cls)
    return cmd.load(data) if cmd.load else from_dict(cmd.config_cls, data)


def _is_str_list(tp: Any) -> bool:
    for arg in (tp, *typing.get_args(tp)):
        if typing.get_origin(arg) is list and typing.get_args(arg) in ((str,), ()):
            return True
    return False


def commands() -> list[Command]:
    """The registry (`randommask.commands`), in ``--help`` order."""
    return all_commands()


def main(argv: list[str] | None = None) -> int:
    cmds = commands()
    parser = build_parser(cmds)
    ns = parser.parse_args(argv)
    if not getattr(ns, "_command", None):
        (getattr(ns, "_group_parser", None) or parser).print_help()
        return 2
    cmd: Command = ns._command
    try:
        cfg = config_from_args(cmd, ns)
        result = cmd.run(cfg, ns)
    except RandomMaskError as e:
        print(f"randommask {cmd.name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"randommask {cmd.name}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
