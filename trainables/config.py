"""One trial's configuration: every default in one place, and the checks across fields.

A trial config is a plain dict (from YAML or a grid) of this shape; omitted keys take the defaults
below::

    modulation: {num_bits_per_symbol: 4}
    train: {ebno_db: [-20, 20], symbols: 262144, fresh_each_epoch: false, val_symbols: 131072,
            batch_size: 4096, epochs: 20}
    model: {name: mlp, hidden: [64, 64], activation: relu, dropout: 0.0, noise_input: false}
    optimizer: {name: adam, lr: 0.01}
    loss: bce_logits                # a name, or {name: smooth_l1, beta: 0.5}
    scheduler: none                 # a name, or {name: step, step_size: 5, gamma: 0.5}
    regularization: none            # none, one setting, or a list of settings
    eval: {ebno_db: [-4, 0, 4, 8, 12], min_errors: 200, max_bits: 2.0e7, biasvar_symbols: 4096}
    seed: 0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from symgrid.trainables.constellation import SUPPORTED_BITS
from symgrid.trainables.losses import LOSSES, SMOOTHABLE
from symgrid.trainables.regularization import REGULARIZERS
from symgrid.trainables.schedulers import SCHEDULERS
from symgrid.trainables.schema import (
    ConfigError,
    Named,
    bounded,
    did_you_mean,
    join,
    parse,
    parse_named,
    to_plain,
)


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
    name: Literal["mlp", "baseline"] = "mlp"  # baseline: the notebook's 2 -> 8k -> k network
    hidden: tuple[int, ...] = (64, 64)  # mlp hidden widths; baseline uses [8k]
    activation: Literal["relu", "tanh", "gelu", "silu", "leaky_relu"] = "relu"
    dropout: float = bounded(0.0, ge=0, lt=1)  # or regularization: dropout
    noise_input: bool = False  # feed log10(N0) as a third input


@dataclass(frozen=True)
class Optimizer:
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = bounded(0.01, gt=0)  # the notebook used sgd with 0.1
    momentum: float = bounded(0.0, ge=0, lt=1)  # sgd only
    nesterov: bool = False  # sgd only, needs momentum


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


def parse_trial_config(raw: Mapping | None, path: str = "") -> TrialConfig:
    """Validate a trial config dict; raise :class:`ConfigError` naming the first bad field."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(path or "config", f"expected a mapping of sections, got {raw!r}"[:200])
    at = lambda key: join(path, key)  # noqa: E731
    for key in raw:
        if key not in KEYS:
            raise ConfigError(at(key), f"unknown key; {did_you_mean(key, KEYS)}")
    sections = {k: parse(cls, raw.get(k), at(k)) for k, cls in SECTIONS.items()}
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
    opt = raw.get("optimizer") or {}
    if cfg.optimizer.name != "sgd":
        for key in ("momentum", "nesterov"):
            if key in opt:
                raise ConfigError(at(f"optimizer.{key}"), "only used by sgd")
    if cfg.optimizer.nesterov and cfg.optimizer.momentum == 0:
        raise ConfigError(at("optimizer.nesterov"), "needs optimizer.momentum > 0")


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
    if cfg.optimizer.name != "sgd":
        del plain["optimizer"]["momentum"], plain["optimizer"]["nesterov"]
    return plain
