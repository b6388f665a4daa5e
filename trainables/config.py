"""One trial's configuration: every default in one place, and the checks across fields.

A trial config is a plain dict (from YAML or a grid) of this shape; omitted keys take the defaults
below::

    modulation: {num_bits_per_symbol: 4}
    train: {ebno_db: [-20, 20], symbols: 262144, fresh_each_epoch: false, val_symbols: 131072,
            batch_size: 4096, epochs: 20}
    model: {name: mlp, hidden: [64, 64], activation: relu, dropout: 0.0, noise_input: false}
                                    # or {name: package.module:ClassName, <its arguments>}
    optimizer: {name: adam, lr: 0.01}   # any torch.optim class, lower case, and its arguments
    loss: bce_logits                # a name, or {name: smooth_l1, beta: 0.5}
    scheduler: none                 # a name, or {name: step, step_size: 5, gamma: 0.5}
    regularization: none            # none, one setting, or a list of settings
    eval: {ebno_db: [-4, 0, 4, 8, 12], min_errors: 200, max_bits: 2.0e7, biasvar_symbols: 4096}
    seed: 0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from symgrid.trainables import network, optimizers
from symgrid.trainables.constellation import SUPPORTED_BITS
from symgrid.trainables.losses import LOSSES, SMOOTHABLE, head
from symgrid.trainables.regularization import REGULARIZERS
from symgrid.trainables.schedulers import SCHEDULERS
from symgrid.trainables.schema import (
    ConfigError,
    Named,
    bounded,
    check,
    check_bounds,
    did_you_mean,
    join,
    parse,
    parse_named,
    to_plain,
    type_hints,
)

__all__ = [
    "Eval",
    "OPEN",
    "Optimizer",
    "SECTIONS",
    "Train",
    "TrialConfig",
    "check_leaf",
    "config_to_dict",
    "dropout_p",
    "hidden_widths",
    "model_shape",
    "network_size",
    "optimizer_kwargs",
    "parse_regularization",
    "parse_section",
    "parse_trial_config",
]


@dataclass(frozen=True)
class Modulation:
    num_bits_per_symbol: int = 4  # 16-QAM, the course's constellation


@dataclass(frozen=True)
class Train:
    # A fixed Eb/N0 in dB, or a [lo, hi] range drawn uniformly per symbol (the notebook's range).
    ebno_db: float | tuple[float, float] = (-20.0, 20.0)
    # Counts are capped where memory or time would run out silently (about 40 bytes a symbol).
    symbols: int = bounded(262144, ge=1, le=2**27)  # finite training set, fixed by the seed
    fresh_each_epoch: bool = False  # true: new random symbols every epoch (no overfitting)
    val_symbols: int = bounded(131072, ge=1, le=2**27)
    batch_size: int = bounded(4096, ge=1)  # symbols per optimizer step
    epochs: int = bounded(20, ge=1, le=100_000)  # the notebook trained 20 epochs


MAX_WIDTH = 65536  # a wider layer than this is a typo, not a detector


@dataclass(frozen=True)
class Model:
    # mlp; baseline: the notebook's 2 -> 8k -> k network; or a user network "package.module:Class"
    # (trainables.network), whose keyword arguments are the section's other keys (in kwargs)
    name: str = "mlp"
    hidden: tuple[int, ...] = (64, 64)  # mlp hidden widths; baseline uses [8k]
    activation: Literal["relu", "tanh", "gelu", "silu", "leaky_relu"] = "relu"
    dropout: float = bounded(0.0, ge=0, lt=1)  # or regularization: dropout
    noise_input: bool = False  # feed log10(N0) as a third input
    kwargs: tuple = ()  # a user network's keyword arguments: sorted (key, value) pairs


@dataclass(frozen=True)
class Optimizer:
    name: str = "adam"  # any torch.optim class in lower case (trainables.optimizers)
    lr: float = bounded(0.01, gt=0)  # the notebook used sgd with 0.1
    momentum: float = bounded(0.0, ge=0, lt=1)  # sgd's (other optimizers': in kwargs)
    nesterov: bool = False  # sgd's, needs momentum
    kwargs: tuple = ()  # the optimizer's other keyword arguments: sorted (key, value) pairs


@dataclass(frozen=True)
class Eval:
    ebno_db: tuple[float, ...] = (-4.0, 0.0, 4.0, 8.0, 12.0)
    # Expected bitwise-MAP errors per point that set its budget, fixed before any detector is
    # seen: ceil(min_errors / (k BER_MAP)) symbols (map_reference.budget_symbols). 200 gives
    # MAP's count about +-14 % at 95 % confidence; a detector near MAP is judged far more
    # precisely by the paired log ratio (only discordant bits add noise).
    min_errors: int = bounded(200, ge=1, le=10**9)
    max_bits: int = bounded(20_000_000, ge=1, le=10**13)  # per point: caps the budget at high SNR
    biasvar_symbols: int = bounded(4096, ge=1, le=2**20)  # shared set for bias-variance


# The named options' defaults (their parameters' defaults live beside each option's class).
DEFAULT_LOSS = "bce_logits"  # the notebook's BCE, in its numerically stable form
DEFAULT_SCHEDULER = "none"
DEFAULT_REGULARIZATION = "none"


@dataclass(frozen=True)
class TrialConfig:
    """A validated trial; build it with :func:`parse_trial_config`."""

    modulation: Modulation
    train: Train
    model: Model
    optimizer: Optimizer
    loss: Named
    scheduler: Named
    regularization: tuple[Named, ...]
    eval: Eval
    seed: int


SECTIONS = {"modulation": Modulation, "train": Train, "model": Model, "optimizer": Optimizer}
KEYS = (*SECTIONS, "loss", "scheduler", "regularization", "eval", "seed")
# Sections whose other keys are keyword arguments (of the user network, of the optimizer).
OPEN = {"model": ("name", "dropout", "noise_input"), "optimizer": ("name", "lr")}


def parse_section(name: str, value: object, path: str):
    """A config section; ``model`` and ``optimizer`` keep their other keys as keyword arguments
    (a user network's; any optimizer's but sgd's momentum and nesterov, which are fields)."""
    if name not in OPEN or value is None:
        return parse(SECTIONS[name], value, path)
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a mapping, got {value!r}")
    default = SECTIONS[name].name
    chosen = value.get("name", default)
    if not isinstance(chosen, str):
        raise ConfigError(join(path, "name"), f"expected a name, got {chosen!r}")
    if "kwargs" in value:
        raise ConfigError(join(path, "kwargs"), "write the arguments as the section's own keys")
    if name == "model" and chosen in network.BUILTIN_MODELS:
        allowed = [f.name for f in dataclasses.fields(Model) if f.name != "kwargs"]
        for key in value:
            if key not in allowed:
                raise ConfigError(join(path, key), f"unknown key; {did_you_mean(key, allowed)}")
        return parse(SECTIONS[name], value, path)
    # The class is found here, so that an axis value naming none is refused as that value.
    (network if name == "model" else optimizers).resolve(chosen, join(path, "name"))
    fields = (*OPEN[name], "momentum", "nesterov") if chosen == "sgd" else OPEN[name]
    core = {k: v for k, v in value.items() if k in fields}
    rest = {k: network.freeze(v, join(path, k)) for k, v in value.items() if k not in core}
    return replace(parse(SECTIONS[name], core, path), kwargs=tuple(sorted(rest.items())))


def check_leaf(head: str, leaf: str, value: object, path: str) -> object:
    """One ``section.field`` value alone, typed; an open section's other keys are any plain data
    (checked with the whole trial)."""
    cls = SECTIONS.get(head) or Eval
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if head in OPEN and (leaf not in fields or leaf == "kwargs"):
        if leaf == "kwargs":
            raise ConfigError(path, "write the arguments as the section's own keys")
        return network.freeze(value, path)
    typed = check(value, type_hints(cls)[leaf], path)
    check_bounds(typed, fields[leaf].metadata, path)
    return typed


def parse_trial_config(raw: Mapping | None, path: str = "") -> TrialConfig:
    """Validate a trial config dict; raise :class:`ConfigError` naming the first bad field."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(path or "config", f"expected a mapping of sections, got {raw!r}"[:200])
    at = lambda key: join(path, key)  # noqa: E731
    for key in raw:
        if key not in KEYS:
            raise ConfigError(at(key), f"unknown key; {did_you_mean(key, KEYS)}")
    sections = {k: parse_section(k, raw.get(k), at(k)) for k in SECTIONS}
    cfg = TrialConfig(
        **sections,
        loss=parse_named(raw.get("loss", DEFAULT_LOSS), LOSSES, at("loss")),
        scheduler=parse_named(raw.get("scheduler", DEFAULT_SCHEDULER), SCHEDULERS, at("scheduler")),
        regularization=parse_regularization(
            raw.get("regularization", DEFAULT_REGULARIZATION), at("regularization")
        ),
        eval=parse(Eval, raw.get("eval"), at("eval")),
        seed=parse(_Seed, {"seed": raw["seed"]} if "seed" in raw else {}, path).seed,
    )
    check_combinations(cfg, raw, path)
    return cfg


@dataclass(frozen=True)
class _Seed:
    seed: int = bounded(0, ge=0)  # seeds every random stream of the trial


def parse_regularization(value: object, path: str) -> tuple[Named, ...]:
    """``none``, one setting, or a list of settings -> tuple of distinct settings."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    settings = [parse_named(v, REGULARIZERS, f"{path}[{i}]") for i, v in enumerate(items)]
    settings = [s for s in settings if s.name != "none"]
    names = [s.name for s in settings]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(path, f"{name!r} is listed twice; list each setting once")
    return tuple(settings)


def check_combinations(cfg: TrialConfig, raw: Mapping, path: str) -> None:
    """Checks across fields: combinations that would be silent no-ops are errors."""
    at = lambda key: join(path, key)  # noqa: E731
    k = cfg.modulation.num_bits_per_symbol
    if k not in SUPPORTED_BITS:
        allowed = ", ".join(map(str, SUPPORTED_BITS))
        raise ConfigError(at("modulation.num_bits_per_symbol"), f"{k!r}; allowed: {allowed}")
    names = {s.name for s in cfg.regularization}
    if "label_smoothing" in names and cfg.loss.name not in SMOOTHABLE:
        allowed = ", ".join(sorted(SMOOTHABLE))
        raise ConfigError(
            at("regularization"),
            f"label_smoothing does nothing with loss {cfg.loss.name!r}; allowed losses: {allowed}",
        )
    if "dropout" in names and cfg.model.dropout > 0:
        raise ConfigError(at("model.dropout"), "set dropout in one place: here or regularization")
    ebno = cfg.train.ebno_db
    if isinstance(ebno, tuple) and not ebno[0] < ebno[1]:
        raise ConfigError(at("train.ebno_db"), f"reversed range {list(ebno)}; need lo < hi")
    if cfg.train.batch_size > cfg.train.symbols:
        raise ConfigError(at("train.batch_size"), "larger than train.symbols")
    if not all(1 <= width <= MAX_WIDTH for width in cfg.model.hidden):
        message = f"{list(cfg.model.hidden)}; widths must be 1 to {MAX_WIDTH}"
        raise ConfigError(at("model.hidden"), message)
    model = raw.get("model") or {}
    if cfg.model.name == "baseline" and "hidden" in model:
        raise ConfigError(at("model.hidden"), "baseline has fixed width 8k; use name: mlp")
    if cfg.optimizer.nesterov and cfg.optimizer.momentum == 0:
        raise ConfigError(at("optimizer.nesterov"), "needs optimizer.momentum > 0")
    check_model(cfg, path)
    opt = cfg.optimizer
    l2 = any(s.name == "l2" for s in cfg.regularization)
    try:
        optimizers.check(opt.name, opt.lr, optimizer_kwargs(cfg), l2)
    except ConfigError as err:
        raise ConfigError(at(err.path), str(err)[len(err.path) + 2 :]) from None


def check_model(cfg: TrialConfig, path: str) -> None:
    """A user network imported, built and run once on a few samples."""
    if cfg.model.name in network.BUILTIN_MODELS:
        return
    try:
        network_size(cfg)
    except ConfigError as err:
        raise ConfigError(join(path, err.path), str(err)[len(err.path) + 2 :]) from None


def model_shape(cfg: TrialConfig) -> tuple[int, int]:
    """The detector's inputs (2, or 3 with noise_input) and outputs (k, or 2^k: the loss's head)."""
    k = cfg.modulation.num_bits_per_symbol
    return 3 if cfg.model.noise_input else 2, k if head(cfg.loss) == "bit" else 2**k


def dropout_p(cfg: TrialConfig) -> float:
    return next((s.params.p for s in cfg.regularization if s.name == "dropout"), cfg.model.dropout)


def network_size(cfg: TrialConfig) -> int:
    """A user network's parameter count, from the checked build (cached)."""
    return network.check(cfg.model.name, cfg.model.kwargs, *model_shape(cfg), dropout_p(cfg))


def optimizer_kwargs(cfg: TrialConfig) -> dict:
    """The optimizer's keyword arguments besides the parameter groups and lr."""
    opt = cfg.optimizer
    if opt.name == "sgd":
        return {"momentum": opt.momentum, "nesterov": opt.nesterov, **dict(opt.kwargs)}
    return dict(opt.kwargs)


def hidden_widths(cfg: TrialConfig) -> tuple[int, ...]:
    """The hidden layer widths the trial builds (baseline: the notebook's 8k)."""
    if cfg.model.name == "baseline":
        return (8 * cfg.modulation.num_bits_per_symbol,)
    return cfg.model.hidden


def config_to_dict(cfg: TrialConfig) -> dict:
    """The resolved config as plain data; ``parse_trial_config`` of it gives ``cfg`` back."""
    plain = to_plain(cfg)
    plain["regularization"] = plain["regularization"] or "none"
    if cfg.model.name == "baseline":
        del plain["model"]["hidden"]  # fixed by the modulation, see hidden_widths
    if cfg.model.name not in network.BUILTIN_MODELS:
        del plain["model"]["hidden"], plain["model"]["activation"]
    if cfg.optimizer.name != "sgd":
        del plain["optimizer"]["momentum"], plain["optimizer"]["nesterov"]
    for section in OPEN:
        plain[section].update(dict(plain[section].pop("kwargs")))
    return plain
