"""Learned demappers: per-symbol MLPs from the received sample to bit or symbol logits."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Detector", "GeneratorDropout", "bit_logits", "num_parameters"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


class GeneratorDropout(nn.Module):
    """Inverted dropout drawing its mask from an explicit generator.

    ``nn.Dropout`` draws from torch's global RNG; an explicit generator keeps a trial reproducible
    and lets a checkpoint restore the exact mask sequence. The mask is drawn on the CPU (the
    generator's device) and moved to ``x``'s device, so it is the same on every device.
    """

    def __init__(self, p: float, generator: torch.Generator | None):
        super().__init__()
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator) >= self.p  # on the CPU
        return x * keep.to(x.device) / (1 - self.p)


class Detector(nn.Module):
    """Per-symbol MLP demapper.

    Parameters
    ----------
    num_inputs : 2 ([Re y, Im y]) or 3 (plus log10 N0)
    hidden : hidden layer widths, e.g. (64, 64); the notebook's baseline is (8k,)
    num_outputs : k for a bit head, 2**k for a symbol head
    activation : "relu" | "tanh" | "gelu" | "silu" | "leaky_relu"
    dropout : probability after every hidden activation
    generator : the dropout masks' generator

    Input
    -----
    x : [n, num_inputs], torch.float32

    Output
    ------
    logits : [n, num_outputs], torch.float32
    """

    def __init__(
        self,
        num_inputs: int,
        hidden: tuple[int, ...],
        num_outputs: int,
        activation: str = "relu",
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = num_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(GeneratorDropout(dropout, generator))
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def bit_logits(logits: torch.Tensor, head: str, labels: torch.Tensor) -> torch.Tensor:
    """Bit logits log P(b=1)/P(b=0) from either head.

    Input
    -----
    logits : [n, k] bit logits or [n, 2**k] symbol logits, torch.float32
    head : "bit" | "symbol"
    labels : [2**k, k] bit labels of the constellation points, torch.float32

    Output
    ------
    llr : [n, k], torch.float32 (the symbol head's softmax marginalized per bit)
    """
    if head == "bit":
        return logits
    log_p = torch.log_softmax(logits, dim=-1)  # [n, 2**k]
    # Per bit, the points whose label has it 0 (first half) and 1 (second half), each in
    # ascending order: a log-sum-exp over the last, contiguous axis of [n, k, 2**k / 2] runs
    # about twice as fast as one over the points' axis of [n, 2**k, k] with -inf for the others.
    half = labels.shape[0] // 2
    order = torch.argsort(labels.T, dim=1, stable=True)  # [k, 2**k]
    return torch.logsumexp(log_p[:, order[:, half:]], dim=-1) - torch.logsumexp(
        log_p[:, order[:, :half]], dim=-1
    )


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
