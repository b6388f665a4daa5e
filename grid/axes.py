"""Axis paths and axis values: which trial-config paths a spec may vary, and each value checked.

Every value is checked once, where it is written (an axis or an exclude rule), and returned as an
:class:`Option`: as written, normalized for equality, and as displayed in the tables.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import NamedTuple

from symgrid.grid.display import axis_options, show
from symgrid.grid.source import SpecError
from symgrid.trainables.config import (
    OPEN,
    SECTIONS,
    Eval,
    check_leaf,
    parse_regularization,
    parse_section,
)
from symgrid.trainables.config import parse_trial_config as parse_trial
from symgrid.trainables.losses import LOSSES
from symgrid.trainables.schedulers import SCHEDULERS
from symgrid.trainables.schema import ConfigError, check, did_you_mean, parse_named

__all__ = [
    "AXIS_PATHS",
    "SECTION_TYPES",
    "Option",
    "merge",
    "parse_axes",
    "spec_error",
    "typed_value",
]

SECTION_TYPES = {**SECTIONS, "eval": Eval}
NAMED = {"loss": LOSSES, "scheduler": SCHEDULERS}
TOP_PATHS = (*SECTION_TYPES, "loss", "scheduler", "regularization", "seed")
AXIS_PATHS = (
    *TOP_PATHS,
    *(f"{s}.{f.name}" for s, c in SECTION_TYPES.items() for f in dataclasses.fields(c)),
)  # and model.<argument>, optimizer.<argument>: keyword arguments (trainables.config.OPEN)
# Axes whose values can be judged alone, in the default config: the cross-field checks that land
# on them (reversed range, supported bits, widths, bounds) do not depend on any other field.
CONTEXT_FREE = (
    "seed",
    "modulation",
    "modulation.num_bits_per_symbol",
    "train.ebno_db",
    "model.hidden",
)


class Option(NamedTuple):
    """One value of one axis."""

    raw: object  # as written in the spec
    typed: object  # normalized for equality: Named options, sorted tuples, floats
    display: object  # a number, or a short string such as "smooth_l1(beta=0.5)" or "l2+dropout"


def spec_error(err: ConfigError, old: str = "", new: str = "") -> SpecError:
    """``err`` as a :class:`SpecError`, its path prefix ``old`` replaced by ``new``."""
    text, path = str(err), err.path
    message = text[len(path) + 2 :] if path else text
    return SpecError(new + path[len(old) :] if new else path, message)


def parse_axes(raw: object) -> dict[str, list[Option]]:
    """The ``axes`` mapping checked: known, non-overlapping paths; non-empty lists of valid,
    distinct values. Output: axis path -> its options, in the order written."""
    if not isinstance(raw, Mapping | None):
        raise SpecError("axes", f"expected a mapping axis path -> list of values, got {raw!r}")
    axes, options = dict(raw or {}), {}
    for axis, values in axes.items():
        check_axis_path(axis, list(axes))
        if not isinstance(values, list) or not values:
            got = "empty axis" if values == [] else f"expected a list of values, got {show(values)}"
            raise SpecError(f"axes.{axis}", f"{got}; give at least one value")
        shown = axis_options({axis: values})[axis]
        typed = [typed_value(axis, raw, f"axes.{axis}[{i}]") for i, (raw, _) in enumerate(shown)]
        for i, value in enumerate(typed):
            if value in typed[:i]:
                raise SpecError(f"axes.{axis}[{i}]", f"repeats axes.{axis}[{typed.index(value)}]")
        options[axis] = [Option(r, t, d) for (r, d), t in zip(shown, typed, strict=True)]
    return options


def check_axis_path(axis: object, written: list) -> None:
    """A known trial-config path that no earlier axis contains or is contained in."""
    head, _, leaf = str(axis).partition(".")
    if head in OPEN and leaf.isidentifier():
        pass  # a keyword argument of the network or the optimizer: checked with each trial
    elif axis not in AXIS_PATHS and leaf and head in SECTION_TYPES:
        allowed = did_you_mean(leaf, [f.name for f in dataclasses.fields(SECTION_TYPES[head])])
        raise SpecError(f"axes.{axis}", f"not a field of {head}; {allowed}")
    elif axis not in AXIS_PATHS:
        close = difflib.get_close_matches(str(axis), AXIS_PATHS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"{', '.join(sorted(TOP_PATHS))}, or section.field such as train.epochs"
        raise SpecError(f"axes.{axis}", f"not a trial-config path; allowed: {allowed}{hint}")
    for other in written[: written.index(axis)]:
        if axis.startswith(f"{other}.") or other.startswith(f"{axis}."):
            raise SpecError(f"axes.{axis}", f"overlaps axis {other!r}; vary it in one axis only")


def typed_value(axis: str, value: object, path: str) -> object:
    """Check one axis value alone; return it normalized so that equal settings compare equal."""
    head, _, leaf = axis.partition(".")
    if leaf:
        typed = check_leaf(head, leaf, value, path)
    elif head in NAMED:
        typed = parse_named(value, NAMED[head], path)
    elif head == "regularization":
        typed = tuple(sorted(parse_regularization(value, path), key=lambda s: s.name))
    elif head == "seed":
        typed = check(value, int, path)
    else:  # a whole section: the keys written, since they are merged over the base section
        parsed = parse_section(head, value, path)
        kwargs = dict(getattr(parsed, "kwargs", ()))
        typed = tuple((key, kwargs.get(key, getattr(parsed, key, None))) for key in sorted(value))
    if axis in CONTEXT_FREE:
        try:
            parse_trial(merge({}, [(axis, value)]))
        except ConfigError as err:
            if err.path == axis or err.path.startswith((f"{axis}.", f"{axis}[")):
                raise spec_error(err, axis, path) from None
    return typed


def merge(base: Mapping, updates: list[tuple[str, object]]) -> dict:
    """``base`` with each ``(axis path, value)`` applied: a leaf or named option is replaced
    whole, a section mapping is merged into the base section."""
    merged = dict(base)
    for axis, value in updates:
        head, _, leaf = axis.partition(".")
        if leaf or head in SECTION_TYPES:
            merged[head] = {**(merged.get(head) or {}), **({leaf: value} if leaf else value)}
        else:
            merged[head] = value
    return merged
