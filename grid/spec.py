"""The declarative experiment grid: load, validate and expand a study spec, all before Ray starts.

A spec is a YAML mapping (grid/presets/quick.yaml is a full example)::

    name: quick                        # [A-Za-z0-9_.-]+; names the results folder
    description: what the study asks
    base: {...}                        # a trial config (trainables.config); every trial starts here
    axes:                              # crossed in the order written; keys are trial-config paths
      loss: [bce, {name: smooth_l1, beta: 0.5}]  # a value replaces the leaf or option whole
      regularization: [none, l2, [l2, dropout]]
      train: [{symbols: 1024, epochs: 60}]       # a whole section is merged into base.train
    exclude: [{loss: mse, regularization: label_smoothing}]  # a bare name matches any params
    resources: {cpu: 1, gpu: auto}     # per trial; gpu: a fraction in [0, 1], or auto
    max_failures: 2
    checkpoint: {every_epochs: 1, min_interval_s: 60}  # trainables.checkpointing (the defaults)

Every error is a :class:`SpecError` whose text is one line: the field path, the bad value and what
is allowed. Validation expands the grid and parses every kept trial config, so a spec that loads is
a spec whose trials all start; the parsed :class:`Spec` holds them (``Spec.trials``).

This module is the spec's front door; its parts live in one module per concept: ``grid.axes``
(axis paths and values), ``grid.expand`` (crossing and exclusion), ``grid.display`` (how values
read), ``grid.describe`` (cost and the ``validate`` text), ``grid.fingerprint`` (hash and
resolved YAML). Their public names are re-exported here.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from symgrid.grid.axes import Option, parse_axes, spec_error
from symgrid.grid.describe import describe, estimate
from symgrid.grid.display import axis_options, show
from symgrid.grid.expand import TrialSpec, expand_trials, parse_exclude
from symgrid.grid.fingerprint import resolved_yaml, spec_hash
from symgrid.grid.source import SpecError, load_yaml, read_text, resolve_spec_path
from symgrid.trainables import network
from symgrid.trainables.checkpointing import CheckpointPolicy
from symgrid.trainables.config import parse_trial_config as parse_trial
from symgrid.trainables.schema import ConfigError, bounded, did_you_mean, parse

__all__ = [
    "MAX_TRIALS",
    "MAX_TRIALS_WITHOUT_YES",
    "Resources",
    "Spec",
    "SpecError",
    "TrialSpec",
    "axis_options",
    "describe",
    "estimate",
    "expand",
    "load_spec",
    "parse_spec",
    "resolved_yaml",
    "spec_hash",
]

MAX_TRIALS_WITHOUT_YES = 10_000  # more needs an explicit yes: a typo in an axis can queue a week
# Even with --yes: validation checks every expanded trial (about a millisecond each) and Ray Tune's
# driver holds every trial in memory; a bigger study is several runs.
MAX_TRIALS = 50_000
TOP_KEYS = (
    "name",
    "description",
    "base",
    "axes",
    "exclude",
    "resources",
    "max_failures",
    "checkpoint",
    "metric",
)


@dataclass(frozen=True)
class Resources:
    """Ray resources of one trial; ``gpu: auto`` is 0.25 when the cluster has GPUs, else 0."""

    cpu: float = bounded(1.0, gt=0)  # logical CPUs; the torch loop uses one thread
    gpu: float | Literal["auto"] = bounded("auto", ge=0, le=1)  # fractions share one GPU


@dataclass(frozen=True)
class _Header:
    name: str = ""
    description: str = ""
    max_failures: int = bounded(2, ge=0)  # Ray retries of a crashed trial, from its checkpoint
    # The analysis's figure of merit (analysis.merit): BER is the lecture's question.
    metric: Literal["ber_ratio_map", "rate_gap"] = "ber_ratio_map"


@dataclass(frozen=True)
class Spec:
    """A validated study and its expanded trials: build it with :func:`load_spec` or
    :func:`parse_spec`."""

    name: str
    description: str
    base: dict  # the base trial config as written
    axes: dict[str, list]  # axis path -> values as written, crossed in this order
    exclude: list[dict]
    resources: Resources = field(default_factory=Resources)
    max_failures: int = 2
    checkpoint: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    metric: str = "ber_ratio_map"  # what the report ranks and tests by (analysis only)
    source: str = ""  # the YAML text, for reproducibility
    trials: tuple[TrialSpec, ...] = field(default=(), compare=False, repr=False)  # kept, in order

    @property
    def trial_count(self) -> int:
        """Trials after exclusions."""
        return len(self.trials)


def load_spec(arg: str, allow_large: bool = False) -> Spec:
    """Load and validate a spec file or preset name; raise :class:`SpecError` on any problem."""
    path = resolve_spec_path(arg)
    return parse_spec(load_yaml(path), source=read_text(path), allow_large=allow_large)


def parse_spec(raw: object, source: str = "", allow_large: bool = False) -> Spec:
    """Validate a loaded YAML tree into a :class:`Spec`, including every expanded trial.

    Parameters
    ----------
    raw : the YAML tree. source : its text, kept in ``Spec.source``.
    allow_large : allow more than ``MAX_TRIALS_WITHOUT_YES`` crossed trials (``--yes``).
    """
    try:
        return _parse_spec(network.with_class_names(raw), source, allow_large)
    except ConfigError as err:
        raise spec_error(err) from None


def _parse_spec(raw: object, source: str, allow_large: bool) -> Spec:
    if not isinstance(raw, Mapping):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}: {show(raw)[:60]}"
        raise SpecError("spec", f"expected a mapping with keys {', '.join(TOP_KEYS)}; got {got}")
    for key in raw:
        if key not in TOP_KEYS:
            raise SpecError(str(key), f"unknown key; {did_you_mean(key, TOP_KEYS)}")
    header = parse(
        _Header,
        {k: v for k, v in raw.items() if k in ("name", "description", "max_failures", "metric")},
    )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", header.name) or not header.name.strip("."):
        got = repr(header.name) if "name" in raw else "missing"
        raise SpecError("name", f"{got}; allowed: letters, digits, _ . - (not only dots)")
    base = {} if raw.get("base") is None else raw["base"]
    parse_trial(base, "base")
    options = parse_axes(raw.get("axes"))
    check_size(options, allow_large)
    exclude, rules = parse_exclude(raw.get("exclude"), options)
    resources = parse(Resources, raw.get("resources"), "resources")
    checkpoint = parse(CheckpointPolicy, raw.get("checkpoint"), "checkpoint")
    return Spec(
        name=header.name,
        description=header.description,
        base=dict(base),
        axes={axis: [o.raw for o in opts] for axis, opts in options.items()},
        exclude=exclude,
        resources=resources,
        max_failures=header.max_failures,
        checkpoint=checkpoint,
        metric=header.metric,
        source=source,
        trials=tuple(expand_trials(base, options, rules)),  # each kept trial a valid config
    )


def check_size(options: dict[str, list[Option]], allow_large: bool) -> None:
    """At most ``MAX_TRIALS_WITHOUT_YES`` crossed trials (``MAX_TRIALS`` with ``--yes``),
    counted before anything is expanded."""
    count = math.prod(len(values) for values in options.values())
    limit = MAX_TRIALS if allow_large else MAX_TRIALS_WITHOUT_YES
    if count > limit:
        sizes = " x ".join(str(len(values)) for values in options.values())
        hint = "split the study into several specs" if allow_large else "confirm with --yes"
        raise SpecError(
            "axes",
            f"{count:,} trials ({sizes}) is more than {limit:,}; shrink the axes or {hint}"
            f" (--yes allows up to {MAX_TRIALS:,})",
        )


def expand(spec: Spec) -> list[TrialSpec]:
    """The spec's kept trials (a copy: callers may change theirs), in ``itertools.product`` order
    of the axes as written; see :func:`grid.expand.expand_trials`."""
    return copy.deepcopy(list(spec.trials))
