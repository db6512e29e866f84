"""Typed configs, registries by name, YAML files and dotted command-line overrides.

A config is a frozen dataclass that sits beside the class it configures (`Task.Config`,
`Model.Config`, `TrainConfig`). Tasks and models are chosen by registry name, never by import
path. YAML holds data only (`yaml.safe_load`). Every error here is a `ConfigError` whose one-line
message names the key or file at fault and, for an unknown key, the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

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
    """Classes by name; each registered class has a `Config` dataclass and a one-line docstring."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = cls
            return cls

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}{closest(name, list(self._entries))}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def summary(self, name: str) -> str:
        doc = (self.get(name).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __contains__(self, name: str) -> bool:
        return name in self._entries


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
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
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
            value = next(it, None)
            if value is None:
                raise ConfigError(f"override --{key} has no value")
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
