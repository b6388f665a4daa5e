"""Main effects and two-way interactions of the grid's axes on the BER ratio to MAP.

The response of a trial is ``log(ber_ratio_map)``: ratios multiply (a setting 3 % worse than
another is the same statement at any base), and on the log scale a level's effect is a
difference. The unit of every interval and test is the **trial**: evaluation points of one trial
share one trained model, so they are not independent replicates.

Main effect of a level (one axis at a time)
    A *block* is one combination of every other axis and the seed. Within a block the trials
    differ only in this axis, so the block is its own control. The axis's *best* level has the
    lowest mean log ratio over the blocks in which every level completed. For each other level,
    ``d_b = y[level, b] - y[best, b]`` over the blocks where both completed; its mean, 95 %
    Student-t interval and two-sided one-sample t-test (a paired t-test, ``scipy.stats.ttest_rel``)
    give ``delta = exp(mean d) - 1`` (relative difference, > 0: worse than best). A level's own
    ``ratio`` is the geometric mean of its trials' ratios with a t-interval over those trials.
    ``p_adj`` is Holm's step-down correction over every comparison of the run (all axes at once:
    the report makes all of these claims together); ``significant`` is ``p_adj < ALPHA``.

Interaction of two axes
    Least squares on ``log ratio ~ C(a) * C(b) + C(other axes) + C(seed)`` (statsmodels); the
    F-test of the ``a:b`` term (type-II ANOVA) says whether the effect of ``a`` depends on ``b``.
    Higher-order interactions stay in the residual, which makes the test conservative. p-values are
    Holm-corrected over the pairs tested.

Note: the best level is chosen on the same data that estimates its lead, so a lead is slightly
optimistic (winner's curse); ``symgrid confirm`` re-measures the top settings on fresh seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm
from symgrid.analysis.stats import ALPHA, holm, mean_interval, paired

EFFECT_COLUMNS = [
    "axis",
    "level",
    "trials",
    "failed",
    "ratio",
    "ci_low",
    "ci_high",
    "best",
    "blocks",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "p",
    "p_adj",
    "significant",
]
INTERACTION_COLUMNS = ["axis_a", "axis_b", "trials", "F", "df_num", "df_den", "p", "p_adj"]
INTERACTION_COLUMNS += ["significant"]


def ordered(values) -> list:
    """Distinct axis values, numbers ascending, otherwise as strings in sorted order."""
    values = list(dict.fromkeys(v for v in values if v is not None and v == v))
    if all(isinstance(v, int | float | np.number) for v in values):
        return sorted(values)
    return sorted(values, key=str)


def factors(trials: pd.DataFrame, axes: list[str]) -> list[str]:
    """The axes whose effect can be estimated: not the seed, at least two levels."""
    return [a for a in axes if a != "seed" and a in trials and trials[a].nunique() >= 2]


def log_ratios(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed trials with a positive, finite ratio, with ``y = log(ber_ratio_map)``."""
    ratio = pd.to_numeric(trials["ber_ratio_map"], errors="coerce")
    ok = (trials["status"] == "completed") & (ratio > 0) & np.isfinite(ratio)
    return trials[ok].assign(y=np.log(ratio[ok]))


def axis_effects(done: pd.DataFrame, axis: str, axes: list[str]) -> list[dict]:
    """One row per level of ``axis`` (see the module docstring); ``p_adj`` filled later."""
    others = [a for a in axes if a != axis and a in done]
    blocks = done.pivot_table(index=others or None, columns=axis, values="y", aggfunc="mean")
    if not others:  # no other axis: every trial is its own block
        blocks = done.pivot_table(index=done.index, columns=axis, values="y")
    levels = [v for v in ordered(done[axis]) if v in blocks.columns]
    complete = blocks[levels].dropna()
    means = complete.mean() if len(complete) else blocks[levels].mean()
    best = means.idxmin()
    rows = []
    for level in levels:
        y = done.loc[done[axis] == level, "y"].to_numpy()
        mean, low, high = mean_interval(y)
        row = {"axis": axis, "level": level, "trials": len(y), "ratio": np.exp(mean)}
        row.update(ci_low=np.exp(low), ci_high=np.exp(high), best=level == best)
        d = (blocks[level] - blocks[best]).dropna().to_numpy()
        diff, d_low, d_high, p = paired(d) if level != best else (0.0, np.nan, np.nan, np.nan)
        row.update(blocks=len(d), delta=np.expm1(diff), p=p)
        row.update(delta_ci_low=np.expm1(d_low), delta_ci_high=np.expm1(d_high))
        rows.append(row)
    return rows


def effects_table(trials: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Main effects of every axis with ≥ 2 levels.

    Input
    -----
    trials : one row per trial (``trials.parquet``): ``status``, ``ber_ratio_map`` and a column
        per axis. axes : the run's axes (``seed`` is a blocking factor, never a factor itself).

    Output
    ------
    One row per (axis, level), :data:`EFFECT_COLUMNS`; ``failed`` counts the level's trials
    that did not complete (diverged or failed), which the estimates leave out.
    """
    done = log_ratios(trials)
    rows = [r for a in factors(done, axes) for r in axis_effects(done, a, axes)]
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    if table.empty:
        return table
    table["p_adj"] = holm(table["p"])
    table["significant"] = table["p_adj"] < ALPHA
    lost = trials[trials["status"] != "completed"]
    table["failed"] = [int((lost[a] == v).sum()) for a, v in zip(table["axis"], table["level"])]
    table["level"] = table["level"].astype(str)  # one column type for every axis's levels
    return table


def interaction_test(done: pd.DataFrame, a: str, b: str, axes: list[str]) -> dict | None:
    """F-test of the ``a:b`` interaction on the log ratio, other axes and seed additive."""
    if len(done.groupby([a, b])) < done[a].nunique() * done[b].nunique():
        return None  # a and b are not crossed: their interaction cannot be estimated
    cols = {axis: f"x{i}" for i, axis in enumerate(x for x in axes if x in done)}
    frame = done[[*cols, "y"]].rename(columns=cols).astype({c: str for c in cols.values()})
    terms = [f"C({cols[a]}):C({cols[b]})", *(f"C({c})" for c in cols.values())]
    constant = [c for c in cols.values() if frame[c].nunique() < 2]
    terms = [t for t in terms if not any(f"C({c})" == t for c in constant)]
    model = ols("y ~ " + " + ".join(terms), data=frame)
    if np.linalg.matrix_rank(model.exog) < model.exog.shape[1]:
        return None  # not a crossed design (e.g. a confirmation run's few settings)
    fit = model.fit()
    if fit.df_resid < 1:
        return None  # no replication left to estimate the error
    table = anova_lm(fit, typ=2)
    term = f"C({cols[a]}):C({cols[b]})"
    if term not in table.index or not np.isfinite(table.loc[term, "F"]):
        return None
    return {
        "axis_a": a,
        "axis_b": b,
        "trials": len(frame),
        "F": float(table.loc[term, "F"]),
        "df_num": float(table.loc[term, "df"]),
        "df_den": float(fit.df_resid),
        "p": float(table.loc[term, "PR(>F)"]),
    }


def interactions_table(trials: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Every pair of axes with ≥ 2 levels each: :data:`INTERACTION_COLUMNS`, Holm over pairs."""
    done = log_ratios(trials)
    names = factors(done, axes)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    rows = [r for a, b in pairs if (r := interaction_test(done, a, b, axes)) is not None]
    table = pd.DataFrame(rows, columns=INTERACTION_COLUMNS)
    if not table.empty:
        table["p_adj"] = holm(table["p"])
        table["significant"] = table["p_adj"] < ALPHA
    return table


def conditional_best(trials: pd.DataFrame, interactions: pd.DataFrame) -> pd.DataFrame:
    """For each significant interaction, each axis's best level at every level of the other.

    Output
    ------
    Columns ``axis``, ``given``, ``given_level``, ``best_level`` (lowest geometric-mean ratio over
    the trials with ``given == given_level``): says whether an interaction changes which level is
    best, or only by how much.
    """
    done, rows = log_ratios(trials), []
    hits = interactions[interactions["significant"].astype(bool)] if len(interactions) else []
    for a, b in zip(*(([], []) if len(hits) == 0 else (hits["axis_a"], hits["axis_b"]))):
        for axis, given in ((a, b), (b, a)):
            means = done.groupby([given, axis])["y"].mean()
            for level in ordered(done[given]):
                best = means.loc[level].idxmin()
                rows.append(
                    {
                        "axis": axis,
                        "given": given,
                        "given_level": str(level),
                        "best_level": str(best),
                    }
                )
    return pd.DataFrame(rows, columns=["axis", "given", "given_level", "best_level"])
