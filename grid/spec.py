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
a spec whose trials all start.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import os
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import yaml
from symgrid.grid.cost import grid_cost
from symgrid.grid.source import SpecError, load_yaml, read_text, resolve_spec_path
from symgrid.trainables.checkpointing import CheckpointPolicy
from symgrid.trainables.config import SECTIONS, Eval, config_to_dict, parse_regularization
from symgrid.trainables.config import parse_trial_config as parse_trial
from symgrid.trainables.losses import LOSSES
from symgrid.trainables.schedulers import SCHEDULERS
from symgrid.trainables.schema import (
    ConfigError,
    bounded,
    check,
    check_bounds,
    did_you_mean,
    parse,
    parse_named,
    to_plain,
    type_hints,
)

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
SECTION_TYPES = {**SECTIONS, "eval": Eval}
NAMED = {"loss": LOSSES, "scheduler": SCHEDULERS}
TOP_PATHS = (*SECTION_TYPES, "loss", "scheduler", "regularization", "seed")
AXIS_PATHS = (
    *TOP_PATHS,
    *(f"{s}.{f.name}" for s, c in SECTION_TYPES.items() for f in dataclasses.fields(c)),
)
# Axes whose values can be judged alone, in the default config: the cross-field checks that land
# on them (reversed range, supported bits, widths, bounds) do not depend on any other field.
CONTEXT_FREE = (
    "seed",
    "modulation",
    "modulation.num_bits_per_symbol",
    "train.ebno_db",
    "model.hidden",
)
# Sections whose cross-field checks look at which keys were written, not only at their values.
PRESENCE_SENSITIVE = ("model", "optimizer")


def _spec_error(err: ConfigError, old: str = "", new: str = "") -> SpecError:
    """``err`` as a :class:`SpecError`, its path prefix ``old`` replaced by ``new``."""
    text, path = str(err), err.path
    message = text[len(path) + 2 :] if path else text
    return SpecError(new + path[len(old) :] if new else path, message)


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
    """A validated study: build it with :func:`load_spec` or :func:`parse_spec`."""

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
    _trials: list = field(default_factory=list, init=False, compare=False, repr=False)

    @property
    def trial_count(self) -> int:
        """Trials after exclusions (expanded and checked once, when the spec was parsed)."""
        return len(_trials(self))


@dataclass(frozen=True)
class TrialSpec:
    """One trial: id ``t0000``..., axis path -> display value, and the resolved trial config."""

    trial_id: str
    axes: dict[str, object]
    config: dict


class _Option(NamedTuple):
    raw: object  # as written in the spec
    typed: object  # normalized for equality: Named options, sorted tuples, floats
    display: object  # a number, or a short string such as "smooth_l1(beta=0.5)" or "l2+dropout"


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
        return _parse_spec(raw, source, allow_large)
    except ConfigError as err:
        raise _spec_error(err) from None


def _parse_spec(raw: object, source: str, allow_large: bool) -> Spec:
    if not isinstance(raw, Mapping):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}: {_show(raw)[:60]}"
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
    axes = _parse_axes(raw.get("axes"), allow_large)
    spec = Spec(
        name=header.name,
        description=header.description,
        base=dict(base),
        axes=axes,
        exclude=_parse_exclude(raw.get("exclude"), axes),
        resources=parse(Resources, raw.get("resources"), "resources"),
        max_failures=header.max_failures,
        checkpoint=parse(CheckpointPolicy, raw.get("checkpoint"), "checkpoint"),
        metric=header.metric,
        source=source,
    )
    _trials(spec)  # every kept trial must be a valid trial config
    return spec


def _parse_axes(raw: object, allow_large: bool) -> dict[str, list]:
    if not isinstance(raw, Mapping | None):
        raise SpecError("axes", f"expected a mapping axis path -> list of values, got {raw!r}")
    axes = dict(raw or {})
    for axis, values in axes.items():
        _check_axis_path(axis, list(axes))
        if not isinstance(values, list) or not values:
            got = (
                "empty axis" if values == [] else f"expected a list of values, got {_show(values)}"
            )
            raise SpecError(f"axes.{axis}", f"{got}; give at least one value")
        typed = [_typed(axis, value, f"axes.{axis}[{i}]") for i, value in enumerate(values)]
        for i, value in enumerate(typed):
            if value in typed[:i]:
                raise SpecError(f"axes.{axis}[{i}]", f"repeats axes.{axis}[{typed.index(value)}]")
    count = math.prod(len(values) for values in axes.values())  # before expanding anything
    limit = MAX_TRIALS if allow_large else MAX_TRIALS_WITHOUT_YES
    if count > limit:
        sizes = " x ".join(str(len(values)) for values in axes.values())
        hint = "split the study into several specs" if allow_large else "confirm with --yes"
        raise SpecError(
            "axes",
            f"{count:,} trials ({sizes}) is more than {limit:,}; shrink the axes or {hint}"
            f" (--yes allows up to {MAX_TRIALS:,})",
        )
    return axes


def _check_axis_path(axis: object, written: list) -> None:
    head, _, leaf = str(axis).partition(".")
    if axis not in AXIS_PATHS and leaf and head in SECTION_TYPES:
        allowed = did_you_mean(leaf, [f.name for f in dataclasses.fields(SECTION_TYPES[head])])
        raise SpecError(f"axes.{axis}", f"not a field of {head}; {allowed}")
    if axis not in AXIS_PATHS:
        close = difflib.get_close_matches(str(axis), AXIS_PATHS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"{', '.join(sorted(TOP_PATHS))}, or section.field such as train.epochs"
        raise SpecError(f"axes.{axis}", f"not a trial-config path; allowed: {allowed}{hint}")
    for other in written[: written.index(axis)]:
        if axis.startswith(f"{other}.") or other.startswith(f"{axis}."):
            raise SpecError(f"axes.{axis}", f"overlaps axis {other!r}; vary it in one axis only")


def _typed(axis: str, value: object, path: str) -> object:
    """Check one axis value alone; return it normalized so that equal settings compare equal.

    Values that passed are remembered: a spec checks each axis value up to three times (its
    axis, its options, its exclude rules), and a context-free one parses a whole trial config.
    """
    key = (axis, json.dumps(value, sort_keys=True, default=str))
    if key not in _CHECKED:
        if len(_CHECKED) > MAX_TRIALS:  # one study's values; a long-lived process starts over
            _CHECKED.clear()
        _CHECKED[key] = _check_value(axis, value, path)
    return _CHECKED[key]


_CHECKED: dict[tuple[str, str], object] = {}


def _check_value(axis: str, value: object, path: str) -> object:
    head, _, leaf = axis.partition(".")
    if leaf:
        cls = SECTION_TYPES[head]
        typed = check(value, type_hints(cls)[leaf], path)
        check_bounds(typed, {f.name: f.metadata for f in dataclasses.fields(cls)}[leaf], path)
    elif head in NAMED:
        typed = parse_named(value, NAMED[head], path)
    elif head == "regularization":
        typed = tuple(sorted(parse_regularization(value, path), key=lambda s: s.name))
    elif head == "seed":
        typed = check(value, int, path)
    else:  # a whole section: the keys written, since they are merged over the base section
        parsed = parse(SECTION_TYPES[head], value, path)
        typed = tuple((key, getattr(parsed, key)) for key in sorted(value))
    if axis in CONTEXT_FREE:
        try:
            parse_trial(_merge({}, [(axis, value)]))
        except ConfigError as err:
            if err.path == axis or err.path.startswith((f"{axis}.", f"{axis}[")):
                raise _spec_error(err, axis, path) from None
    return typed


def _parse_exclude(raw: object, axes: dict[str, list]) -> list[dict]:
    if not isinstance(raw, list | None):
        raise SpecError("exclude", f"expected a list of rules such as {{loss: mse}}, got {raw!r}")
    for i, rule in enumerate(raw or []):
        if not isinstance(rule, Mapping) or not rule:
            raise SpecError(f"exclude[{i}]", f"expected a mapping axis -> value, got {rule!r}")
        for axis, value in rule.items():
            path = f"exclude[{i}].{axis}"
            if axis not in axes:
                allowed = did_you_mean(axis, axes) if axes else "the spec has no axes"
                raise SpecError(path, f"not an axis; {allowed}")
            # A valid option that is not on the axis is allowed: a rule can guard a combination
            # (mse with label_smoothing) before that value is added to the axis.
            _typed(axis, value, path)
    return [dict(rule) for rule in raw or []]


def _matching(axis: str, raw: object, typed: object, options: list[_Option]) -> set[int]:
    """Indices of the options an exclude value matches: equal settings; a bare name also matches
    that option with any parameters and, for ``regularization``, any list that contains it."""
    found = set()
    for i, option in enumerate(options):
        names = [s.name for s in option.typed] if axis == "regularization" else []
        if not isinstance(option.typed, tuple):
            names = [getattr(option.typed, "name", None)]
        if option.typed == typed or (isinstance(raw, str) and raw != "none" and raw in names):
            found.add(i)
    return found


def axis_options(spec: Spec) -> dict[str, list[tuple[object, object]]]:
    """Each axis's values as ``(raw, display)``: as written in the spec, and as in the tables."""
    return {a: [(o.raw, o.display) for o in opts] for a, opts in _options(spec.axes).items()}


def _options(axes: dict[str, list]) -> dict[str, list[_Option]]:
    options = {}
    for axis, values in axes.items():
        shown = [_display(axis, value) for value in values]
        if not all(isinstance(s, int | float) for s in shown):
            shown = [s if isinstance(s, str) else _show(s) for s in shown]  # one type per column
        typed = [_typed(axis, value, f"axes.{axis}[{i}]") for i, value in enumerate(values)]
        options[axis] = [_Option(*parts) for parts in zip(values, typed, shown, strict=True)]
    return options


def _kept(spec: Spec, options: dict[str, list[_Option]]) -> Iterator[tuple[_Option, ...]]:
    """The options of every crossed trial that no exclude rule matches, in expansion order."""
    names = list(spec.axes)
    rules = [
        [(names.index(a), _matching(a, v, _typed(a, v, ""), options[a])) for a, v in r.items()]
        for r in spec.exclude
    ]
    for combo in itertools.product(*(range(len(options[axis])) for axis in names)):
        if not any(all(combo[j] in hits for j, hits in rule) for rule in rules):
            yield tuple(options[axis][i] for axis, i in zip(names, combo, strict=True))


def _merge(base: Mapping, updates: list[tuple[str, object]]) -> dict:
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


def expand(spec: Spec) -> list[TrialSpec]:
    """Every kept trial, in ``itertools.product`` order of the axes as written.

    Output
    ------
    trials : list of :class:`TrialSpec`, ids ``t0000``, ``t0001``... numbered after exclusion;
        ``config`` is the fully resolved trial config (``config_to_dict``) for ``run_trial``.
    """
    return copy.deepcopy(_trials(spec))


def _trials(spec: Spec) -> list[TrialSpec]:
    """The kept trials, parsed once per spec (parsing thousands of configs takes seconds)."""
    if spec._trials:
        return spec._trials
    trials, names = [], list(spec.axes)
    for chosen in _kept(spec, _options(spec.axes)):
        try:
            config = parse_trial(
                _merge(spec.base, [(a, o.raw) for a, o in zip(names, chosen, strict=True)])
            )
        except ConfigError as err:
            raise _blame(spec, names, chosen, err) from None
        shown = {axis: option.display for axis, option in zip(names, chosen, strict=True)}
        trials.append(TrialSpec(f"t{len(trials):04d}", shown, config_to_dict(config)))
    if not trials:
        total = math.prod(len(values) for values in spec.axes.values())
        raise SpecError("exclude", f"the rules remove all {total} trials; nothing would run")
    spec._trials.extend(trials)
    return trials


def _blame(spec: Spec, names: list[str], chosen: tuple, err: ConfigError) -> SpecError:
    """The trial error with only the axes needed to reproduce it, and the exclude rule to add."""
    keep = list(range(len(names)))
    for j in range(len(names)):  # drop each axis whose base value gives the same error
        fewer = [k for k in keep if k != j]
        try:
            parse_trial(_merge(spec.base, [(names[k], chosen[k].raw) for k in fewer]))
        except ConfigError as other:
            keep = fewer if str(other) == str(err) else keep
    shown = ", ".join(f"{names[k]}={chosen[k].display}" for k in keep)
    rule = _flow({names[k]: chosen[k].raw for k in keep})
    return SpecError(f"trial ({shown})", f"{err}; add an exclude rule such as {rule}")


def _display(axis: str, value: object) -> object:
    """``8`` stays 8; ``{name: smooth_l1, beta: 0.5}`` -> ``smooth_l1(beta=0.5)``;
    ``[l2, dropout]`` -> ``l2+dropout``; ``[-20, 20]`` -> ``"[-20, 20]"``."""
    if axis == "regularization" and isinstance(value, list):
        return "+".join(_show(v) for v in value) or "none"
    return value if isinstance(value, int | float | str) else _show(value)


def _show(value: object) -> str:
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items() if k != "name"]
        if "name" in value:
            params = ", ".join(f"{k}={_show(v)}" for k, v in items)
            return f"{value['name']}({params})" if params else str(value["name"])
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    return str(value)


def _flow(data: object) -> str:
    return yaml.safe_dump(data, default_flow_style=True, sort_keys=False, width=math.inf).strip()


def estimate(spec: Spec, trials: list[TrialSpec], slots: int | None = None) -> dict:
    """Upper bounds on the work of ``trials`` (early stopping ends some sooner).

    Output
    ------
    dict: ``trials``; ``epochs`` (summed); ``train_symbols`` (sum of epochs x train.symbols);
    ``eval_points`` (Eb/N0 points, summed); from measured rates (``grid.cost``):
    ``train_core_h``, ``eval_core_h``, and ``wall_s`` with ``slots`` trials at once (default:
    this machine's cores over the CPUs a trial asks for).
    """
    train = [t.config["train"] for t in trials]
    slots = slots or max(1, int((os.cpu_count() or 1) // spec.resources.cpu))
    return {
        "trials": len(trials),
        "epochs": sum(t["epochs"] for t in train),
        "train_symbols": sum(t["epochs"] * t["symbols"] for t in train),
        "eval_points": sum(len(t.config["eval"]["ebno_db"]) for t in trials),
        **grid_cost([t.config for t in trials], slots),
    }


def describe(spec: Spec, slots: int | None = None) -> str:
    """The text ``symgrid validate`` prints: axes, trial count, resources and cost."""
    trials, total = _trials(spec), math.prod(len(values) for values in spec.axes.values())
    cost = estimate(spec, trials, slots)
    lines = textwrap.wrap(f"{spec.name}: {spec.description}", 100, subsequent_indent="  ")
    lines.append("axes (crossed in this order):" if spec.axes else "axes: none (the base alone)")
    for axis, options in _options(spec.axes).items():
        lines.append(f"  {axis:<24} {', '.join(str(o.display) for o in options)}")
    lines += [f"exclude {_flow(rule)}" for rule in spec.exclude]
    lines += [
        f"trials: {len(trials):,} ({total:,} crossed, {total - len(trials):,} excluded)",
        f"resources per trial: cpu {spec.resources.cpu:g}, gpu {spec.resources.gpu}; "
        f"max_failures {spec.max_failures}",
        f"work: {cost['epochs']:,} epochs, {cost['train_symbols']:.3g} training symbols, "
        f"{cost['eval_points']:,} BER points",
        f"cost: ~{cost['train_core_h']:.2g} core-hours training + {cost['eval_core_h']:.2g} "
        f"evaluation; ~{clock(cost['wall_s'])} wall with {cost['slots']} trials at once "
        "(rates measured on a 2-core CPU machine: grid/rates.json)",
    ]
    return "\n".join(lines)


def clock(seconds: float) -> str:
    """``3h05m``, ``12m30s`` or ``45s``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _plain(spec: Spec) -> dict:
    """The spec as data, its base resolved, except a model or optimizer section whose name an
    axis varies: a resolved default could clash with the other name (sgd's momentum with adam)."""
    base = config_to_dict(parse_trial(spec.base))
    for section in PRESENCE_SENSITIVE:
        if section in spec.axes or f"{section}.name" in spec.axes:
            base[section] = dict(spec.base.get(section) or {})
    values = {**{k: getattr(spec, k) for k in TOP_KEYS}, "base": base}
    sections = {k: to_plain(getattr(spec, k)) for k in ("resources", "checkpoint")}
    return {**values, **sections}


def spec_hash(spec: Spec) -> str:
    """First 12 hex digits of the sha256 of the canonical JSON of the parsed spec; the base enters
    resolved, so a spec and its :func:`resolved_yaml` hash the same."""
    plain = {**_plain(spec), "axes": list(spec.axes.items())}  # axis order orders the trials
    del plain["metric"]  # the analysis's choice, not the trials': same trials, same hash
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolved_yaml(spec: Spec) -> str:
    """The spec with its base defaults written out, for ``DIR/spec.yaml``; loads to the same
    trials."""
    header = f"# {spec.name}: base resolved by symgrid; spec_hash {spec_hash(spec)}\n"
    body = yaml.safe_dump(_plain(spec), default_flow_style=None, sort_keys=False, width=100)
    return header + body
