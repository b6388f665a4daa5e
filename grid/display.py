"""How spec values read in tables and messages: ``smooth_l1(beta=0.5)``, ``l2+dropout``, flow YAML.

Pure functions of the values as written; the same strings name the settings in the Parquet
tables, the report and ``symgrid validate``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import yaml

__all__ = ["axis_options", "display", "flow", "show"]


def axis_options(axes: Mapping[str, list]) -> dict[str, list[tuple[object, object]]]:
    """Each axis's values as ``(raw, display)``: as written in the spec, and as in the tables.

    A column holds one type: when any value of an axis does not display as a number, all of that
    axis's values display as strings.
    """
    options = {}
    for axis, values in axes.items():
        shown = [display(axis, value) for value in values]
        if not all(isinstance(s, int | float) for s in shown):
            shown = [s if isinstance(s, str) else show(s) for s in shown]
        options[axis] = list(zip(values, shown, strict=True))
    return options


def display(axis: str, value: object) -> object:
    """``8`` stays 8; ``{name: smooth_l1, beta: 0.5}`` -> ``smooth_l1(beta=0.5)``;
    ``[l2, dropout]`` -> ``l2+dropout``; ``[-20, 20]`` -> ``"[-20, 20]"``."""
    if axis == "regularization" and isinstance(value, list):
        return "+".join(show(v) for v in value) or "none"
    return value if isinstance(value, int | float | str) else show(value)


def show(value: object) -> str:
    """A short one-line rendering of a YAML value: ``name(k=v)`` for named options."""
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items() if k != "name"]
        if "name" in value:
            params = ", ".join(f"{k}={show(v)}" for k, v in items)
            return f"{value['name']}({params})" if params else str(value["name"])
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    return str(value)


def flow(data: object) -> str:
    """``data`` as one line of flow-style YAML (an exclude rule a user can paste)."""
    return yaml.safe_dump(data, default_flow_style=True, sort_keys=False, width=math.inf).strip()
