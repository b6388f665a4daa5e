"""A confirmation run against its parent: did the screening winner hold on fresh seeds?

``symgrid confirm DIR --top K --seeds S`` re-runs the K best settings of DIR on S seeds that DIR
never used (fresh training data, fresh test samples, fresh initial weights). Here the two
rankings are lined up by setting. The screening estimates were selected as the best of many, so
they are optimistic (winner's curse); the confirmed estimates are not selected and are unbiased.

The winner *held* when the screening winner is also the best setting on the fresh seeds. Each
other setting is compared with the screening winner by its per-seed paired difference over the
fresh seeds (``analysis.stats.seed_differences``), with Bonferroni intervals and tests over the
K - 1 comparisons (``analysis.inference.seed_intervals``: t with seeds - 1 df), so a difference
is significant exactly when its printed interval excludes 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from symgrid.analysis.inference import ALPHA, seed_intervals
from symgrid.analysis.merit import DEFAULT, merit
from symgrid.analysis.stats import ranking, seed_differences

__all__ = ["confirmation_table", "verdict"]

COLUMNS = [
    "setting",
    "screening_rank",
    "screening_seeds",
    "screening_score",
    "screening_ci_low",
    "screening_ci_high",
    "confirmed_rank",
    "confirmed_seeds",
    "confirmed_score",
    "confirmed_ci_low",
    "confirmed_ci_high",
    "delta_vs_winner",
    "delta_ci_low",
    "delta_ci_high",
    "p_adj",
    "significant",
]


def confirmation_table(
    screening: pd.DataFrame,
    trials: pd.DataFrame,
    ber: pd.DataFrame,
    axes: list[str],
    metric: str = DEFAULT,
) -> pd.DataFrame:
    """Screening and confirmed estimates side by side, one row per confirmed setting.

    Input
    -----
    screening : the parent run's ranking (``analysis.stats.ranking``, by the same ``metric``)
    trials, ber : the confirmation run's tables. axes : its axes

    Output
    ------
    :data:`COLUMNS`, in screening order; ``delta_vs_winner`` is a setting's confirmed score
    against the screening winner's (> 0: worse; relative for the ratio, bits/symbol for the rate
    gap), paired over the fresh seeds, with its Bonferroni interval.
    """
    confirmed = ranking(trials, ber, axes, metric)
    if confirmed.empty:
        return pd.DataFrame(columns=COLUMNS)
    parts = ["rank", "seeds", "score", "ci_low", "ci_high"]
    names = parts
    left = screening[["setting", *parts]].rename(
        columns={p: f"screening_{n}" for p, n in zip(parts, names)}
    )
    right = confirmed[["setting", *parts]].rename(
        columns={p: f"confirmed_{n}" for p, n in zip(parts, names)}
    )
    table = left.merge(right, on="setting").sort_values("screening_rank").reset_index(drop=True)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    return against_winner(table, trials, axes, metric)[COLUMNS]


def against_winner(
    table: pd.DataFrame, trials: pd.DataFrame, axes: list[str], metric: str
) -> pd.DataFrame:
    """Each setting against the screening winner (first row), paired over the fresh seeds."""
    m, winner = merit(metric), table["setting"].iloc[0]
    family = len(table) - 1
    rows = []
    for s in table["setting"]:
        d = seed_differences(trials, winner, s, axes, metric) if s != winner else []
        if len(d) == 0:
            rows.append({"delta": 0.0 if s == winner else np.nan, "low": np.nan, "high": np.nan})
            rows[-1]["p_adj"] = np.nan
            continue
        tests = seed_intervals(np.asarray(d)[None, :], family)
        rows.append({k: float(tests[k][0]) for k in ("low", "high", "p_adj")})
        rows[-1]["delta"] = float(tests["mean"][0])
    return table.assign(
        delta_vs_winner=[m.change(r["delta"]) for r in rows],
        delta_ci_low=[m.change(r["low"]) for r in rows],
        delta_ci_high=[m.change(r["high"]) for r in rows],
        p_adj=[r["p_adj"] for r in rows],
    ).assign(significant=lambda t: t["p_adj"] < ALPHA)


def verdict(table: pd.DataFrame) -> dict | None:
    """Whether the screening winner held: ``winner``, ``held``, ``best`` (on fresh seeds) and
    ``beaten`` (settings significantly better than the winner on the fresh seeds)."""
    if table.empty:
        return None
    winner = table.iloc[0]
    best = table.loc[table["confirmed_score"].idxmin()]
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
        "screening_score": float(winner["screening_score"]),
        "confirmed_score": float(winner["confirmed_score"]),
    }
