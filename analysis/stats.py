"""The report's statistics: settings ranked by BER ratio to MAP, with intervals and tests.

A *setting* is one combination of every axis but ``seed``; its replicates are its seeds. Each
trial's ``ber_ratio_map`` is the mean over eval points of BER / BER of bitwise MAP on the same
samples (paired), so 1 means optimal.

- Interval across seeds: Student t, 95 %, where a setting has ≥ 2 completed seeds; with one seed,
  the mean over points of the Clopper-Pearson bounds divided by the MAP BER (MAP BER held fixed).
- Verdict against MAP: McNemar p-values of every (seed, Eb/N0) point of the setting, Holm's
  step-down correction across those points at family-wise α = 0.05.
- Best vs runner-up: two-sided paired t-test on the per-point ratios matched by (seed, Eb/N0);
  a trial's test set is drawn from its seed, so matched points are the same received samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
VERDICT = "vs MAP (McNemar, Holm, α=0.05)"


def setting_keys(axes: list[str]) -> list[str]:
    return [a for a in axes if a != "seed"]


def label(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys) if keys else "all trials"


def t_interval(values: np.ndarray) -> tuple[float, float]:
    mean, n = float(np.mean(values)), len(values)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def holm_reject(pvalues: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down test: which hypotheses are rejected at family-wise ``alpha``."""
    order = np.argsort(pvalues)
    m, reject = len(pvalues), np.zeros(len(pvalues), bool)
    for i, idx in enumerate(order):
        if pvalues[idx] > alpha / (m - i):
            break
        reject[idx] = True
    return reject


def mcnemar_verdict(points: pd.DataFrame) -> str:
    """One phrase: at how many of the setting's points the detector differs from MAP."""
    points = points[points["mcnemar_p"].notna()]
    if points.empty:
        return "no points"
    reject = holm_reject(points["mcnemar_p"].to_numpy(float))
    worse = int((reject & (points["n01"] > points["n10"]).to_numpy()).sum())
    better = int((reject & (points["n10"] > points["n01"]).to_numpy()).sum())
    m = len(points)
    if worse == better == 0:
        return f"not distinguishable at {m}/{m} points"
    text = f"worse at {worse}/{m} points" if worse else ""
    return text + (f"{'; ' if text else ''}better at {better}/{m} (check!)" if better else "")


def point_ratios(ber: pd.DataFrame) -> pd.DataFrame:
    """Per-point BER ratio to MAP and its Clopper-Pearson bounds (points with MAP errors)."""
    ok = ber[ber["ber_map"] > 0]
    return ok.assign(
        ratio=ok["ber"] / ok["ber_map"],
        ratio_low=ok["ci_low"] / ok["ber_map"],
        ratio_high=ok["ci_high"] / ok["ber_map"],
    )


def setting_row(members: pd.DataFrame, points: pd.DataFrame) -> dict:
    ratios = members["ber_ratio_map"].to_numpy(float)
    if len(ratios) >= 2:
        low, high, kind = *t_interval(ratios), f"t over {len(ratios)} seeds"
    else:
        mine = point_ratios(points)
        low, high, kind = mine["ratio_low"].mean(), mine["ratio_high"].mean(), "per-point CP"
    return {
        "seeds": len(ratios),
        "ber_ratio_map": float(ratios.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "interval": kind,
        VERDICT: mcnemar_verdict(points),
    }


def ranking(trials: pd.DataFrame, ber: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Settings ranked by mean BER ratio to MAP (completed trials only), best first."""
    keys = [k for k in setting_keys(axes) if k in trials]
    done = trials[(trials["status"] == "completed") & trials["ber_ratio_map"].notna()]
    columns = ["rank", "setting", *keys, "seeds", "ber_ratio_map", "ci_low", "ci_high"]
    if done.empty:
        return pd.DataFrame(columns=[*columns, "interval", VERDICT])
    groups = done.groupby(keys, dropna=False, sort=False) if keys else [((), done)]
    rows = []
    for _, members in groups:
        points = ber[ber["trial_id"].isin(members["trial_id"])]
        first = members.iloc[0]
        row = {"setting": label(first, keys), **{k: first[k] for k in keys}}
        rows.append({**row, **setting_row(members, points)})
    table = pd.DataFrame(rows).sort_values("ber_ratio_map", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def matched_ratios(trials, ber, setting: str, keys: list[str]) -> pd.Series:
    """A setting's per-point ratios indexed by (seed, ebno_db)."""
    done = trials[trials["status"] == "completed"]
    members = done[done.apply(lambda r: label(r, keys), axis=1) == setting]
    points = point_ratios(ber).merge(members[["trial_id", "seed"]], on="trial_id")
    return points.set_index(["seed", "ebno_db"])["ratio"]


def best_vs_runner_up(trials, ber, table: pd.DataFrame, axes: list[str]) -> dict | None:
    """Paired t-test of the best setting against the runner-up over matched points."""
    if len(table) < 2:
        return None
    keys = [k for k in setting_keys(axes) if k in trials]
    best, second = table.iloc[0], table.iloc[1]
    pairs = pd.concat(
        [matched_ratios(trials, ber, r["setting"], keys) for r in (best, second)],
        axis=1,
        join="inner",
    )
    diff = (pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy(float)
    result = {"best": best["setting"], "runner_up": second["setting"], "pairs": len(diff)}
    if len(diff) < 2 or np.all(diff == diff[0]):
        return {**result, "p": None, "significant": False, "mean_diff": float(np.mean(diff))}
    p = float(stats.ttest_rel(pairs.iloc[:, 0], pairs.iloc[:, 1]).pvalue)
    significant = p < ALPHA and diff.mean() < 0
    return {**result, "p": p, "significant": bool(significant), "mean_diff": float(diff.mean())}


def best_sentence(result: dict | None, table: pd.DataFrame) -> str:
    """One plain sentence naming the best setting and whether it beats the runner-up."""
    if table.empty:
        return "No completed trials: nothing to rank."
    top = table.iloc[0]
    head = (
        f"Best setting: {top['setting']} (BER ratio to MAP {top['ber_ratio_map']:.4f}, "
        f"95 % CI {top['ci_low']:.4f}-{top['ci_high']:.4f})."
    )
    if result is None:
        return head + " It is the only setting."
    if result["p"] is None:
        return (
            head
            + f" Too few matched points to test it against the runner-up ({result['runner_up']})."
        )
    verdict = (
        "significantly better than" if result["significant"] else "not significantly better than"
    )
    return head + (
        f" It is {verdict} the runner-up ({result['runner_up']}): paired t-test over "
        f"{result['pairs']} matched (seed, Eb/N0) points, p = {result['p']:.3g}, mean difference "
        f"{result['mean_diff']:+.4f}."
    )
