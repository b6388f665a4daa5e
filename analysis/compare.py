"""Several runs side by side: the settings and axis levels that more than one run measured.

Two runs of the same grid (at two model sizes, on two machines, a screening run and its
confirmation) share settings. These tables line them up by setting label and by (axis, level), one
column per run, so a reader sees at a glance whether a finding carries over. Each cell is that
run's own estimate and interval (``analysis.stats.ranking``, ``analysis.effects.effects_table``).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["cell", "levels_across", "settings_across"]


def cell(ratio: float, low: float, high: float) -> str:
    if pd.isna(low) or pd.isna(high):
        return f"{ratio:.4f}"
    return f"{ratio:.4f} ({low:.4f}-{high:.4f})"


def side_by_side(frames: dict[str, pd.DataFrame], keys: list[str], value: str) -> pd.DataFrame:
    """Rows present in ≥ 2 runs, in the first run's order (a ranking: best first): ``keys``,
    then one column per run, ``value (ci_low-ci_high)``."""
    cells = []
    for name, frame in frames.items():
        if frame.empty:
            continue
        text = [cell(*v) for v in zip(frame[value], frame["ci_low"], frame["ci_high"])]
        cells.append(frame[keys].assign(run=name, text=text))
    if not cells:
        return pd.DataFrame(columns=keys)
    long = pd.concat(cells, ignore_index=True)
    shared = long.groupby(keys)["run"].transform("nunique") >= 2
    if not shared.any():
        return pd.DataFrame(columns=keys)
    wide = long[shared].pivot_table(index=keys, columns="run", values="text", aggfunc="first")
    order = long[shared].drop_duplicates(keys).set_index(keys).index  # the first run's order
    return wide.reindex(index=order, columns=[n for n in frames if n in wide.columns]).reset_index()


def settings_across(rankings: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each shared setting's score (95 % CI over seeds) in every run."""
    return side_by_side(rankings, ["setting"], "score")


def levels_across(effects: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each shared (axis, level)'s score (95 % CI over seeds) in every run."""
    return side_by_side(effects, ["axis", "level"], "score")
