"""The shared evaluation set of the bias-variance decomposition, and what a trial records on it.

Every trial, whatever its seed, predicts bit probabilities on one fixed set of received samples
per test Eb/N0. The trial stores its predictions together with the samples ``y``, their ``N0``
and the exact posterior ``eta = P(b_j = 1 | y)``, so the analysis compares replicates sample by
sample without redrawing anything (``analysis.biasvar``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from symgrid.trainables.channel import Batch, point_key, seeded_generator, transmit
from symgrid.trainables.reference import posterior

__all__ = ["Predictions", "predict_shared", "shared_eval_set"]

BIASVAR_SEED = 20_000_101  # one shared evaluation set for every trial, whatever its seed
BIASVAR_STREAM = "biasvar"


class Predictions(NamedTuple):
    """A trial's bit probabilities on the shared set of one Eb/N0, with the set itself.

    p : [n, k], numpy.float32, the detector's P(b_j = 1 | y).
    eta : [n, k], numpy.float32, the exact posterior ``reference.posterior(y, no, k)``.
    y : [n], numpy.complex64, the received samples.
    no : [n], numpy.float32, their N0.
    """

    p: np.ndarray
    eta: np.ndarray
    y: np.ndarray
    no: np.ndarray


def shared_eval_set(k: int, ebno_db: float, n: int) -> Batch:
    """The evaluation set every trial predicts on: ``n`` samples at ``ebno_db``, on the CPU.

    Drawn from ``seeded_generator(BIASVAR_SEED, "biasvar", point_key(ebno_db))``, so it is the
    same set for every trial, seed and device.
    """
    generator = seeded_generator(BIASVAR_SEED, BIASVAR_STREAM, point_key(ebno_db))
    return transmit(n, k, float(ebno_db), generator)


def predict_shared(
    probabilities: Callable[[Batch], torch.Tensor], k: int, ebno_db_points, n: int, device
) -> dict[float, Predictions]:
    """Predictions on the shared set of every Eb/N0 point.

    Parameters
    ----------
    probabilities : ``probabilities(batch) -> [n, k]`` bit probabilities of the trained detector
    k : bits per symbol
    ebno_db_points : the trial's test Eb/N0 points
    n : ``eval.biasvar_symbols``
    device : where the detector runs (the set is drawn on the CPU and moved there)
    """
    sets = {}
    for e in ebno_db_points:
        batch = shared_eval_set(k, e, n)
        p = probabilities(batch.to(device)).cpu().numpy()  # [n, k]
        eta = posterior(batch.y, batch.no, k).numpy()  # [n, k], computed on the CPU
        sets[float(e)] = Predictions(p, eta, batch.y.numpy(), batch.no.numpy())
    return sets
