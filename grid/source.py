"""Where specs come from: safe YAML, the shipped presets, and the one-line SpecError.

YAML is parsed by a ``yaml.SafeLoader`` subclass (no python tags) that also reads YAML 1.2 floats
such as ``1e-4``, rejects duplicate keys, and bounds the tree's size and depth.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from symgrid.trainables.schema import ConfigError, did_you_mean

__all__ = [
    "PRESETS_DIR",
    "SpecError",
    "load_yaml",
    "preset_names",
    "read_text",
    "resolve_spec_path",
]

PRESETS_DIR = Path(__file__).parent / "presets"
MAX_YAML_VALUES = 100_000  # aliases can blow a small file up into a huge tree (billion laughs)
MAX_YAML_DEPTH = 32  # a real spec nests about 5 levels


class SpecError(ConfigError):
    """A bad spec. ``str(err)`` is one line: ``path: what is wrong; what is allowed``."""


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``1e-4`` is a number, not a string) and unique keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and not key.tag.endswith(":merge"):
                if key.value in seen:
                    problem = f"duplicate key {key.value!r}"
                    raise yaml.MarkedYAMLError(problem=problem, problem_mark=key.start_mark)
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def load_yaml(text_or_path: str | Path) -> Any:
    """Parse YAML safely: a :class:`~pathlib.Path` is read, a ``str`` is the YAML text itself.

    Syntax errors, python tags (``!!python/object``), duplicate keys, and trees deeper than
    ``MAX_YAML_DEPTH`` or larger than ``MAX_YAML_VALUES`` raise :class:`SpecError` naming the line.
    """
    where = text_or_path.name if isinstance(text_or_path, Path) else "yaml"
    text = read_text(text_or_path) if isinstance(text_or_path, Path) else text_or_path
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"{where} line {mark.line + 1}, column {mark.column + 1}" if mark else where
        what = " ".join(str(p) for p in (err.problem, err.context and f"({err.context})") if p)
        if "constructor for the tag" in what:
            what += "; only plain YAML is loaded, no python tags"
        raise SpecError(at, what.replace("\n", " ")) from None
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        raise SpecError(where, str(err).replace("\n", " ")) from None
    count, stack = 0, [(data, 0)]
    while stack:  # iterative: aliases can make the tree huge or even cyclic
        item, depth = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES or depth > MAX_YAML_DEPTH:
            big = f"more than {MAX_YAML_VALUES:,} values once aliases expand"
            raise SpecError(
                where,
                big
                if depth <= MAX_YAML_DEPTH
                else f"nested more than {MAX_YAML_DEPTH} levels deep",
            )
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in children)
    return data


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(str(path), f"cannot read: {err}") from None


def preset_names() -> list[str]:
    """The shipped presets, e.g. ``["bias_variance", "lecture", "notebook", ...]``."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def resolve_spec_path(arg: str) -> Path:
    """An existing spec file, else the preset of that name."""
    path = Path(arg)
    if path.is_file():
        return path
    if arg in preset_names():
        return PRESETS_DIR / f"{arg}.yaml"
    if path.exists():
        raise SpecError(arg, "is not a file")
    raise SpecError(arg, f"no such spec file or preset; {did_you_mean(path.stem, preset_names())}")
