"""Any torch.optim optimizer by its lower-case class name, its keyword arguments checked against
its signature and by building it once on a dummy parameter.

``optimizer: {name: rmsprop, lr: 0.01, alpha: 0.9}`` builds ``torch.optim.RMSprop(groups,
lr=0.01, alpha=0.9)``. Weight decay is not an optimizer argument here: ``regularization: l2``
sets it on the weights only (``trainables.regularization``), so ``l2`` keeps its meaning
(``weight * sum w^2``, as ``weight_decay = 2 * weight`` added to the gradient) for every optimizer
whose ``weight_decay`` is that gradient term, is decoupled for ``adamw`` (and for ``nadam`` /
``radam`` with ``decoupled_weight_decay: true``), and is refused for an optimizer without one.
"""

from __future__ import annotations

import functools
import inspect

import torch
from symgrid.trainables.schema import ConfigError, did_you_mean

__all__ = ["arguments", "build", "check", "resolve"]

# torch.optim classes a trial's loop cannot drive, with the reason.
UNSUPPORTED = {
    "lbfgs": "needs a closure that re-evaluates the loss at every step",
    "sparseadam": "needs sparse gradients; a detector's gradients are dense",
}
NOT_ARGUMENTS = ("params", "lr")  # given by the trial (lr: the optimizer section's own field)


@functools.cache
def optimizer_classes() -> dict[str, type]:
    """Every torch.optim optimizer class by lower-case name (``rmsprop``, ``nadam``...)."""
    found = {}
    for attr in dir(torch.optim):
        cls = getattr(torch.optim, attr)
        is_optimizer = isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
        if is_optimizer and cls is not torch.optim.Optimizer:
            found[attr.lower()] = cls
    return found


def resolve(name: str, path: str = "optimizer.name") -> type:
    classes = optimizer_classes()
    if name in UNSUPPORTED:
        raise ConfigError(path, f"{name!r} {UNSUPPORTED[name]}; not supported")
    if not isinstance(name, str) or name not in classes:
        allowed = [n for n in classes if n not in UNSUPPORTED]
        raise ConfigError(path, f"unknown optimizer {name!r}; {did_you_mean(name, allowed)}")
    return classes[name]


@functools.cache
def arguments(cls: type) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls).parameters
    return {
        k: p
        for k, p in params.items()
        if k not in NOT_ARGUMENTS
        and p.kind is p.KEYWORD_ONLY
        or k not in NOT_ARGUMENTS
        and p.kind is p.POSITIONAL_OR_KEYWORD
    }


def check(name: str, lr: float, kwargs: dict, l2: bool, path: str = "optimizer") -> None:
    """Refuse unknown keyword arguments, values torch refuses, and ``l2`` without weight decay.

    A grid checks one optimizer setting thousands of times (once per trial): a setting that
    passed is remembered (as ``network`` remembers a checked network), so each distinct one is
    checked once per process; a refused one raises every time. The values (frozen by the config
    parser, so hashable) enter the key with their types: 1 and True are equal keys otherwise."""
    typed = tuple(sorted((k, type(v), v) for k, v in kwargs.items()))
    _remembered(name, type(lr), lr, typed, l2, path)


@functools.lru_cache(maxsize=1024)
def _remembered(name: str, lr_type: type, lr: float, typed: tuple, l2: bool, path: str) -> None:
    check_once(name, lr, {key: value for key, _, value in typed}, l2, path)


def check_once(name: str, lr: float, kwargs: dict, l2: bool, path: str) -> None:
    cls = resolve(name, f"{path}.name")
    allowed = arguments(cls)
    full = f"torch.optim.{cls.__name__}"
    for key, value in kwargs.items():
        if key == "weight_decay":
            raise ConfigError(
                f"{path}.weight_decay",
                "set it with regularization: l2 (decay on weights only, the same meaning for"
                " every optimizer)",
            )
        if key not in allowed:
            raise ConfigError(
                f"{path}.{key}",
                f"not an argument of {full}; "
                f"{did_you_mean(key, [k for k in allowed if k != 'weight_decay'])}",
            )
        default = allowed[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{path}.{key}", f"expected true or false, got {value!r}")
    if l2 and "weight_decay" not in allowed:
        raise ConfigError(
            "regularization",
            f"l2 works through the optimizer's weight_decay, which {full} has"
            " not; use elastic_net (a loss term) or another optimizer",
        )
    try:
        cls([torch.nn.Parameter(torch.zeros(1))], lr=lr, **kwargs)
    except Exception as err:  # torch's own checks: ranges, types
        raise ConfigError(path, f"{full} refused {kwargs}: {str(err).splitlines()[0]}") from None


def build(name: str, groups: list[dict], lr: float, kwargs: dict) -> torch.optim.Optimizer:
    return resolve(name)(groups, lr=lr, **kwargs)
