"""What the tracking callbacks log from a trial's results (shared by TensorBoard and MLflow)."""

from __future__ import annotations

import math

from symgrid.trainables.records import EPOCH_COLUMNS

__all__ = ["EPOCH_METRICS", "finite_numbers"]

EPOCH_METRICS = EPOCH_COLUMNS[2:]  # lr, train_loss, val_loss, train_ber, val_ber; step = epoch


def finite_numbers(values: dict, keys) -> dict[str, float]:
    """The entries of ``values`` under ``keys`` that are finite numbers, as floats."""
    picked = {}
    for key in keys:
        value = values.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and math.isfinite(value):
            picked[key] = float(value)
    return picked
