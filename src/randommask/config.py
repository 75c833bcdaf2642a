"""Typed configs: dataclasses read from YAML and command-line overrides, validated field by field.

A config is a tree of dataclasses. `from_dict` builds one from plain data (YAML), checking every key
and the type of every value, so a typo or a wrong type is a one-line error naming the key instead of
a crash an hour into a run. `override` applies ``section.field=value`` strings (values parsed as
YAML scalars, then type-checked the same way). The CLI generates its options from the same fields.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from randommask.errors import RandomMaskError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and lightly convert: int -> float, list -> tuple) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except RandomMaskError as e:
                errors.append(str(e))
        raise RandomMaskError(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise RandomMaskError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise RandomMaskError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise RandomMaskError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise RandomMaskError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise RandomMaskError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # 1e6 in YAML is a float
        raise RandomMaskError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise RandomMaskError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise RandomMaskError(f"{where}: expected a string, got {value!r}")
    raise RandomMaskError(f"{where}: unsupported config type {tp!r}")  # a bug in a config class


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise RandomMaskError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise RandomMaskError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for YAML and checkpoints."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_scalar(text: str) -> Any:
    """A command-line value, read as a YAML scalar or flow list: ``3``, ``1e-4``, ``true``, ``[1, 2]``."""
    for number in (int, float):  # before YAML, which reads 1e-3 (no dot) as a string
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def override(data: dict, dotted: str, value: Any, cls: type | None = None) -> None:
    """Set ``data[a][b] = value`` for ``dotted == "a.b"``, checking the key exists in ``cls``."""
    parts = dotted.split(".")
    node, tp = data, cls
    for i, part in enumerate(parts):
        if tp is not None:
            names = [f.name for f in dataclasses.fields(tp) if not f.name.startswith("_")]
            if part not in names:
                prefix = ".".join(parts[:i]) or "config"
                raise RandomMaskError(f"{prefix}: unknown key {part!r}; valid keys: {', '.join(names)}")
            hint = typing.get_type_hints(tp)[part]
            tp = hint if dataclasses.is_dataclass(hint) else None
        if i == len(parts) - 1:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {} if child is None else to_dict(child)
            node = child


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into plain data, with a one-line error for a bad file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RandomMaskError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RandomMaskError(f"{path}: cannot read config ({e.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "parse error"
        raise RandomMaskError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RandomMaskError(f"{path}: a config file must hold a mapping of keys, got {type(data).__name__}")
    return data


def save_yaml(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted name, type, default) for every leaf field: what the CLI turns into options."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(leaf_fields(tp, f"{prefix}{f.name}."))
        else:
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            out.append((prefix + f.name, tp, default))
    return out


_DOC_LINE = re.compile(r"^(\s*)(?:- )?`?(\w+)`?: (.+)$")
_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")
_COMMENT_ONLY = re.compile(r"^\s+#\s*(.+)$")


def field_docs(cls: type) -> dict[str, str]:
    """What each field of a dataclass means, from where the code says it: a ``name: text`` line of the
    class docstring (continuation lines indented deeper) or a ``# comment`` at the end of the field's line
    (continued on the comment-only lines right under it). Inherited fields are documented by the class that
    declares them."""
    docs: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        lines = inspect.cleandoc(klass.__doc__ or "").splitlines()
        for i, line in enumerate(lines):
            m = _DOC_LINE.match(line)
            if not m or m.group(2) not in names:
                continue
            text, indent = [m.group(3).strip()], len(m.group(1))
            for more in lines[i + 1:]:
                if not more.strip() or len(more) - len(more.lstrip()) <= indent:
                    break
                text.append(more.strip())
            docs[m.group(2)] = " ".join(text)
        try:
            source = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for i, line in enumerate(source):
            m = _FIELD_COMMENT.match(line)
            if m and m.group(1) in names and m.group(1) in klass.__dict__.get("__annotations__", {}):
                text = [m.group(2).strip()]
                for more in source[i + 1:]:
                    if not (c := _COMMENT_ONLY.match(more)):
                        break
                    text.append(c.group(1).strip())
                docs[m.group(1)] = " ".join(text)
    return docs


def leaf_docs(cls: type, prefix: str = "") -> dict[str, str]:
    """`field_docs` for every leaf field, by dotted name (as `leaf_fields` lists them)."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(leaf_docs(hints[f.name], f"{prefix}{f.name}."))
        elif f.name in docs:
            out[prefix + f.name] = docs[f.name]
    return out
