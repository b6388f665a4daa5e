"""Seed-level inference on arrays: the arithmetic every effect, interaction and calibration uses.

The unit of replication is the **seed**: it fixes a trial's training set, initial weights and test
samples, so trials that share a seed share those draws and are not independent. Every function
here reduces the trials of one seed to one number first and replicates over seeds only.

Contrast of two levels u, v of an axis
    A *block* is one combination of the other axes within one seed; within a block the trials
    differ only in this axis. Per seed s, ``d_s`` = mean over the seed's blocks where both levels
    completed of ``y[v] - y[u]``; then a Student-t interval and test over the seeds with
    ``n_seeds - 1`` degrees of freedom. Seed main effects cancel within a block; setting x seed
    noise and each trial's sampling noise stay in ``d_s``, so they make the error term, as they
    should. This is the per-seed paired contrast: it needs no model of how the other axes act
    (any interaction with them is averaged within the seed), it tolerates missing trials (a seed
    contributes the blocks it completed), and with a balanced grid it equals the contrast of the
    blocked factorial analysis whose error term is the axis x seed interaction.

Multiplicity: Bonferroni, intervals and tests together
    A family of ``m`` contrasts gets intervals at confidence ``1 - ALPHA / m`` and p-values
    ``min(1, m p)``: a contrast is significant exactly when its interval excludes 0, and all ``m``
    intervals cover their true contrasts together with probability ≥ 95 %.

Interaction of two axes
    Per seed, the cell means of the two axes (averaged over the other axes in that seed) and
    their interaction residuals ``r_s = m_ij - m_i. - m_.j + m_..``; F = (mean residual's sum of
    squares x n_seeds / df1) / (residuals' spread over seeds / df2), df1 = (I-1)(J-1), df2 =
    df1 (n_seeds - 1): the blocked (randomized complete block) factorial test with the
    interaction x seed mean square as its error term.

``tests/test_calibration.py`` checks coverage and false-positive rates by simulation
(``analysis.calibration``), through these same functions.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "contrasts", "interaction_f", "seed_intervals"]

ALPHA = 0.05  # family-wise error rate of each family of tests (1 - confidence of its intervals)


def nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():  # an all-NaN slice (no shared block) is a NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def contrasts(cube: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Per-seed paired differences of level pairs.

    Input
    -----
    cube : [..., seeds, blocks, levels], float: ``y`` per trial, NaN where none completed.
    pairs : (u, v) level indices; each contrast is ``y[v] - y[u]``.

    Output
    ------
    [..., pairs, seeds], float: mean over the seed's blocks where both completed (NaN: none).
    """
    u = np.array([p[0] for p in pairs], int)
    v = np.array([p[1] for p in pairs], int)
    d = cube[..., v] - cube[..., u]  # [..., seeds, blocks, pairs]
    return np.moveaxis(nanmean(d, axis=-2), -1, -2)  # [..., pairs, seeds]


def seed_intervals(d: np.ndarray, m: int) -> dict[str, np.ndarray]:
    """Bonferroni intervals and tests of the mean of per-seed contrasts ``d``.

    Input
    -----
    d : [..., seeds], float, NaN for a seed without the contrast. m : the family's size.

    Output
    ------
    dict of [...] arrays: ``seeds`` (n), ``mean``, ``low``, ``high`` (confidence 1 - ALPHA/m,
    t with n - 1 df), ``p`` (two-sided, unadjusted) and ``p_adj`` (min(1, m p)). NaN below two
    seeds. A constant nonzero contrast has p = 0, a constant zero one p = 1 (no spread).
    """
    n = np.isfinite(d).sum(axis=-1)
    mean = nanmean(d, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(d, axis=-1, ddof=1)
        se = sd / np.sqrt(n)
        df = np.where(n >= 2, n - 1, np.nan)
        q = stats.t.ppf(1 - ALPHA / (2 * max(m, 1)), df)
        t = np.where(se > 0, mean / np.where(se > 0, se, 1), np.where(mean == 0, 0.0, np.inf))
        p = np.where(n >= 2, 2 * stats.t.sf(np.abs(t), df), np.nan)
    low, high = mean - q * se, mean + q * se
    return {
        "seeds": n,
        "mean": mean,
        "low": np.where(n >= 2, low, np.nan),
        "high": np.where(n >= 2, high, np.nan),
        "p": p,
        "p_adj": np.minimum(1.0, p * max(m, 1)),
    }


def interaction_f(cells: np.ndarray) -> dict[str, np.ndarray]:
    """The seed-level F-test of an interaction.

    Input
    -----
    cells : [..., seeds, I, J], float: each seed's mean ``y`` per cell of the two axes (complete).

    Output
    ------
    dict of [...] arrays: ``F``, ``df_num`` = (I-1)(J-1), ``df_den`` = df_num (seeds - 1), ``p``.
    """
    r = (
        cells
        - cells.mean(axis=-1, keepdims=True)
        - cells.mean(axis=-2, keepdims=True)
        + cells.mean(axis=(-2, -1), keepdims=True)
    )  # [..., seeds, I, J]: interaction residuals per seed
    seeds, rows, cols = cells.shape[-3:]
    mean = r.mean(axis=-3)  # [..., I, J]
    df_num = (rows - 1) * (cols - 1)
    df_den = df_num * (seeds - 1)
    effect = seeds * (mean**2).sum(axis=(-2, -1)) / df_num
    noise = ((r - mean[..., None, :, :]) ** 2).sum(axis=(-3, -2, -1)) / max(df_den, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(noise > 0, effect / noise, np.where(effect > 0, np.inf, 0.0))
    p = stats.f.sf(f, df_num, df_den) if df_den > 0 else np.full(np.shape(f), np.nan)
    return {"F": f, "df_num": df_num, "df_den": df_den, "p": p}
