"""The report's statistics: intervals, tests and the ranking of settings by the figure of merit.

A *setting* is one combination of every axis but ``seed``; its replicates are its seeds, and the
seed (one trained model and one test set per seed) is the unit of every interval and test here:
the Eb/N0 points of one trial share one trained model, so they are not independent. The figure
of merit (``analysis.merit``) is each trial's ``log_ratio_map`` (shown as a ratio to bitwise MAP,
1 = optimal) or ``rate_gap`` (bits/symbol, 0 = optimal).

- Interval across seeds: Student t, 95 %, n_seeds - 1 df, on the analysed scale (a geometric mean
  for the ratio), where a setting has ≥ 2 completed seeds; with one seed there is no seed-level
  interval, and the trial's own test-set noise is shown, labelled as such: ± 1.96 standard errors
  where the trial recorded one (``log_ratio_map_se``, ``rate_gap_se``), else the mean over points
  of the Clopper-Pearson bounds divided by the MAP BER.
- Verdict against MAP: McNemar p-values of every (seed, Eb/N0) point of the setting, Holm's
  step-down correction across those points at family-wise α = 0.05 (each point is its own test
  of the same detector on different samples: here the point is the right unit).
- Best vs runner-up: paired t-test of the two settings' trials matched by seed (a trial's test set
  is drawn from its seed, so matched trials see the same received samples), seeds - 1 degrees of
  freedom. Both settings were picked from every setting by sorting the same data (winner's
  curse): their lead is optimistic, which ``symgrid confirm`` checks on fresh seeds.
- Fewer than :data:`MIN_SEEDS` seeds separate nothing: the report says so instead of printing
  intervals as findings (with 2 seeds a t-interval has 1 df and is ~6 times the standard error).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from symgrid.analysis.inference import ALPHA
from symgrid.analysis.merit import DEFAULT, Merit, merit, scores

__all__ = [
    "MIN_SEEDS",
    "NO_MAP_ERRORS",
    "VERDICT",
    "best_vs_runner_up",
    "completed",
    "holm",
    "label",
    "mcnemar_verdict",
    "mean_interval",
    "paired",
    "ranking",
    "seed_differences",
    "setting_keys",
]

CONFIDENCE = 0.95  # of every unadjusted interval
MIN_SEEDS = 3  # below this, "too few seeds to separate settings": a 1-df interval is no finding
Z95 = 1.959963984540054  # normal 97.5 % quantile, for a one-seed trial's test-set noise
VERDICT = "vs MAP (McNemar, Holm, α=0.05)"
NO_MAP_ERRORS = "points_no_map_errors"  # trials column: test points where MAP made no errors


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN (no test) stays NaN and out of the family.

    The i-th smallest of m p-values becomes max over j <= i of (m - j + 1) p_(j), capped at 1:
    the same numbers as ``statsmodels.stats.multitest.multipletests(method="holm")`` (checked by
    tests/test_stats.py), which is not called here because it runs ``gc.collect()`` on every
    call: 0.1-0.5 s each in a driver holding Ray and the tables, minutes for the ~1,400 settings
    of a lecture-sized grid.
    """
    p = np.asarray(pvalues, float)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]  # indices, smallest p first
    m = len(order)
    steps = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))  # (m - j + 1) p_(j), monotone
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % Student-t interval (NaN bounds below two values; all NaN for none)."""
    values = np.asarray(values, float)
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    if np.all(values == values[0]):
        return mean, mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, mean, stats.sem(values))
    return mean, float(low), float(high)


def paired(d: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, 95 % t-interval and two-sided p of paired differences ``d`` (p = 1 when all are 0)."""
    mean, low, high = mean_interval(d)
    if len(d) < 2:
        return mean, low, high, np.nan
    if np.all(d == d[0]):  # identical outcomes: no evidence of a difference, or a constant shift
        return mean, low, high, 1.0 if d[0] == 0 else 0.0
    return mean, low, high, float(stats.ttest_1samp(d, 0.0).pvalue)


def setting_keys(axes: list[str]) -> list[str]:
    return [a for a in axes if a != "seed"]


def label(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys) if keys else "all trials"


def mcnemar_verdict(points: pd.DataFrame) -> str:
    """One phrase: at how many of the setting's points the detector differs from MAP."""
    points = points[points["mcnemar_p"].notna()]
    if points.empty:
        return "no points"
    reject = holm(points["mcnemar_p"].to_numpy(float)) < ALPHA
    worse = int((reject & (points["n01"] > points["n10"]).to_numpy()).sum())
    better = int((reject & (points["n10"] > points["n01"]).to_numpy()).sum())
    m = len(points)
    if worse == better == 0:
        return f"not distinguishable at {m}/{m} points"
    text = f"worse at {worse}/{m} points" if worse else ""
    return text + (f"{'; ' if text else ''}better at {better}/{m} (check!)" if better else "")


def point_ratios(ber: pd.DataFrame) -> pd.DataFrame:
    """Per-point BER ratio to MAP and its Clopper-Pearson bounds, for the test-set-noise interval
    of a one-seed setting (bounds divided by the MAP BER: points where MAP made errors only)."""
    ok = ber[ber["ber_map"] > 0]
    return ok.assign(
        ratio=ok["ber"] / ok["ber_map"],
        ratio_low=ok["ci_low"] / ok["ber_map"],
        ratio_high=ok["ci_high"] / ok["ber_map"],
    )


def setting_row(members: pd.DataFrame, points: pd.DataFrame, m: Merit) -> dict:
    y = members["y"].to_numpy(float)
    mean, low, high = mean_interval(y)
    kind = f"t over {len(y)} seeds"
    se = pd.to_numeric(members.get(f"{m.column}_se"), errors="coerce")
    if len(y) < 2 and se is not None and np.isfinite(se).all():
        low, high = mean - Z95 * float(se.iloc[0]), mean + Z95 * float(se.iloc[0])
        kind = "1 seed: test-set noise only (± 1.96 SE)"
    elif len(y) < 2 and m.log:
        mine = point_ratios(points)
        low, high = np.log(mine["ratio_low"].mean()), np.log(mine["ratio_high"].mean())
        kind = "1 seed: test-set noise only (CP)"
    verdict = mcnemar_verdict(points)
    if verdict.startswith("not distinguishable") and np.isfinite(high):  # absence of evidence:
        verdict += f"; the data allow up to {float(m.show(high)):.{m.digits}f}"  # how far off
    return {
        "seeds": len(y),
        "score": float(m.show(mean)),
        "ci_low": float(m.show(low)),
        "ci_high": float(m.show(high)),
        "interval": kind,
        VERDICT: verdict,
    }


def completed(trials: pd.DataFrame, metric: str = DEFAULT) -> pd.DataFrame:
    """Completed trials with a finite figure of merit, with it as ``y``."""
    y = scores(trials, merit(metric))
    ok = (trials["status"] == "completed") & np.isfinite(y)
    return trials[ok].assign(y=y[ok])


def ranking(
    trials: pd.DataFrame, ber: pd.DataFrame, axes: list[str], metric: str = DEFAULT
) -> pd.DataFrame:
    """Settings ranked by their mean figure of merit over seeds (completed trials), best first.

    Output
    ------
    One row per setting: ``rank``, ``setting`` (its label), one column per non-seed axis,
    ``network`` (the detector's class and arguments, where the trials record it),
    ``seeds``, ``score`` (a geometric-mean ratio to MAP, or the mean rate gap), ``ci_low``,
    ``ci_high``, ``interval`` (how the interval was made) and the :data:`VERDICT` column.
    """
    m = merit(metric)
    keys = [k for k in setting_keys(axes) if k in trials]
    done = completed(trials, metric)
    columns = ["rank", "setting", *keys, "seeds", "score", "ci_low", "ci_high"]
    if done.empty:
        return pd.DataFrame(columns=[*columns, "interval", VERDICT])
    groups = done.groupby(keys, dropna=False, sort=False) if keys else [((), done)]
    rows = []
    for _, members in groups:
        points = ber[ber["trial_id"].isin(members["trial_id"])]
        first = members.iloc[0]
        row = {"setting": label(first, keys), **{k: first[k] for k in keys}}
        if "network" in members:  # the detector and its arguments (older runs lack it)
            row["network"] = first["network"]
        if NO_MAP_ERRORS in members:  # the ratio could not use these points (issue 11's count)
            row[NO_MAP_ERRORS] = int(pd.to_numeric(members[NO_MAP_ERRORS]).fillna(0).sum())
        rows.append({**row, **setting_row(members, points, m)})
    table = pd.DataFrame(rows).sort_values("score", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def seed_scores(trials: pd.DataFrame, setting: str, axes: list[str], metric: str) -> pd.Series:
    """A setting's per-trial response ``y``, indexed by seed."""
    keys = [k for k in setting_keys(axes) if k in trials]
    done = completed(trials, metric)
    mine = done[done.apply(lambda r: label(r, keys), axis=1) == setting]
    return mine.set_index("seed")["y"].astype(float)


def seed_differences(trials: pd.DataFrame, a: str, b: str, axes: list[str], metric: str):
    """``y`` of setting ``b`` minus ``a`` per seed both completed: [seeds], float."""
    pairs = pd.concat([seed_scores(trials, s, axes, metric) for s in (a, b)], axis=1, join="inner")
    return pairs.iloc[:, 1].to_numpy(float) - pairs.iloc[:, 0].to_numpy(float)


def compare_settings(
    trials: pd.DataFrame, a: str, b: str, axes: list[str], metric: str = DEFAULT
) -> dict:
    """Paired comparison of settings ``b`` against ``a`` over the seeds both completed.

    Output
    ------
    dict: ``seeds`` (matched), ``delta`` (``b`` against ``a`` on the shown scale: relative for
    the ratio, bits/symbol for the rate gap; > 0 means ``b`` is worse), ``delta_ci_low``,
    ``delta_ci_high`` (95 %, t with seeds - 1 degrees of freedom) and ``p`` (two-sided paired
    t-test).
    """
    m = merit(metric)
    d = seed_differences(trials, a, b, axes, metric)
    if len(d) == 0:
        nan = np.nan
        return {"seeds": 0, "delta": nan, "delta_ci_low": nan, "delta_ci_high": nan, "p": nan}
    mean, low, high, p = paired(d)
    return {
        "seeds": len(d),
        "delta": m.change(mean),
        "delta_ci_low": m.change(low),
        "delta_ci_high": m.change(high),
        "p": p,
    }


def best_vs_runner_up(
    trials: pd.DataFrame, table: pd.DataFrame, axes: list[str], metric: str = DEFAULT
) -> dict | None:
    """The best setting against the runner-up, paired by seed (see :func:`compare_settings`).

    Output
    ------
    None with fewer than two settings; else :func:`compare_settings`'s dict plus ``best``,
    ``runner_up``, ``significant`` (p < ALPHA and the runner-up worse), ``overlapping`` (how
    many other settings' intervals reach down to the best's score), ``selected_from`` (how
    many settings the best was picked from) and ``identical`` (the two settings' trials gave the
    same results seed for seed: the same model, e.g. bce and bce_logits).
    """
    if len(table) < 2:
        return None
    best, second = table.iloc[0], table.iloc[1]
    result = compare_settings(trials, best["setting"], second["setting"], axes, metric)
    others = table.iloc[1:]
    overlapping = int((others["ci_low"] <= best["score"]).sum())
    significant = bool(result["p"] < ALPHA and result["delta"] > 0)
    same = [result[k] for k in ("delta", "delta_ci_low", "delta_ci_high")]
    return {
        "identical": result["seeds"] >= 2 and same == [0.0, 0.0, 0.0],  # the same trials
        **result,
        "best": best["setting"],
        "runner_up": second["setting"],
        "significant": significant,
        "overlapping": overlapping,
        "selected_from": len(table),
    }
