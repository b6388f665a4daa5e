"""A residual MLP with per-input normalization: an example network for ``model.name``.

Use it from a spec with the ``examples`` folder as the current directory or on ``PYTHONPATH``::

    model: {name: "nets.resmlp:ResMLP", width: 32, depth: 2}

Why try it: the received sample's scale varies over 40 dB of Eb/N0 in the course's training range,
so the network first normalizes each input with running statistics (BatchNorm without affine
terms: a fixed per-input standardization once trained), then refines one hidden representation
with residual blocks (pre-norm, as in transformers' MLP blocks), which keep gradients flowing
through depth where a plain MLP of the same width saturates.

The contract (README, "Your own network"): ``__init__(num_inputs, num_outputs, **kwargs)``,
``forward(x [n, num_inputs] float32) -> logits [n, num_outputs] float32``.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """x + W2 act(W1 LayerNorm(x)), with optional dropout after the activation."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResMLP(nn.Module):
    """Per-input normalization, a linear lift to ``width``, ``depth`` residual blocks, a head.

    Parameters
    ----------
    num_inputs : 2 ([Re y, Im y]) or 3 (plus log10 N0), set by symgrid
    num_outputs : k (bit head) or 2**k (symbol head), set by symgrid from the loss
    width : hidden width
    depth : residual blocks
    dropout : inside every block (``regularization: dropout`` sets it)

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
        num_outputs: int,
        width: int = 32,
        depth: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if width < 1 or depth < 0:
            raise ValueError(f"width must be >= 1 and depth >= 0, got {width}, {depth}")
        self.norm = nn.BatchNorm1d(num_inputs, affine=False)
        self.lift = nn.Linear(num_inputs, width)
        self.blocks = nn.Sequential(*(Block(width, dropout) for _ in range(depth)))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.lift(self.norm(x))))
