"""The lecture's seven losses, from torch.nn, on a bit head or a symbol head.

Bit losses compare bit probabilities (or logits) with the transmitted bits; symbol losses
(``cross_entropy``, ``nll``) classify the transmitted symbol among the 2**k constellation points.
BER is always counted on bits, whatever the head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from symgrid.trainables.schema import Named, NoParams, bounded
from torch import nn

__all__ = ["LOSSES", "PROBABILITY_LOSSES", "SMOOTHABLE", "head", "make_loss", "smooth"]


@dataclass(frozen=True)
class BceLogits:
    pos_weight: float | None = bounded(None, gt=0)  # weight of the 1 bits; None: unweighted


@dataclass(frozen=True)
class SmoothL1:
    beta: float = bounded(1.0, gt=0)  # torch's default: quadratic below 1, linear above


LOSSES: dict[str, type] = {
    "bce": NoParams,  # BCELoss on sigmoid outputs (the notebook's choice)
    "bce_logits": BceLogits,  # BCEWithLogitsLoss: the same maths, numerically stable
    "mse": NoParams,
    "l1": NoParams,
    "smooth_l1": SmoothL1,
    "cross_entropy": NoParams,  # on 2**k symbol logits
    "nll": NoParams,  # NLLLoss on log_softmax of the symbol logits
}
SYMBOL_LOSSES = frozenset({"cross_entropy", "nll"})
# The losses that see sigmoid(logits) as a bit probability: their soft output is that probability,
# clamped (metrics.PROB_EPS) before a cross-entropy; the others' outputs are exact bit logits.
PROBABILITY_LOSSES = frozenset({"bce", "mse", "l1", "smooth_l1"})
SMOOTHABLE = frozenset({"bce", "bce_logits", "cross_entropy"})  # label smoothing means something

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def head(loss: Named) -> str:
    """``"symbol"`` for the losses that classify symbols, else ``"bit"``."""
    return "symbol" if loss.name in SYMBOL_LOSSES else "bit"


def make_loss(loss: Named, num_bits_per_symbol: int, label_smoothing: float = 0.0) -> LossFn:
    """Build ``loss_fn(logits, bits, symbol_index) -> scalar``.

    Input
    -----
    logits : [n, k] bit logits (bit head) or [n, 2**k] symbol logits (symbol head), torch.float32
    bits : [n, k], torch.float32 in {0, 1}
    symbol_index : [n], torch.int64

    Note
    ----
    Label smoothing ``epsilon`` means one thing on both heads, torch's definition: the target is
    ``(1 - epsilon) * one_hot + epsilon * uniform`` over the head's classes. On the symbol head
    (2**k classes) it is CrossEntropyLoss's own ``label_smoothing``; on the bit head each bit is a
    two-class problem, so the targets become ``epsilon / 2`` and ``1 - epsilon / 2``.
    """
    name, eps = loss.name, label_smoothing
    if name == "cross_entropy":
        criterion = nn.CrossEntropyLoss(label_smoothing=eps)
        return lambda logits, bits, sym: criterion(logits, sym)
    if name == "nll":
        criterion = nn.NLLLoss()
        return lambda logits, bits, sym: criterion(torch.log_softmax(logits, dim=-1), sym)
    if name == "bce_logits":
        pos = loss.params.pos_weight
        pos_weight = None if pos is None else torch.full((num_bits_per_symbol,), pos)
        criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

        def bce_logits(logits, bits, sym):
            if criterion.pos_weight is not None and criterion.pos_weight.device != logits.device:
                criterion.to(logits.device)
            return criterion(logits, smooth(bits, eps))

        return bce_logits
    criterion = {
        "bce": nn.BCELoss(),
        "mse": nn.MSELoss(),
        "l1": nn.L1Loss(),
        "smooth_l1": nn.SmoothL1Loss(beta=getattr(loss.params, "beta", 1.0)),
    }[name]
    return lambda logits, bits, sym: criterion(torch.sigmoid(logits), smooth(bits, eps))


def smooth(bits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Bit targets ``(1 - epsilon) * bits + epsilon / 2``: 0 -> epsilon/2, 1 -> 1 - epsilon/2."""
    return bits if epsilon == 0 else bits * (1 - epsilon) + epsilon / 2
