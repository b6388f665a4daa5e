"""A confirmation run against its parent: did the screening winner hold on fresh seeds?

``symgrid confirm DIR --top K --seeds S`` re-runs the K best settings of DIR on S seeds that DIR
never used (fresh training data, fresh test samples, fresh initial weights). Here the two
rankings are lined up by setting. The screening estimates were selected as the best of many, so
they are optimistic (winner's curse); the confirmed estimates are not selected and are unbiased.

The winner *held* when the screening winner is also the best setting on the fresh seeds. Each
other setting is compared with the screening winner by a paired t-test on the log ratio over the
fresh seeds (``analysis.stats.compare_settings``), Holm-corrected over the K - 1 comparisons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from symgrid.analysis.stats import ALPHA, compare_settings, holm, ranking

COLUMNS = [
    "setting",
    "screening_rank",
    "screening_seeds",
    "screening_ratio",
    "screening_ci_low",
    "screening_ci_high",
    "confirmed_rank",
    "confirmed_seeds",
    "confirmed_ratio",
    "confirmed_ci_low",
    "confirmed_ci_high",
    "delta_vs_winner",
    "delta_ci_low",
    "delta_ci_high",
    "p_adj",
    "significant",
]


def confirmation_table(
    screening: pd.DataFrame, trials: pd.DataFrame, ber: pd.DataFrame, axes: list[str]
) -> pd.DataFrame:
    """Screening and confirmed estimates side by side, one row per confirmed setting.

    Input
    -----
    screening : the parent run's ranking (``analysis.stats.ranking``)
    trials, ber : the confirmation run's tables. axes : its axes

    Output
    ------
    :data:`COLUMNS`, in screening order; ``delta_vs_winner`` is a setting's confirmed ratio
    relative to the screening winner's (> 0: worse), paired over the fresh seeds.
    """
    confirmed = ranking(trials, ber, axes)
    if confirmed.empty:
        return pd.DataFrame(columns=COLUMNS)
    parts = ["rank", "seeds", "ber_ratio_map", "ci_low", "ci_high"]
    names = ["rank", "seeds", "ratio", "ci_low", "ci_high"]
    left = screening[["setting", *parts]].rename(
        columns={p: f"screening_{n}" for p, n in zip(parts, names)}
    )
    right = confirmed[["setting", *parts]].rename(
        columns={p: f"confirmed_{n}" for p, n in zip(parts, names)}
    )
    table = left.merge(right, on="setting").sort_values("screening_rank").reset_index(drop=True)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    return against_winner(table, trials, axes)[COLUMNS]


def against_winner(table: pd.DataFrame, trials: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Each setting against the screening winner (first row), paired over the fresh seeds."""
    winner = table["setting"].iloc[0]
    same = {"delta": 0.0, "delta_ci_low": np.nan, "delta_ci_high": np.nan, "p": np.nan}
    rows = [
        compare_settings(trials, winner, s, axes) if s != winner else same for s in table["setting"]
    ]
    return table.assign(
        delta_vs_winner=[r["delta"] for r in rows],
        delta_ci_low=[r["delta_ci_low"] for r in rows],
        delta_ci_high=[r["delta_ci_high"] for r in rows],
        p_adj=holm([r["p"] for r in rows]),
    ).assign(significant=lambda t: t["p_adj"] < ALPHA)


def verdict(table: pd.DataFrame) -> dict | None:
    """Whether the screening winner held: ``winner``, ``held``, ``best`` (on fresh seeds) and
    ``beaten`` (settings significantly better than the winner on the fresh seeds)."""
    if table.empty:
        return None
    winner = table.iloc[0]
    best = table.loc[table["confirmed_ratio"].idxmin()]
    beaten = table[table["significant"].astype(bool) & (table["delta_vs_winner"] < 0)]
    return {
        "winner": winner["setting"],
        "held": bool(best["setting"] == winner["setting"]),
        "best": best["setting"],
        "beaten_by": list(beaten["setting"]),
        "worse": list(
            table[table["significant"].astype(bool) & (table["delta_vs_winner"] > 0)]["setting"]
        ),
        "seeds": int(winner["confirmed_seeds"]),
        "screening_ratio": float(winner["screening_ratio"]),
        "confirmed_ratio": float(winner["confirmed_ratio"]),
    }
