"""Typed config from plain dicts: one-line errors naming the field, the value and what is allowed.

Config sections are frozen dataclasses whose field annotations are the schema and whose defaults
are the documented defaults. ``parse`` turns a mapping into such a dataclass, ``parse_named``
turns ``"step"`` or ``{name: step, gamma: 0.5}`` into a :class:`Named` option, and ``to_plain``
turns any of them back into JSON-able data (``parse(to_plain(x)) == x``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ConfigError",
    "Named",
    "NoParams",
    "bounded",
    "check",
    "check_bounds",
    "describe",
    "did_you_mean",
    "join",
    "parse",
    "parse_named",
    "to_plain",
    "type_hints",
]


class ConfigError(ValueError):
    """A bad config value. ``str(err)`` is one line: ``path: what is wrong``."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def bounded(default: Any, *, gt=None, ge=None, lt=None, le=None) -> Any:
    """A dataclass field with numeric bounds checked by :func:`parse`."""
    return field(default=default, metadata={"gt": gt, "ge": ge, "lt": lt, "le": le})


@dataclass(frozen=True)
class NoParams:
    """Options that take no parameters."""


@dataclass(frozen=True)
class Named:
    """A named option with its typed parameters, e.g. ``Named("step", Step(step_size=5))``."""

    name: str
    params: Any = NoParams()


def did_you_mean(word: object, allowed: typing.Iterable[str]) -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(word), allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"allowed: {', '.join(allowed)}{hint}"


def join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def parse(cls: type, value: object, path: str = "") -> Any:
    """Validate ``value`` (a mapping, or None for all defaults) into dataclass ``cls``."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a mapping, got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in value:
        if key not in fields:
            raise ConfigError(join(path, key), f"unknown key; {did_you_mean(key, fields)}")
    hints = type_hints(cls)
    kwargs = {}
    for name, spec in fields.items():
        if name in value:
            kwargs[name] = check(value[name], hints[name], join(path, name))
            check_bounds(kwargs[name], spec.metadata, join(path, name))
    return cls(**kwargs)


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a config dataclass (cached: grids validate thousands)."""
    return typing.get_type_hints(cls)


def check_bounds(value: object, bounds: Mapping, path: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    tests = {
        "gt": (lambda v, b: v > b, "> {}"),
        "ge": (lambda v, b: v >= b, ">= {}"),
        "lt": (lambda v, b: v < b, "< {}"),
        "le": (lambda v, b: v <= b, "<= {}"),
    }
    for key, (ok, text) in tests.items():
        bound = bounds.get(key)
        if bound is not None and not ok(value, bound):
            raise ConfigError(path, f"{value!r} is out of range; allowed: {text.format(bound)}")


def check(value: object, hint: Any, path: str) -> Any:
    """Check ``value`` against a type hint; return it normalized (lists become tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(path, f"unknown value {value!r}; {did_you_mean(value, args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        return check_union(value, args, hint, path)
    if origin is tuple:
        return check_tuple(value, args, path)
    return check_scalar(value, hint, path)


def check_union(value: object, args: tuple, hint: Any, path: str) -> Any:
    if value is None and type(None) in args:
        return None
    for arm in args:
        if arm is type(None):
            continue
        try:
            return check(value, arm, path)
        except ConfigError:
            continue
    raise ConfigError(path, f"expected {describe(hint)}, got {value!r}")


def check_tuple(value: object, args: tuple, path: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        if not value:
            raise ConfigError(path, "must not be empty")
        return tuple(check(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(path, f"expected {len(args)} values, got {value!r}")
    return tuple(check(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))


def check_scalar(value: object, hint: Any, path: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        # YAML writes 2.0e7 as a float: accept integral floats for counts.
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported schema type {hint!r} at {path}")


def describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}"
        return f"a [{', '.join(describe(a) for a in args)}] pair"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    names = {int: "integer", float: "number", bool: "true/false", str: "string"}
    return names.get(hint, "null" if hint is type(None) else str(hint))


def parse_named(value: object, registry: Mapping[str, type], path: str) -> Named:
    """``"name"`` or ``{name: ..., **params}`` -> :class:`Named` with typed params."""
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, Mapping):
        if "name" not in value:
            raise ConfigError(path, f"a mapping needs a 'name' key; {did_you_mean('', registry)}")
        name, params = value["name"], {k: v for k, v in value.items() if k != "name"}
    else:
        raise ConfigError(path, f"expected a name or a mapping with 'name', got {value!r}")
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(path, f"unknown name {name!r}; {did_you_mean(name, registry)}")
    return Named(name, parse(registry[name], params, path))


def to_plain(value: Any) -> Any:
    """Dataclasses, Named options and tuples -> JSON-able dicts and lists."""
    if isinstance(value, Named):
        params = to_plain(value.params)
        return {"name": value.name, **params} if params else value.name
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
