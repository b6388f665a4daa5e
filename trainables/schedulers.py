"""Learning-rate schedulers from torch.optim.lr_scheduler; the lecture's examples are the defaults.

Every scheduler steps after the optimizer update: once per epoch, except ``one_cycle`` (once per
batch) and ``plateau`` (once per epoch, on the validation loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from symgrid.trainables.schema import Named, NoParams, bounded
from torch.optim import lr_scheduler

__all__ = ["Linear", "SCHEDULERS", "Schedule", "build"]


@dataclass(frozen=True)
class Step:
    step_size: int = bounded(5, ge=1)  # epochs between decays
    gamma: float = bounded(0.5, gt=0)


@dataclass(frozen=True)
class LambdaLinear:
    # The lecture's LambdaLR: factor = f + (1 - epoch/num_epochs)(1 - f), f = final/initial lr.
    final_factor: float = bounded(0.1, gt=0, le=1)  # 0.01 / 0.1 in the lecture
    num_epochs: int | None = bounded(None, ge=1)  # None: train.epochs


@dataclass(frozen=True)
class Constant:
    factor: float = bounded(0.5, gt=0, le=1)  # the lecture's ConstantLR(factor=0.5, total_iters=4)
    total_iters: int = bounded(4, ge=0)


@dataclass(frozen=True)
class Linear:
    start_factor: float = bounded(0.5, gt=0, le=1)  # the lecture's example
    end_factor: float = bounded(0.8, ge=0, le=1)
    total_iters: int = bounded(10, ge=0)


@dataclass(frozen=True)
class Exponential:
    gamma: float = bounded(0.9, gt=0)  # per epoch


@dataclass(frozen=True)
class Multiplicative:
    factor: float = bounded(0.95, gt=0)  # lr_lambda returns this every epoch


@dataclass(frozen=True)
class Cosine:
    eta_min: float = bounded(0.0, ge=0)  # T_max is train.epochs


@dataclass(frozen=True)
class OneCycle:
    max_lr: float | None = bounded(None, gt=0)  # None: optimizer.lr
    pct_start: float = bounded(0.3, gt=0, lt=1)  # torch's default
    # torch's default (true) also cycles momentum (Adam's beta1, SGD's momentum 0.85-0.95, which
    # turns plain SGD into momentum SGD): off, so the scheduler changes only the learning rate.
    cycle_momentum: bool = False


@dataclass(frozen=True)
class Plateau:
    factor: float = bounded(0.5, gt=0, lt=1)
    patience: int = bounded(2, ge=0)  # torch's 10 is half a 20-epoch run


SCHEDULERS: dict[str, type] = {
    "none": NoParams,
    "step": Step,
    "lambda_linear": LambdaLinear,
    "constant": Constant,
    "linear": Linear,
    "exponential": Exponential,
    "multiplicative": Multiplicative,
    "cosine": Cosine,
    "one_cycle": OneCycle,
    "plateau": Plateau,
}


class Schedule:
    """One scheduler and when it steps; ``state_dict`` round-trips for checkpoints."""

    def __init__(self, named: Named, optimizer: torch.optim.Optimizer, epochs: int, batches: int):
        self.name = named.name
        self.scheduler = build(named, optimizer, epochs, batches)

    def after_batch(self) -> None:
        if self.name == "one_cycle":
            self.scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        if self.name == "plateau":
            self.scheduler.step(val_loss)
        elif self.scheduler is not None and self.name != "one_cycle":
            self.scheduler.step()

    def state_dict(self) -> dict:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


def build(named: Named, opt: torch.optim.Optimizer, epochs: int, batches: int):
    p, name = named.params, named.name
    if name == "none":
        return None
    if name == "step":
        return lr_scheduler.StepLR(opt, step_size=p.step_size, gamma=p.gamma)
    if name == "lambda_linear":
        span, f = p.num_epochs or epochs, p.final_factor
        # Past num_epochs the lecture's line would go below f (and negative): hold it at f.
        return lr_scheduler.LambdaLR(opt, lambda e: max(f, f + (1 - e / span) * (1 - f)))
    if name == "constant":
        return lr_scheduler.ConstantLR(opt, factor=p.factor, total_iters=p.total_iters)
    if name == "linear":
        return lr_scheduler.LinearLR(
            opt, start_factor=p.start_factor, end_factor=p.end_factor, total_iters=p.total_iters
        )
    if name == "exponential":
        return lr_scheduler.ExponentialLR(opt, gamma=p.gamma)
    if name == "multiplicative":
        return lr_scheduler.MultiplicativeLR(opt, lambda e: p.factor)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=p.eta_min)
    if name == "one_cycle":
        max_lr = p.max_lr or opt.param_groups[0]["lr"]
        return lr_scheduler.OneCycleLR(
            opt,
            max_lr=max_lr,
            total_steps=epochs * batches,
            pct_start=p.pct_start,
            cycle_momentum=p.cycle_momentum,
        )
    if name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(opt, factor=p.factor, patience=p.patience)
    raise ValueError(f"scheduler: unknown name {name!r}")
