"""Figures of the effects analysis: each axis's levels with intervals, and the gap to MAP per
Eb/N0 point (matplotlib on the Agg backend, as ``analysis.plots``).

Each function takes tables and an output PNG path and returns the path, or ``None`` when the
data cannot support the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from symgrid.analysis.effects import log_ratios, ordered
from symgrid.analysis.plots import EBNO_LABEL, RATIO_LABEL, panels, plt, save, sns
from symgrid.analysis.stats import mean_interval
from symgrid.trainables.metrics import ratio_to_map

WORSE, SAME, BEST = "C3", "0.45", "C2"  # significantly worse than best, not distinguishable, best


def effect_figure(effects: pd.DataFrame, axis: str, path: Path) -> Path | None:
    """One axis's levels: geometric-mean BER ratio to MAP with its 95 % interval over trials,
    and each level's difference to the best level (paired over blocks) with its interval."""
    rows = effects[effects["axis"] == axis].reset_index(drop=True)
    if len(rows) < 2:
        return None
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 0.55 * len(rows) + 1.6), sharey=True, gridspec_kw={"wspace": 0.08}
    )
    y = np.arange(len(rows))
    colors = [
        BEST if b else (WORSE if s else SAME)
        for b, s in zip(rows["best"].astype(bool), rows["significant"].astype(bool))
    ]
    low, high = rows["ratio"] - rows["ci_low"], rows["ci_high"] - rows["ratio"]
    left.errorbar(rows["ratio"], y, xerr=[low.fillna(0), high.fillna(0)], fmt="none", ecolor=colors)
    left.scatter(rows["ratio"], y, c=colors, zorder=3)
    left.axvline(1.0, color="k", lw=0.8, ls="--")
    left.set(xlabel="BER / BER_MAP, geometric mean (95 % CI)", title=f"{axis}: levels")
    left.set_yticks(y, rows["level"])
    pct = 100 * rows["delta"]
    d_low = (pct - 100 * rows["delta_ci_low"]).fillna(0)
    d_high = (100 * rows["delta_ci_high"] - pct).fillna(0)
    right.errorbar(pct, y, xerr=[d_low, d_high], fmt="none", ecolor=colors)
    right.scatter(pct, y, c=colors, zorder=3)
    right.axvline(0.0, color="k", lw=0.8)
    right.set(xlabel="vs best level, % (paired, 95 % CI)", title="vs best")
    for i, row in rows.iterrows():
        note = "best" if row["best"] else f"p_adj = {row['p_adj']:.2g}"
        right.annotate(note, (pct[i], i), textcoords="offset points", xytext=(0, 7), fontsize=8)
    left.invert_yaxis()
    fig.suptitle(f"Effect of {axis} (green: best; red: significantly worse; grey: not)", y=1.02)
    return save(fig, path)


def level_point_ratios(trials: pd.DataFrame, ber: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per trial and Eb/N0 point, with the trial's level of ``axis``: ``y`` = log of the point's
    continuity-corrected ratio to MAP (``trainables.metrics.ratio_to_map``): no point is dropped,
    also where MAP or the detector made no errors."""
    done = log_ratios(trials)[["trial_id", axis]]
    points = ber.merge(done, on="trial_id")
    return points.assign(y=np.log(ratio_to_map(points["errors"], points["errors_map"])))


def ratio_vs_ebno(trials: pd.DataFrame, ber: pd.DataFrame, axis: str, path: Path) -> Path | None:
    """BER / BER_MAP against Eb/N0, one line per level of ``axis``: geometric mean over the
    level's trials (all other axes and seeds) with a 95 % t-interval whose unit is the trial."""
    if axis not in trials or trials[axis].nunique() < 2:
        return None
    points = level_point_ratios(trials, ber, axis)
    if points.empty or points["ebno_db"].nunique() < 2:
        return None
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (ax,) = panels(1, width=7.5, height=4.0)
    levels = ordered(points[axis])
    width = np.diff(np.sort(points["ebno_db"].unique())).min() * 0.25
    for i, level in enumerate(levels):
        rows = []
        for ebno, group in points[points[axis] == level].groupby("ebno_db"):
            mean, low, high = mean_interval(group["y"].to_numpy())
            rows.append((ebno, np.exp(mean), np.exp(low), np.exp(high)))
        x, mid, lo, hi = map(np.array, zip(*rows))
        shift = (i - (len(levels) - 1) / 2) * width / max(len(levels) - 1, 1)
        err = [np.nan_to_num(mid - lo), np.nan_to_num(hi - mid)]
        ax.errorbar(x + shift, mid, yerr=err, fmt="o-", ms=4, capsize=3, label=str(level))
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="bitwise MAP (optimal)")
    ax.set(xlabel=EBNO_LABEL, ylabel=RATIO_LABEL)
    ax.set_title(f"Gap to the optimal detector by {axis}\n(geometric mean over trials, 95 % CI)")
    ax.legend(title=axis, fontsize=8)
    return save(fig, path)
