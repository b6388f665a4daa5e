"""Expansion: the axes crossed in the order written, minus the exclude rules, each kept trial a
checked trial config.

An exclude rule is checked once, where it is parsed, into the option indices it matches on each of
its axes (:func:`parse_exclude`); :func:`expand_trials` then only compares indices.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from symgrid.grid.axes import Option, merge, typed_value
from symgrid.grid.display import flow
from symgrid.grid.source import SpecError
from symgrid.trainables.config import config_to_dict
from symgrid.trainables.config import parse_trial_config as parse_trial
from symgrid.trainables.schema import ConfigError, did_you_mean

__all__ = ["Rule", "TrialSpec", "expand_trials", "parse_exclude"]

Rule = list[tuple[int, frozenset[int]]]  # (axis position, indices of the options it matches)


@dataclass(frozen=True)
class TrialSpec:
    """One trial: id ``t0000``..., axis path -> display value, and the resolved trial config."""

    trial_id: str
    axes: dict[str, object]
    config: dict


def parse_exclude(raw: object, options: dict[str, list[Option]]) -> tuple[list[dict], list[Rule]]:
    """The ``exclude`` list checked. Output: the rules as written, and each as a :data:`Rule`."""
    if not isinstance(raw, list | None):
        raise SpecError("exclude", f"expected a list of rules such as {{loss: mse}}, got {raw!r}")
    names, rules = list(options), []
    for i, rule in enumerate(raw or []):
        if not isinstance(rule, Mapping) or not rule:
            raise SpecError(f"exclude[{i}]", f"expected a mapping axis -> value, got {rule!r}")
        hits = []
        for axis, value in rule.items():
            path = f"exclude[{i}].{axis}"
            if axis not in options:
                allowed = did_you_mean(axis, options) if options else "the spec has no axes"
                raise SpecError(path, f"not an axis; {allowed}")
            # A valid option that is not on the axis is allowed: a rule can guard a combination
            # (mse with label_smoothing) before that value is added to the axis.
            typed = typed_value(axis, value, path)
            hits.append((names.index(axis), matching(axis, value, typed, options[axis])))
        rules.append(hits)
    return [dict(rule) for rule in raw or []], rules


def matching(axis: str, raw: object, typed: object, options: list[Option]) -> frozenset[int]:
    """Indices of the options an exclude value matches: equal settings; a bare name also matches
    that option with any parameters and, for ``regularization``, any list that contains it."""
    found = set()
    for i, option in enumerate(options):
        names = [s.name for s in option.typed] if axis == "regularization" else []
        if not isinstance(option.typed, tuple):
            names = [getattr(option.typed, "name", None)]
        if option.typed == typed or (isinstance(raw, str) and raw != "none" and raw in names):
            found.add(i)
    return frozenset(found)


def kept(options: dict[str, list[Option]], rules: list[Rule]) -> Iterator[tuple[Option, ...]]:
    """The options of every crossed trial that no exclude rule matches, in expansion order."""
    names = list(options)
    for combo in itertools.product(*(range(len(options[axis])) for axis in names)):
        if not any(all(combo[j] in hits for j, hits in rule) for rule in rules):
            yield tuple(options[axis][i] for axis, i in zip(names, combo, strict=True))


def expand_trials(
    base: Mapping, options: dict[str, list[Option]], rules: list[Rule]
) -> list[TrialSpec]:
    """Every kept trial, in ``itertools.product`` order of the axes as written, each config
    parsed (a spec that loads is a spec whose trials all start).

    Output
    ------
    trials : list of :class:`TrialSpec`, ids ``t0000``, ``t0001``... numbered after exclusion;
        ``config`` is the fully resolved trial config (``config_to_dict``) for ``run_trial``.
    """
    trials, names = [], list(options)
    for chosen in kept(options, rules):
        try:
            config = parse_trial(
                merge(base, [(a, o.raw) for a, o in zip(names, chosen, strict=True)])
            )
        except ConfigError as err:
            raise blame(base, names, chosen, err) from None
        shown = {axis: option.display for axis, option in zip(names, chosen, strict=True)}
        trials.append(TrialSpec(f"t{len(trials):04d}", shown, config_to_dict(config)))
    if not trials:
        total = math.prod(len(values) for values in options.values())
        raise SpecError("exclude", f"the rules remove all {total} trials; nothing would run")
    return trials


def blame(base: Mapping, names: list[str], chosen: tuple, err: ConfigError) -> SpecError:
    """The trial error with only the axes needed to reproduce it, and the exclude rule to add."""
    keep = list(range(len(names)))
    for j in range(len(names)):  # drop each axis whose base value gives the same error
        fewer = [k for k in keep if k != j]
        try:
            parse_trial(merge(base, [(names[k], chosen[k].raw) for k in fewer]))
        except ConfigError as other:
            keep = fewer if str(other) == str(err) else keep
    shown = ", ".join(f"{names[k]}={chosen[k].display}" for k in keep)
    rule = flow({names[k]: chosen[k].raw for k in keep})
    return SpecError(f"trial ({shown})", f"{err}; add an exclude rule such as {rule}")
