"""The declarative experiment grid: load, validate and expand a study spec, before Ray starts.

A spec is a YAML mapping::

    name: quick                       # [A-Za-z0-9_.-]+, names the results folder
    description: what the study asks
    base: {...}                       # a trial config (trainables.config); every trial starts here
    axes:                             # crossed in the order written; any trial-config path
      scheduler: [none, step, cosine] # a name, or a mapping {name: step, gamma: 0.5}
      regularization: [none, l2, [l2, dropout]]
      train.ebno_db: [0, 8]           # a section field replaces that leaf
      train: [{symbols: 1024, epochs: 60}, {symbols: 16384, epochs: 10}]  # merged into base.train
    exclude:                          # drop the trials that match every entry of a rule
      - {loss: mse, regularization: label_smoothing}
    resources: {cpu: 1, gpu: auto}    # per trial; gpu: a fraction in [0, 1], or auto
    max_failures: 2

Every error is a :class:`SpecError` whose text is one line: the field path, the bad value and what
is allowed. Validation expands the grid and checks every trial config with
:func:`trainables.config.parse_trial_config`, so a spec that loads is a spec whose trials all start.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml

from trainables.config import (
    SECTIONS,
    Eval,
    config_to_dict,
    parse_regularization,
    parse_trial_config,
)
from trainables.losses import LOSSES
from trainables.schedulers import SCHEDULERS
from trainables.schema import (
    ConfigError,
    bounded,
    check,
    check_bounds,
    did_you_mean,
    parse,
    parse_named,
    to_plain,
)

PRESETS_DIR = Path(__file__).parent / "presets"
MAX_TRIALS_WITHOUT_YES = 10_000  # more needs an explicit yes: a typo in an axis can queue a week
MAX_YAML_VALUES = 1_000_000  # aliases can expand a small file into a huge tree (billion laughs)
MAX_YAML_DEPTH = 32  # a real spec nests about 5 levels
SYMBOLS_PER_S = 8e6  # training speed of one core (DESIGN.md: 7-9 M symbols/s), for estimates
TOP_KEYS = ("name", "description", "base", "axes", "exclude", "resources", "max_failures")
SECTION_TYPES = {**SECTIONS, "eval": Eval}
NAMED = {"loss": LOSSES, "scheduler": SCHEDULERS}
AXIS_PATHS = (
    *SECTION_TYPES,
    "loss",
    "scheduler",
    "regularization",
    "seed",
    *(f"{s}.{f.name}" for s, cls in SECTION_TYPES.items() for f in dataclasses.fields(cls)),
)
# Axes whose values can be judged alone, in the default config: the cross-field checks that land
# on them (reversed range, supported bits, widths) do not depend on any other field.
CONTEXT_FREE = (
    "seed",
    "modulation",
    "modulation.num_bits_per_symbol",
    "train.ebno_db",
    "model.hidden",
)
# Sections whose cross-field checks look at which keys were written, not only at their values.
PRESENCE_SENSITIVE = ("model", "optimizer")


class SpecError(ConfigError):
    """A bad spec. ``str(err)`` is one line: ``path: what is wrong; what is allowed``."""


def _as_spec_error(err: ConfigError) -> SpecError:
    if isinstance(err, SpecError):
        return err
    text = str(err)
    return SpecError(err.path, text[len(err.path) + 2 :] if err.path else text)


# ---------------------------------------------------------------------------------------------
# YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``1e-4`` is a number, not a string) and unique keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and not key_node.tag.endswith(":merge"):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def load_yaml(text_or_path: str | Path) -> Any:
    """Parse YAML safely; a :class:`~pathlib.Path` is read, a ``str`` is the YAML text itself.

    Output
    ------
    data : the plain mapping/list/scalar tree. Python tags (``!!python/object``), syntax errors,
        duplicate keys and trees deeper than ``MAX_YAML_DEPTH`` or larger than
        ``MAX_YAML_VALUES`` raise :class:`SpecError` with the line number.
    """
    where = ""
    text = text_or_path
    if isinstance(text_or_path, Path):
        where = f"{text_or_path.name} "
        text = _read(text_or_path)
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"{where}line {mark.line + 1}, column {mark.column + 1}" if mark else f"{where}yaml"
        what = " ".join(str(p) for p in (err.problem, err.context and f"({err.context})") if p)
        if "constructor for the tag" in what:
            what += "; only plain YAML is loaded, no python tags"
        raise SpecError(at, what.replace("\n", " ")) from None
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        raise SpecError(f"{where}yaml".strip(), str(err).replace("\n", " ")) from None
    _check_size(data, f"{where}yaml".strip())
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(str(path), f"cannot read: {err}") from None


def _check_size(data: object, where: str) -> None:
    count, stack = 0, [(data, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise SpecError(where, f"more than {MAX_YAML_VALUES:,} values once aliases expand")
        if depth > MAX_YAML_DEPTH:
            raise SpecError(where, f"nested more than {MAX_YAML_DEPTH} levels deep")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in children)


# ---------------------------------------------------------------------------------------------
# The spec


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
    source: str = ""  # the YAML text, for reproducibility

    @property
    def trial_count(self) -> int:
        """Trials after exclusions."""
        return sum(1 for _ in _kept(self, _options(self)))


@dataclass(frozen=True)
class TrialSpec:
    """One expanded trial: ``t0000``..., axis path -> display value, and the resolved config."""

    trial_id: str
    axes: dict[str, object]
    config: dict


class _Option(NamedTuple):
    raw: object  # as written in the spec
    typed: object  # normalized, for equality: Named options, tuples, floats
    display: object  # a number, or a short string such as "smooth_l1(beta=0.5)" or "l2+dropout"


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


def load_spec(arg: str, allow_large: bool = False) -> Spec:
    """Load and validate a spec file or preset name; raise :class:`SpecError` on any problem."""
    path = resolve_spec_path(arg)
    text = _read(path)
    return parse_spec(load_yaml(path), source=text, allow_large=allow_large)


def parse_spec(raw: object, source: str = "", allow_large: bool = False) -> Spec:
    """Validate a loaded YAML tree into a :class:`Spec`, including every expanded trial.

    Parameters
    ----------
    raw : the YAML tree. source : the YAML text, kept in ``Spec.source``.
    allow_large : allow more than ``MAX_TRIALS_WITHOUT_YES`` crossed trials.
    """
    try:
        return _parse_spec(raw, source, allow_large)
    except ConfigError as err:
        raise _as_spec_error(err) from None


def _parse_spec(raw: object, source: str, allow_large: bool) -> Spec:
    if not isinstance(raw, Mapping):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}: {_show(raw)[:60]}"
        raise SpecError("spec", f"expected a mapping with keys {', '.join(TOP_KEYS)}; got {got}")
    for key in raw:
        if key not in TOP_KEYS:
            raise SpecError(str(key), f"unknown key; {did_you_mean(key, TOP_KEYS)}")
    header = parse(
        _Header, {k: v for k, v in raw.items() if k in ("name", "description", "max_failures")}
    )
    if (
        "name" not in raw
        or not re.fullmatch(r"[A-Za-z0-9_.-]+", header.name)
        or not header.name.strip(".")
    ):
        raise SpecError(
            "name", f"{raw.get('name')!r}; allowed: letters, digits, _ . - (not only dots)"
        )
    base = raw.get("base") or {}
    parse_trial_config(base, "base")
    axes = _parse_axes(raw.get("axes"), allow_large)
    spec = Spec(
        name=header.name,
        description=header.description,
        base=dict(base),
        axes=axes,
        exclude=_parse_exclude(raw.get("exclude"), axes),
        resources=parse(Resources, raw.get("resources"), "resources"),
        max_failures=header.max_failures,
        source=source,
    )
    _trials(spec)  # every kept trial must be a valid trial config
    return spec


# ---------------------------------------------------------------------------------------------
# Axes and exclude rules


def _parse_axes(raw: object, allow_large: bool) -> dict[str, list]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError("axes", f"expected a mapping of axis path -> list of values, got {raw!r}")
    for axis, values in raw.items():
        _check_axis_path(axis, list(raw))
        if not isinstance(values, list):
            raise SpecError(f"axes.{axis}", f"expected a list of values, got {_show(values)}")
        if not values:
            raise SpecError(f"axes.{axis}", "empty axis; give at least one value")
        typed = [_typed(axis, value, f"axes.{axis}[{i}]") for i, value in enumerate(values)]
        for i, value in enumerate(typed):
            if value in typed[:i]:
                first = typed.index(value)
                raise SpecError(f"axes.{axis}[{i}]", f"repeats axes.{axis}[{first}]")
    count = math.prod(len(values) for values in raw.values())
    if count > MAX_TRIALS_WITHOUT_YES and not allow_large:
        sizes = " x ".join(str(len(values)) for values in raw.values())
        raise SpecError(
            "axes",
            f"{count:,} trials ({sizes}) is more than {MAX_TRIALS_WITHOUT_YES:,}; "
            "shrink the axes or confirm with --yes (allow_large)",
        )
    return {str(axis): list(values) for axis, values in raw.items()}


def _check_axis_path(axis: object, written: list) -> None:
    if axis not in AXIS_PATHS:
        head, _, leaf = str(axis).partition(".")
        if leaf and head in SECTION_TYPES:
            allowed = did_you_mean(leaf, [f.name for f in dataclasses.fields(SECTION_TYPES[head])])
            raise SpecError(f"axes.{axis}", f"not a field of {head}; {allowed}")
        raise SpecError(
            f"axes.{axis}", f"not a trial-config path; {did_you_mean(axis, AXIS_PATHS)}"
        )
    for other in written[: written.index(axis)]:
        if str(axis).startswith(f"{other}.") or str(other).startswith(f"{axis}."):
            raise SpecError(f"axes.{axis}", f"overlaps axis {other!r}; vary it in one axis only")


def _typed(axis: str, value: object, path: str) -> object:
    """Check one axis value alone; return it normalized so that equal settings compare equal."""
    head, _, leaf = axis.partition(".")
    if leaf:
        cls = SECTION_TYPES[head]
        bounds = {f.name: f.metadata for f in dataclasses.fields(cls)}[leaf]
        typed = check(value, typing.get_type_hints(cls)[leaf], path)
        check_bounds(typed, bounds, path)
    elif head in NAMED:
        typed = parse_named(value, NAMED[head], path)
    elif head == "regularization":
        typed = tuple(sorted(parse_regularization(value, path), key=lambda s: s.name))
    elif head == "seed":
        typed = check(value, int, path)
    else:  # a whole section: the keys written, merged over base
        parsed = parse(SECTION_TYPES[head], value, path)
        typed = tuple((key, getattr(parsed, key)) for key in sorted(value))
    if axis in CONTEXT_FREE:
        try:
            parse_trial_config(_merge({}, [(axis, value)]))
        except ConfigError as err:
            if err.path == axis or err.path.startswith((f"{axis}.", f"{axis}[")):
                raise SpecError(
                    path + err.path[len(axis) :], str(err)[len(err.path) + 2 :]
                ) from None
    return typed


def _parse_exclude(raw: object, axes: dict[str, list]) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SpecError("exclude", f"expected a list of rules such as {{loss: mse}}, got {raw!r}")
    options = _options_of(axes)
    for i, rule in enumerate(raw):
        if not isinstance(rule, Mapping) or not rule:
            raise SpecError(f"exclude[{i}]", f"expected a mapping axis -> value, got {rule!r}")
        for axis, value in rule.items():
            path = f"exclude[{i}].{axis}"
            if axis not in axes:
                allowed = did_you_mean(axis, axes) if axes else "the spec has no axes"
                raise SpecError(path, f"not an axis; {allowed}")
            if not _matching(axis, value, _typed(axis, value, path), options[axis]):
                shown = [str(option.display) for option in options[axis]]
                raise SpecError(
                    path, f"{_show(value)} is not on this axis; {did_you_mean(_show(value), shown)}"
                )
    return [dict(rule) for rule in raw]


def _matching(axis: str, raw: object, typed: object, options: list[_Option]) -> set[int]:
    """Indices of the axis options an exclude value matches.

    Equal settings match; a bare name also matches that option with any parameters and, for
    ``regularization``, any list that contains it.
    """
    found = set()
    for i, option in enumerate(options):
        names = [s.name for s in option.typed] if axis == "regularization" else []
        bare = isinstance(raw, str) and raw != "none"
        if option.typed == typed or (bare and (raw in names or _name(option.typed) == raw)):
            found.add(i)
    return found


def _name(typed: object) -> str | None:
    return getattr(typed, "name", None) if not isinstance(typed, tuple) else None


# ---------------------------------------------------------------------------------------------
# Expansion


def _options_of(axes: dict[str, list]) -> dict[str, list[_Option]]:
    options = {}
    for axis, values in axes.items():
        shown = [_display(axis, value) for value in values]
        if not all(isinstance(s, (int, float)) for s in shown):
            shown = [s if isinstance(s, str) else _show(s) for s in shown]  # one type per column
        typed = [_typed(axis, value, f"axes.{axis}[{i}]") for i, value in enumerate(values)]
        options[axis] = [_Option(*parts) for parts in zip(values, typed, shown, strict=True)]
    return options


def _options(spec: Spec) -> dict[str, list[_Option]]:
    return _options_of(spec.axes)


def _kept(spec: Spec, options: dict[str, list[_Option]]) -> Iterator[tuple[int, ...]]:
    """Option indices of every crossed trial that no exclude rule matches, in expansion order."""
    names = list(spec.axes)
    rules = [
        [
            (names.index(axis), _matching(axis, value, _typed(axis, value, ""), options[axis]))
            for axis, value in rule.items()
        ]
        for rule in spec.exclude
    ]
    for combo in itertools.product(*(range(len(options[axis])) for axis in names)):
        if not any(all(combo[j] in hits for j, hits in rule) for rule in rules):
            yield combo


def _merge(base: Mapping, updates: list[tuple[str, object]]) -> dict:
    """``base`` with each ``(axis path, value)`` applied: a leaf or option is replaced whole, a
    section mapping is merged into the base section."""
    merged = dict(base)
    for axis, value in updates:
        head, _, leaf = axis.partition(".")
        if leaf:
            merged[head] = {**(merged.get(head) or {}), leaf: value}
        elif head in SECTION_TYPES:
            merged[head] = {**(merged.get(head) or {}), **value}
        else:
            merged[head] = value
    return merged


def expand(spec: Spec) -> list[TrialSpec]:
    """Every trial of the grid, excluded ones dropped, with ids ``t0000``, ``t0001``... in order.

    Output
    ------
    trials : list of :class:`TrialSpec`; ``config`` is the fully resolved trial config
        (``config_to_dict``), ready for ``trainables.trial.run_trial``.
    """
    return copy.deepcopy(_trials(spec))


def _trials(spec: Spec) -> list[TrialSpec]:
    options, names = _options(spec), list(spec.axes)
    trials = []
    for combo in _kept(spec, options):
        chosen = [options[axis][i] for axis, i in zip(names, combo, strict=True)]
        merged = _merge(spec.base, [(axis, o.raw) for axis, o in zip(names, chosen, strict=True)])
        try:
            config = config_to_dict(parse_trial_config(merged))
        except ConfigError as err:
            raise _blame(spec, names, chosen, err) from None
        shown = {axis: o.display for axis, o in zip(names, chosen, strict=True)}
        trials.append(TrialSpec(f"t{len(trials):04d}", shown, config))
    if not trials:
        total = math.prod(len(values) for values in spec.axes.values())
        raise SpecError("exclude", f"the rules remove all {total} trials; nothing would run")
    return trials


def _blame(spec: Spec, names: list[str], chosen: list[_Option], err: ConfigError) -> SpecError:
    """The trial error, naming only the axes needed to reproduce it, and the exclude rule to add."""
    keep = list(range(len(names)))
    for j in range(len(names)):
        fewer = [k for k in keep if k != j]
        try:
            parse_trial_config(_merge(spec.base, [(names[k], chosen[k].raw) for k in fewer]))
        except ConfigError as other:
            if str(other) == str(err):
                keep = fewer
    shown = ", ".join(f"{names[k]}={chosen[k].display}" for k in keep)
    rule = yaml.safe_dump(
        {names[k]: chosen[k].raw for k in keep}, default_flow_style=True, width=1e9
    )
    return SpecError(f"trial ({shown})", f"{err}; add an exclude rule such as {rule.strip()}")


def _display(axis: str, value: object) -> object:
    """``8`` stays 8; ``{name: smooth_l1, beta: 0.5}`` -> ``smooth_l1(beta=0.5)``;
    ``[l2, dropout]`` -> ``l2+dropout``; ``[-20, 20]`` -> ``"[-20, 20]"``."""
    if axis == "regularization" and isinstance(value, list):
        return "+".join(_show(v) for v in value) or "none"
    if isinstance(value, (int, float, bool, str)):
        return value
    return _show(value)


def _show(value: object) -> str:
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items() if k != "name"]
        if "name" in value:
            params = ", ".join(f"{k}={_show(v)}" for k, v in items)
            return f"{value['name']}({params})" if params else str(value["name"])
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return "none" if value is None else str(value).lower()
    return str(value)


# ---------------------------------------------------------------------------------------------
# Reports and reproducibility


def estimate(spec: Spec, trials: list[TrialSpec]) -> dict:
    """Upper bounds on the work (early stopping ends trials sooner).

    Output
    ------
    dict with ``trials``, ``epochs`` (summed), ``train_symbols`` (sum of epochs x train.symbols),
    ``eval_points`` (summed Eb/N0 points) and ``train_core_s`` (at ``SYMBOLS_PER_S`` per core).
    """
    epochs = sum(t.config["train"]["epochs"] for t in trials)
    passes = sum(t.config["train"]["epochs"] * t.config["train"]["symbols"] for t in trials)
    return {
        "trials": len(trials),
        "epochs": epochs,
        "train_symbols": passes,
        "eval_points": sum(len(t.config["eval"]["ebno_db"]) for t in trials),
        "train_core_s": passes / SYMBOLS_PER_S,
    }


def describe(spec: Spec) -> str:
    """The text ``symgrid validate`` prints: axes, trial count, resources and cost."""
    trials = _trials(spec)
    total = math.prod(len(values) for values in spec.axes.values())
    cost = estimate(spec, trials)
    lines = [f"{spec.name}: {spec.description}".strip(), "axes (crossed in this order):"]
    for axis, options in _options(spec).items():
        lines.append(f"  {axis:<24} {', '.join(str(o.display) for o in options)}")
    if not spec.axes:
        lines.append("  (none: one trial of the base config)")
    for rule in spec.exclude:
        lines.append(f"exclude {yaml.safe_dump(rule, default_flow_style=True, width=1e9).strip()}")
    lines += [
        f"trials: {len(trials):,} ({total:,} crossed, {total - len(trials):,} excluded)",
        f"resources per trial: cpu {spec.resources.cpu:g}, gpu {spec.resources.gpu}; "
        f"max_failures {spec.max_failures}",
        f"cost: {cost['epochs']:,} epochs, {cost['train_symbols']:.3g} training symbols "
        f"(~{cost['train_core_s'] / 60:.1f} core-minutes at {SYMBOLS_PER_S:.0e} symbols/s), "
        f"{cost['eval_points']:,} BER points",
    ]
    return "\n".join(lines)


def _resolved_base(spec: Spec) -> dict:
    resolved = config_to_dict(parse_trial_config(spec.base))
    touched = {axis.partition(".")[0] for axis in spec.axes}
    for section in PRESENCE_SENSITIVE:
        if section in touched:  # keep as written: a resolved default could clash with an axis
            resolved[section] = dict(spec.base.get(section) or {})
    return resolved


def _plain(spec: Spec) -> dict:
    return {
        "name": spec.name,
        "description": spec.description,
        "base": _resolved_base(spec),
        "axes": spec.axes,
        "exclude": spec.exclude,
        "resources": to_plain(spec.resources),
        "max_failures": spec.max_failures,
    }


def spec_hash(spec: Spec) -> str:
    """First 12 hex digits of the sha256 of the canonical JSON of the parsed spec.

    The base enters resolved, so a spec and its :func:`resolved_yaml` hash the same.
    """
    plain = _plain(spec)
    plain["axes"] = list(plain["axes"].items())  # axis order matters: it orders the trials
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolved_yaml(spec: Spec) -> str:
    """The spec with every base default written out, for ``DIR/spec.yaml``; it loads to the same
    trials."""
    header = f"# {spec.name}: base resolved by symgrid; spec_hash {spec_hash(spec)}\n"
    return header + yaml.safe_dump(_plain(spec), sort_keys=False, width=100, allow_unicode=True)
