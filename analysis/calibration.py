"""Calibration of the seed-level inference by simulation: coverage and family-wise error rates.

Thousands of synthetic grids with known true effects go through the arithmetic the report uses
(``analysis.inference.contrasts``, ``seed_intervals``, ``interaction_f``; ``analysis.effects``
calls the same functions, which ``tests/test_calibration.py`` checks on whole tables). A grid
crosses three axes, A (3 levels), B (2) and C (3), with ``seeds`` seeds, one trial per cell:

    y[s, a, b, c] = seed_s + true_a + true_b + true_c        (seed main effect, known effects)
                    + u[s, a] + u[s, b] + u[s, c]   (axis x seed: shared by its blocks)
                    + e[s, a, b, c]                          (setting x seed)
                    + n[s, a, b, c]                          (the trial's own sampling noise)

Coverage is the share of true pairwise contrasts inside their Bonferroni intervals (per contrast,
and all of a grid's at once); the family-wise false-positive rate is the share of null grids (all
true effects 0) where any contrast is significant, and separately the rate at which the A x B
interaction test rejects. ``blocks as replicates`` is the analysis this replaced (each block an
independent replicate), on the same grids, to show why the seed is the unit.
"""

from __future__ import annotations

import numpy as np
from symgrid.analysis.inference import ALPHA, contrasts, interaction_f, seed_intervals

__all__ = ["NOISE", "TRUE", "calibration_table", "simulate"]

LEVELS = (3, 2, 3)  # levels of axes A, B, C
TRUE = ((0.0, 0.03, 0.05), (0.0, 0.02), (0.0, 0.0, 0.01))  # true effects, log-ratio units
NOISE = {  # standard deviations, log-ratio units (the order of a small grid's)
    "seed": 0.05,  # a seed's training set, initial weights and test samples, for every setting
    "axis_seed": 0.01,  # how much a level's effect changes from one seed to another
    "setting_seed": 0.01,  # one setting's luck with one seed
    "trial": 0.005,  # the trial's test-set sampling noise (log_ratio_map_se)
}


def grids_y(rng: np.random.Generator, grids: int, seeds: int, null: bool) -> np.ndarray:
    """Synthetic responses, [grids, seeds, A, B, C]."""
    shape = (grids, seeds, *LEVELS)
    y = NOISE["seed"] * rng.standard_normal((grids, seeds, 1, 1, 1))
    for axis, size in enumerate(LEVELS):
        where = [1, 1, 1]
        where[axis] = size
        true = np.zeros(size) if null else np.asarray(TRUE[axis])
        y = y + true.reshape(where)
        y = y + NOISE["axis_seed"] * rng.standard_normal((grids, seeds, *where))
    y = y + NOISE["setting_seed"] * rng.standard_normal(shape)
    return y + NOISE["trial"] * rng.standard_normal(shape)


def axis_cube(y: np.ndarray, axis: int) -> np.ndarray:
    """[grids, seeds, blocks, levels] for one axis: the other two axes flattened into blocks."""
    moved = np.moveaxis(y, 2 + axis, -1)
    return moved.reshape(*moved.shape[:2], -1, moved.shape[-1])


def all_pairs(levels: int) -> list[tuple[int, int]]:
    return [(u, v) for u in range(levels) for v in range(u + 1, levels)]


def main_effects(y: np.ndarray, as_blocks: bool = False) -> tuple[dict, np.ndarray]:
    """Every pairwise contrast of every axis: intervals (Bonferroni over the family) and truths.

    ``as_blocks``: treat each (seed, block) as an independent replicate (the replaced analysis).
    """
    family = sum(len(all_pairs(n)) for n in LEVELS)
    parts, truths = [], []
    for axis, size in enumerate(LEVELS):
        pairs = all_pairs(size)
        d = contrasts(axis_cube(y, axis), pairs)  # [grids, pairs, seeds]
        if as_blocks:
            cube = axis_cube(y, axis)  # each block its own replicate: [grids, blocks x seeds]
            v, u = [p[1] for p in pairs], [p[0] for p in pairs]
            d = np.moveaxis(
                (cube[..., v] - cube[..., u]).reshape(y.shape[0], -1, len(pairs)), -1, 1
            )
        parts.append(seed_intervals(d, family))  # [grids, pairs] each
        truths += [TRUE[axis][v] - TRUE[axis][u] for u, v in pairs]
    tests = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
    return tests, np.asarray(truths)


def simulate(seeds: int, grids: int, rng: np.random.Generator, as_blocks: bool = False) -> dict:
    """Coverage and false-positive rates of ``grids`` synthetic grids with ``seeds`` seeds."""
    tests, truth = main_effects(grids_y(rng, grids, seeds, null=False), as_blocks)
    inside = (tests["low"] <= truth) & (truth <= tests["high"])  # [grids, contrasts]
    null, _ = main_effects(grids_y(rng, grids, seeds, null=True), as_blocks)
    y0 = grids_y(rng, grids, seeds, null=True)
    cells = y0.mean(axis=-1)  # A x B cell means per seed, averaged over C: [grids, seeds, A, B]
    inter = interaction_f(cells)["p"]
    return {
        "seeds": seeds,
        "method": "blocks as replicates (before)" if as_blocks else "seed-level (now)",
        "grids": grids,
        "coverage": float(inside.mean()),
        "simultaneous_coverage": float(inside.all(axis=1).mean()),
        "fwer_null": float((null["p_adj"] < ALPHA).any(axis=1).mean()),
        "interaction_fwer_null": float((inter < ALPHA).mean()),
        "power_true_effects": float(
            ((tests["p_adj"] < ALPHA) & (truth != 0)).sum() / (truth != 0).sum() / grids
        ),
    }


def calibration_table(grids: int = 4000, seeds=(2, 3, 5), seed: int = 2024) -> list[dict]:
    """:func:`simulate` for each seed count, seed-level and blocks as replicates; ``seed`` fixes
    the simulation's random stream (any value: the rates are averages over ``grids``)."""
    rng = np.random.default_rng(seed)
    rows = [simulate(n, grids, rng) for n in seeds]
    return rows + [simulate(n, grids, rng, as_blocks=True) for n in seeds]
