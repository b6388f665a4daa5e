"""Figures of the effects analysis: each axis's levels with intervals, and the gap to MAP per
Eb/N0 point (matplotlib on the Agg backend, as ``analysis.plots``).

Each function takes tables and an output PNG path and returns the path, or ``None`` when the
data cannot support the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from symgrid.analysis.effects import ordered
from symgrid.analysis.merit import DEFAULT, merit, point_scores
from symgrid.analysis.plots import EBNO_LABEL, panels, plt, save, sns
from symgrid.analysis.stats import completed, mean_interval

__all__ = ["effect_figure", "gap_vs_ebno", "needs_log"]

WORSE, SAME, BEST = "C3", "0.45", "C2"  # significantly worse than best, not distinguishable, best
LOG_SPAN = 10.0  # ratios spanning more than this factor get a log y-axis


def effect_figure(effects: pd.DataFrame, axis: str, path: Path) -> Path | None:
    """One axis's levels: the figure of merit with its 95 % interval over seeds, and each
    level's difference to the best level (per-seed paired, Bonferroni 95 % interval)."""
    rows = effects[effects["axis"] == axis].reset_index(drop=True)
    if len(rows) < 2:
        return None
    m = merit(rows["metric"].iloc[0])
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 0.55 * len(rows) + 1.6), sharey=True, gridspec_kw={"wspace": 0.08}
    )
    y = np.arange(len(rows))
    colors = [
        BEST if b else (WORSE if s else SAME)
        for b, s in zip(rows["best"].astype(bool), rows["significant"].astype(bool))
    ]
    low, high = rows["score"] - rows["ci_low"], rows["ci_high"] - rows["score"]
    left.errorbar(rows["score"], y, xerr=[low.fillna(0), high.fillna(0)], fmt="none", ecolor=colors)
    left.scatter(rows["score"], y, c=colors, zorder=3)
    left.axvline(m.optimal, color="k", lw=0.8, ls="--")
    left.set(xlabel=f"{m.label} (95 % CI over seeds)", title=f"{axis}: levels")
    left.set_yticks(y, rows["level"])
    scale, unit = (100, "%") if m.log else (1, "bits/symbol")
    mid = scale * rows["delta"]
    d_low = (mid - scale * rows["delta_ci_low"]).fillna(0)
    d_high = (scale * rows["delta_ci_high"] - mid).fillna(0)
    right.errorbar(mid, y, xerr=[d_low, d_high], fmt="none", ecolor=colors)
    right.scatter(mid, y, c=colors, zorder=3)
    right.axvline(0.0, color="k", lw=0.8)
    right.set(xlabel=f"vs best level, {unit} (per seed, Bonferroni 95 % CI)", title="vs best")
    for i, row in rows.iterrows():
        note = "best" if row["best"] else f"p_adj = {row['p_adj']:.2g}"
        note = f"identical to {row['identical_to']}" if row["identical_to"] else note
        right.annotate(note, (mid[i], i), textcoords="offset points", xytext=(0, 7), fontsize=8)
    left.invert_yaxis()
    fig.suptitle(f"Effect of {axis} (green: best; red: significantly worse; grey: not)", y=1.02)
    return save(fig, path)


def needs_log(ratios: np.ndarray) -> bool:
    """Whether positive ratios span more than :data:`LOG_SPAN` (then a linear axis hides the
    low-SNR points' differences under the high-SNR ones)."""
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    return len(ratios) > 0 and ratios.max() / ratios.min() > LOG_SPAN


def level_points(trials: pd.DataFrame, ber: pd.DataFrame, axis: str, metric: str) -> pd.DataFrame:
    """Per trial and Eb/N0 point, with the trial's level of ``axis`` and seed: ``y`` = the
    point's response (``analysis.merit.point_scores``: the log of the continuity-corrected ratio
    to MAP, or the rate gap), so no point is dropped where MAP or the detector made no errors."""
    done = completed(trials, metric)[["trial_id", "seed", axis]]
    points = ber.merge(done, on="trial_id")
    return points.assign(y=point_scores(points, merit(metric)))


def gap_vs_ebno(
    trials: pd.DataFrame, ber: pd.DataFrame, axis: str, path: Path, metric: str = DEFAULT
) -> Path | None:
    """The gap to MAP against Eb/N0, one line per level of ``axis``: the level's mean per seed
    (over the other axes), then the mean and 95 % t-interval over seeds; a log y-axis for the
    ratio when it spans more than :data:`LOG_SPAN`."""
    if axis not in trials or trials[axis].nunique() < 2:
        return None
    m = merit(metric)
    points = level_points(trials, ber, axis, metric)
    points = points[np.isfinite(points["y"])]
    if points.empty or points["ebno_db"].nunique() < 2:
        return None
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (ax,) = panels(1, width=7.5, height=4.0)
    levels = ordered(points[axis])
    width = np.diff(np.sort(points["ebno_db"].unique())).min() * 0.25
    drawn = []
    for i, level in enumerate(levels):
        per_seed = points[points[axis] == level].groupby(["ebno_db", "seed"])["y"].mean()
        rows = [(e, *mean_interval(g.to_numpy())) for e, g in per_seed.groupby(level=0)]
        x, mid, lo, hi = (np.array(v, float) for v in zip(*rows))
        mid, lo, hi = m.show(mid), m.show(lo), m.show(hi)
        drawn.append(mid)
        shift = (i - (len(levels) - 1) / 2) * width / max(len(levels) - 1, 1)
        err = [np.nan_to_num(mid - lo), np.nan_to_num(hi - mid)]
        ax.errorbar(x + shift, mid, yerr=err, fmt="o-", ms=4, capsize=3, label=str(level))
    ax.axhline(m.optimal, color="k", lw=0.8, ls="--", label="bitwise MAP (optimal)")
    if m.log and needs_log(np.concatenate(drawn)):
        ax.set_yscale("log")
    ax.set(xlabel=EBNO_LABEL, ylabel=m.label)
    ax.set_title(f"Gap to the optimal detector by {axis}\n(mean over seeds, 95 % CI, t)")
    ax.legend(title=axis, fontsize=8)
    return save(fig, path)
