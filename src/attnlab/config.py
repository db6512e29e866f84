"""Typed configs, registries by name, YAML files and dotted command-line overrides.

A config is a frozen dataclass that sits beside the class it configures (`Task.Config`,
`Model.Config`, `TrainConfig`). Tasks and models are chosen by registry name, never by import
path. YAML holds data only (`yaml.safe_load`). Every error here is a `ConfigError` whose one-line
message names the key or file at fault and, for an unknown key, the closest valid one.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import io
import math
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from attnlab.errors import ConfigError

T = TypeVar("T")


def closest(name: str, valid: list[str]) -> str:
    """' (did you mean "x"?)' for the closest valid name, or a list of the valid names."""
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if match:
        return f' (did you mean "{match[0]}"?)'
    return f" (valid: {', '.join(sorted(valid))})" if valid else ""


class Registry(Generic[T]):
    """Classes by name; each registered class has a `Config` dataclass and a one-line docstring.

    An entry may carry `defaults`, values of its Config's fields that replace the dataclass's
    own: families that share one mechanism's Config differ only there (rnn, gru and lstm share
    one recurrent config, each with its own hidden_dim). `build_config` applies them.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._defaults: dict[str, dict[str, Any]] = {}

    def register(self, name: str, defaults: dict[str, Any] | None = None) -> Callable[[T], T]:
        """A decorator that adds a class by name, with `defaults` for fields of its Config."""

        def add(cls: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            config = getattr(cls, "Config", None)
            valid = [f.name for f in dataclasses.fields(config)] if dataclasses.is_dataclass(config) else []
            for key in defaults or {}:
                if key not in valid:
                    raise ValueError(f"{self.kind} {name!r}: default {key!r} is not a field of its Config")
            self._entries[name] = cls
            self._defaults[name] = dict(defaults or {})
            return cls

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}{closest(name, list(self._entries))}")
        return self._entries[name]

    def defaults(self, name: str) -> dict[str, Any]:
        """The entry's own defaults: Config field values that replace the dataclass's."""
        self.get(name)
        return dict(self._defaults[name])

    def build_config(self, name: str, values: dict[str, Any] | None = None, where: str = "config") -> Any:
        """The entry's Config from its defaults with `values` on top, checked like `build`."""
        cls: Any = self.get(name)
        return build(cls.Config, {**self._defaults[name], **(values or {})}, where=where)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def summary(self, name: str) -> str:
        doc = (self.get(name).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def field_comments(cls: type) -> dict[str, str]:
    """The comment written beside each field of a dataclass in its source, base classes first.

    `x: int = 3  # the comment` gives {"x": "the comment"}; a field without one is left out.
    """
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        comments = {
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        }
        body = ast.parse(source).body[0]
        for node in getattr(body, "body", []):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                line = node.end_lineno or node.lineno
                if line in comments:
                    out[node.target.id] = comments[line]
    return out


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        if len(args) == 1:
            return _convert(value, args[0], where)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (str,)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(v, inner, where) for v in items)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        try:
            number = tp(value) if not (tp is int and isinstance(value, str)) else int(float(value))
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if not math.isfinite(number):  # no setting means anything at nan or infinity
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        if tp is int and isinstance(value, (float, str)) and float(value) != number:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def build(cls: type[T], values: dict[str, Any] | None = None, where: str = "config") -> T:
    """A `cls` dataclass from a dict of plain values; unknown keys name the closest valid key."""
    values = dict(values or {})
    types_ = _field_types(cls)
    for key in values:
        if key not in types_:
            raise ConfigError(f"unknown key {where}.{key}{closest(key, list(types_))}")
    kwargs = {k: _convert(v, types_[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain data (tuples as lists) for YAML."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def parse_overrides(args: list[str]) -> dict[str, dict[str, str]]:
    """['--model.num_layers=2', '--train.lr', '3e-4'] -> {'model': {'num_layers': '2'}, 'train': {...}}."""
    out: dict[str, dict[str, str]] = {}
    it = iter(args)
    for arg in it:
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(f"expected an override like --section.key=value, got {arg!r}")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            following = next(it, None)
            if following is None:
                raise ConfigError(f"override --{key} has no value")
            value = following
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from a file; a missing, unreadable or malformed file is a ConfigError."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read ({err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: malformed YAML{line}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    """The YAML text of plain data (keys in the given order)."""
    return yaml.safe_dump(data, sort_keys=False)
