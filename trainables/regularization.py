"""The lecture's regularizers: norm penalties, dropout, label smoothing and early stopping.

A trial takes a list of settings; :func:`knobs` folds them into one :class:`Knobs`. Norm penalties
apply to weights (tensors with two or more dimensions), never to biases. Every norm strength is
the coefficient of its term in the loss, whichever setting it comes from::

    l2:           weight * sum w^2                  (applied as weight_decay = 2 * weight)
    l1:           weight * sum |w|
    elastic_net:  weight * sum(beta * w^2 + |w|)    (the lecture's R(W))

so ``l2: {weight: a}`` and ``elastic_net: {weight: a, beta: 1}`` put the same quadratic term on
the weights. ``l2`` goes through the optimizer's ``weight_decay`` (torch's ``weight_decay = d``
adds ``d * w`` to the gradient, the gradient of ``d/2 * sum w^2``, hence ``d = 2 * weight``);
with ``adamw`` the same ``d`` is decoupled (``w <- w - lr * d * w`` outside Adam's moments,
Loshchilov & Hutter), which is not a loss term, so it is the same strength only for sgd and adam.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from symgrid.trainables.schema import Named, NoParams, bounded
from torch import nn

__all__ = [
    "Dropout",
    "EarlyStopper",
    "EarlyStopping",
    "Knobs",
    "REGULARIZERS",
    "knobs",
    "param_groups",
    "penalty",
    "weights",
]


@dataclass(frozen=True)
class L2:
    # weight * sum w^2; 5e-5 is torch's customary weight_decay 1e-4 (the gradient is 2 * weight * w)
    weight: float = bounded(5e-5, ge=0)


@dataclass(frozen=True)
class L1:
    weight: float = bounded(1e-5, ge=0)  # a * sum |w|, added to the loss


@dataclass(frozen=True)
class ElasticNet:
    # The lecture's R(W) = sum(beta * w^2 + |w|), scaled by weight.
    weight: float = bounded(1e-5, ge=0)
    beta: float = bounded(1.0, ge=0)


@dataclass(frozen=True)
class Dropout:
    p: float = bounded(0.1, ge=0, lt=1)  # after every hidden activation


@dataclass(frozen=True)
class LabelSmoothing:
    # Target = (1 - epsilon) one_hot + epsilon uniform, on either head (torch's definition);
    # 0.1 (Szegedy et al. 2016) gives bit targets 0.05 / 0.95.
    epsilon: float = bounded(0.1, gt=0, lt=1)


@dataclass(frozen=True)
class EarlyStopping:
    patience: int = bounded(3, ge=1)  # epochs without improvement of the validation loss
    min_delta: float = bounded(0.0, ge=0)  # smaller improvements do not count


REGULARIZERS: dict[str, type] = {
    "none": NoParams,
    "l2": L2,
    "l1": L1,
    "elastic_net": ElasticNet,
    "dropout": Dropout,
    "label_smoothing": LabelSmoothing,
    "early_stopping": EarlyStopping,
}


@dataclass(frozen=True)
class Knobs:
    weight_decay: float = 0.0  # the optimizer's: 2 x the l2 setting's weight
    l1: float = 0.0  # coefficient of sum |w| in the loss
    l2: float = 0.0  # coefficient of sum w^2 in the loss (explicit, from elastic_net)
    dropout: float = 0.0
    label_smoothing: float = 0.0
    early_stopping: EarlyStopping | None = None


def knobs(settings: tuple[Named, ...]) -> Knobs:
    """Fold a list of settings into the knobs a trial applies."""
    found: dict = {}
    for s in settings:
        p = s.params
        if s.name == "l2":
            found["weight_decay"] = 2 * p.weight  # the gradient of weight * sum w^2
        elif s.name == "l1":
            found["l1"] = found.get("l1", 0.0) + p.weight
        elif s.name == "elastic_net":
            found["l1"] = found.get("l1", 0.0) + p.weight
            found["l2"] = p.weight * p.beta
        elif s.name == "dropout":
            found["dropout"] = p.p
        elif s.name == "label_smoothing":
            found["label_smoothing"] = p.epsilon
        elif s.name == "early_stopping":
            found["early_stopping"] = p
    return Knobs(**found)


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim >= 2]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer groups: weight decay on weights, none on biases."""
    ids = {id(w) for w in weights(model)}
    biases = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": weights(model), "weight_decay": weight_decay},
        {"params": biases, "weight_decay": 0.0},
    ]


def penalty(model: nn.Module, knobs: Knobs) -> torch.Tensor | float:
    """The explicit norm penalty l1 * sum|w| + l2 * sum w^2 over weights (0.0 when unused)."""
    if knobs.l1 == 0 and knobs.l2 == 0:
        return 0.0
    ws = weights(model)
    total = sum(knobs.l1 * w.abs().sum() + knobs.l2 * w.square().sum() for w in ws)
    return total


class EarlyStopper:
    """Tracks the best validation loss and its weights; says when patience has run out."""

    def __init__(self, settings: EarlyStopping | None):
        self.settings = settings
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.bad_epochs = 0

    def update(self, epoch: int, val_loss: float, model: nn.Module) -> bool:
        """Record an epoch; True when training should stop."""
        min_delta = self.settings.min_delta if self.settings else 0.0
        if val_loss < self.best_loss - min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            if self.settings is not None:
                self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
        return self.settings is not None and self.bad_epochs >= self.settings.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        keys = ("best_loss", "best_epoch", "best_state", "bad_epochs")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
