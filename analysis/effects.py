"""Main effects, interactions and conditional effects of the grid's axes, inferred over seeds.

The response ``y`` of a trial is its figure of merit (``analysis.merit``): ``log_ratio_map`` (the
BER ratio to MAP on the log scale: ratios multiply, so a level's effect is a difference) or
``rate_gap`` (bits/symbol). The unit of replication is the **seed** (``analysis.inference``
explains the arithmetic and why): every interval has ``n_seeds - 1`` degrees of freedom.

Main effect of an axis
    Levels whose trials are identical trial for trial (the same ``y`` in every shared block:
    ``bce`` and ``bce_logits``, a scheduler that never changed the lr) are the same model; they
    are reported as ``identical_to`` the first of them and never tested. Between the remaining
    levels every pair is a contrast; the family is every such pair of every axis of the run, with
    Bonferroni intervals and tests (``inference.seed_intervals``). The table shows each level
    against the axis's *best* level (lowest mean over the blocks where every level completed):
    since every pair is in the family, the best being chosen from the same data does not break
    the intervals' joint coverage. A level's own ``score`` is ``exp(mean y)`` (or the mean gap)
    with a per-level 95 % t-interval over seeds (unadjusted: a description, not a test).

Interaction of two axes
    The seed-level F-test (``inference.interaction_f``), Holm over the pairs tested. A pair that
    cannot be tested keeps a row with its ``reason``.

Conditional effects (``conditional_best``)
    For each significant interaction, each axis's levels against its overall best level at every
    level of the other axis, Bonferroni over all of these rows. A level significantly better than
    the overall best at some level of the other axis is what "the best level depends on X" means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from symgrid.analysis.inference import ALPHA, contrasts, interaction_f, nanmean, seed_intervals
from symgrid.analysis.merit import DEFAULT, Merit, merit, point_scores
from symgrid.analysis.stats import completed, holm, mean_interval

__all__ = [
    "conditional_best",
    "effects_by_point",
    "effects_table",
    "interactions_table",
    "ordered",
]

EFFECT_COLUMNS = ["axis", "level", "metric", "trials", "failed", "score", "ci_low", "ci_high"]
EFFECT_COLUMNS += ["best", "identical_to", "seeds", "delta", "delta_ci_low", "delta_ci_high"]
EFFECT_COLUMNS += ["p", "p_adj", "significant"]
INTERACTION_COLUMNS = ["axis_a", "axis_b", "seeds", "F", "df_num", "df_den", "p", "p_adj"]
INTERACTION_COLUMNS += ["significant", "reason"]
CONDITIONAL_COLUMNS = ["axis", "given", "given_level", "level", "reference", "best_level"]
CONDITIONAL_COLUMNS += ["seeds", "delta", "delta_ci_low", "delta_ci_high", "p", "p_adj"]
CONDITIONAL_COLUMNS += ["significant"]
SAME = 1e-12  # relative tolerance of "identical trial for trial" (the same float computation)


def ordered(values) -> list:
    """Distinct axis values, numbers ascending, otherwise as strings in sorted order."""
    values = list(dict.fromkeys(v for v in values if v is not None and v == v))
    if all(isinstance(v, int | float | np.number) for v in values):
        return sorted(values)
    return sorted(values, key=str)


def factors(trials: pd.DataFrame, axes: list[str]) -> list[str]:
    """The axes whose effect can be estimated: not the seed, at least two levels."""
    return [a for a in axes if a != "seed" and a in trials and trials[a].nunique() >= 2]


def level_cube(done: pd.DataFrame, axis: str, axes: list[str]) -> tuple[list, np.ndarray]:
    """The axis's levels and ``y`` as [seeds, blocks, levels] (NaN: no completed trial)."""
    others = [a for a in axes if a not in (axis, "seed") and a in done]
    block = done.groupby(others, dropna=False).ngroup() if others else pd.Series(0, done.index)
    seed = done["seed"] if "seed" in done else pd.Series(0, done.index)
    wide = done.assign(_seed=seed, _block=block).pivot_table(
        index=["_seed", "_block"], columns=axis, values="y", aggfunc="mean"
    )
    levels = [v for v in ordered(done[axis]) if v in wide.columns]
    full = pd.MultiIndex.from_product([ordered(seed), sorted(block.unique())])
    cube = wide.reindex(index=full, columns=levels).to_numpy(float)
    return levels, cube.reshape(len(full.levels[0]), len(full.levels[1]), len(levels))


def identical(cube: np.ndarray) -> list[int]:
    """For each level, the index of the first level identical to it trial for trial (itself
    when none): the same ``y`` in every block where both completed, and at least one such."""
    rep = list(range(cube.shape[-1]))
    for v in range(cube.shape[-1]):
        for u in range(v):
            a, b = cube[..., u], cube[..., v]
            both = np.isfinite(a) & np.isfinite(b)
            if rep[u] == u and both.any() and np.allclose(a[both], b[both], rtol=SAME, atol=0):
                rep[v] = u
                break
    return rep


def best_index(cube: np.ndarray, candidates: list[int]) -> int:
    """The candidate level that the paired contrasts rank lowest: the mean of its contrasts with
    every other candidate (each on the seeds' blocks where both completed, as the tests use), so
    that no level is reported better than the best. On a complete grid this is the level with
    the lowest mean; where exclusions leave some levels in fewer blocks (label smoothing with only
    some losses), comparing means over different blocks could name a best that a test then finds
    worse than another level."""
    if len(candidates) < 2:
        return candidates[0]
    pairs = [(u, v) for i, u in enumerate(candidates) for v in candidates[i + 1 :]]
    mean = nanmean(contrasts(cube, pairs), axis=-1)  # [pairs]: y[v] - y[u]
    score = dict.fromkeys(candidates, 0.0)
    for (u, v), d in zip(pairs, mean):
        if np.isfinite(d):
            score[v], score[u] = score[v] + d, score[u] - d
    return min(candidates, key=lambda i: score[i])


def axis_plan(done: pd.DataFrame, axis: str, axes: list[str]) -> dict:
    """One axis's levels, identical levels, best level, and per-seed contrasts of every pair of
    distinct levels (``pairs`` and ``d``: [pairs, seeds])."""
    levels, cube = level_cube(done, axis, axes)
    rep = identical(cube)
    best = best_index(cube, sorted(set(rep)))
    distinct = sorted(set(rep))
    pairs = [(u, v) for i, u in enumerate(distinct) for v in distinct[i + 1 :]]
    d = contrasts(cube, pairs) if pairs else np.empty((0, cube.shape[0]))
    return {
        "axis": axis,
        "levels": levels,
        "rep": rep,
        "best": best,
        "pairs": pairs,
        "d": d,
        "per_seed": nanmean(cube, axis=1),  # [seeds, levels]: each level's mean in each seed
    }


def against_best(plan: dict, tests: dict, v: int) -> dict:
    """Level ``v`` against the best level, from the family's intervals of its pair."""
    best, u = plan["best"], plan["rep"][v]
    if u == best:
        return {"delta": 0.0, "delta_ci_low": np.nan, "delta_ci_high": np.nan}
    i = plan["pairs"].index((min(best, u), max(best, u)))
    sign = 1.0 if best < u else -1.0  # each pair's contrast is y[later] - y[earlier]
    low, high = sorted((sign * tests["low"][i], sign * tests["high"][i]))
    return {
        "seeds": int(tests["seeds"][i]),
        "delta": sign * tests["mean"][i],
        "delta_ci_low": low,
        "delta_ci_high": high,
        "p": tests["p"][i],
        "p_adj": tests["p_adj"][i],
    }


def plan_rows(plan: dict, tests: dict, done: pd.DataFrame, m: Merit) -> list[dict]:
    """The effects table's rows of one axis (differences still on the ``y`` scale)."""
    rows, levels = [], plan["levels"]
    for v, level in enumerate(levels):
        mine = plan["per_seed"][:, v]
        mean, low, high = mean_interval(mine[np.isfinite(mine)])
        u = plan["rep"][v]
        row = {"axis": plan["axis"], "level": level, "metric": m.name, "score": mean}
        row |= {"ci_low": low, "ci_high": high, "best": v == plan["best"]}
        row |= {"trials": int((done[plan["axis"]] == level).sum()), "p": np.nan, "p_adj": np.nan}
        row["seeds"] = int(np.isfinite(mine).sum())  # replaced by its contrast's, if any
        row["identical_to"] = str(levels[u]) if u != v else ""
        rows.append(row | against_best(plan, tests, v) if v != plan["best"] else row)
    return rows


def effects_of(done: pd.DataFrame, trials: pd.DataFrame, axes: list[str], m: Merit):
    """Main effects of ``done`` (rows with ``y``): :data:`EFFECT_COLUMNS`, Bonferroni over every
    pair of distinct levels of every axis."""
    plans = [axis_plan(done, a, axes) for a in factors(done, axes)]
    family = sum(len(p["pairs"]) for p in plans)
    rows = []
    for plan in plans:
        rows += plan_rows(plan, seed_intervals(plan["d"], family), done, m)
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    if table.empty:
        return table
    for col in ("score", "ci_low", "ci_high"):
        table[col] = m.show(table[col].astype(float))
    for col in ("delta", "delta_ci_low", "delta_ci_high"):
        table[col] = m.change(table[col].astype(float))
    table["significant"] = table["p_adj"] < ALPHA
    lost = trials[trials["status"] != "completed"]
    table["failed"] = [int((lost[a] == v).sum()) for a, v in zip(table["axis"], table["level"])]
    table["level"] = table["level"].astype(str)  # one column type for every axis's levels
    return table


def effects_table(trials: pd.DataFrame, axes: list[str], metric: str = DEFAULT) -> pd.DataFrame:
    """Main effects of every axis with ≥ 2 levels (module docstring).

    Input
    -----
    trials : one row per trial (``trials.parquet``): ``status``, ``seed``, the figure of merit's
        column and a column per axis. axes : the run's axes (``seed`` is never a factor).
    metric : ``"ber_ratio_map" | "rate_gap"``.

    Output
    ------
    One row per (axis, level), :data:`EFFECT_COLUMNS`. ``score``, ``ci_low``, ``ci_high`` and
    ``delta*`` are on the shown scale (``analysis.merit``): a geometric-mean ratio and a relative
    difference, or bits/symbol. ``delta*`` are Bonferroni intervals (confidence 1 - 0.05 / m);
    ``failed`` counts the level's trials that did not complete, which the estimates leave out.
    """
    m = merit(metric)
    return effects_of(completed(trials, metric), trials, axes, m)


def effects_by_point(
    trials: pd.DataFrame, ber: pd.DataFrame, axes: list[str], metric: str = DEFAULT
) -> pd.DataFrame:
    """:func:`effects_table` at each Eb/N0 point (the point's log ratio or rate gap as ``y``),
    with an ``ebno_db`` column; Bonferroni within each point."""
    m = merit(metric)
    done = completed(trials, metric).drop(columns="y")
    if ber.empty or done.empty:
        return pd.DataFrame(columns=["ebno_db", *EFFECT_COLUMNS])
    points = ber.assign(y=point_scores(ber, m))[["trial_id", "ebno_db", "y"]]
    merged = done.merge(points[np.isfinite(points["y"])], on="trial_id")
    parts = [
        effects_of(group, trials, axes, m).assign(ebno_db=ebno)
        for ebno, group in merged.groupby("ebno_db")
    ]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["ebno_db", *EFFECT_COLUMNS])
    table = pd.concat(parts, ignore_index=True)
    return table[["ebno_db", *EFFECT_COLUMNS]]


def crossed_reason(done: pd.DataFrame, a: str, b: str) -> str:
    """Why ``a`` x ``b`` cannot be tested because of the design ("" when it can)."""
    present = set(zip(done[a], done[b]))
    missing = [(x, y) for x in ordered(done[a]) for y in ordered(done[b]) if (x, y) not in present]
    if missing:
        x, y = missing[0]
        more = f" and {len(missing) - 1} more cells" if len(missing) > 1 else ""
        return f"levels not crossed: no completed trial has {a}={x} with {b}={y}{more}"
    return ""


def interaction_test(done: pd.DataFrame, a: str, b: str) -> dict:
    """The seed-level F-test of ``a`` x ``b`` (a row of :data:`INTERACTION_COLUMNS`)."""
    row = {"axis_a": a, "axis_b": b, "seeds": 0, "reason": crossed_reason(done, a, b)}
    if row["reason"]:
        return row
    seed = done["seed"] if "seed" in done else pd.Series(0, done.index)
    means = done.assign(_seed=seed).groupby(["_seed", a, b])["y"].mean()
    cells = means.unstack([a, b]).dropna()  # seeds with every cell
    row["seeds"] = len(cells)
    if len(cells) < 2:
        row["reason"] = f"fewer than 2 seeds completed every {a} x {b} cell ({len(cells)})"
        return row
    rows, cols = ordered(done[a]), ordered(done[b])
    full = pd.MultiIndex.from_product([rows, cols])
    cube = cells.reindex(columns=full).to_numpy(float).reshape(len(cells), len(rows), len(cols))
    test = interaction_f(cube)
    return row | {k: float(test[k]) for k in ("F", "df_num", "df_den", "p")}


def interactions_table(trials: pd.DataFrame, axes: list[str], metric: str = DEFAULT):
    """Every pair of axes with ≥ 2 levels each: :data:`INTERACTION_COLUMNS`, Holm over the
    pairs tested; an untestable pair keeps its row with ``reason`` and no p."""
    done = completed(trials, metric)
    names = factors(done, axes)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    table = pd.DataFrame([interaction_test(done, a, b) for a, b in pairs])
    table = table.reindex(columns=INTERACTION_COLUMNS)
    table["reason"] = table["reason"].fillna("")
    table["p_adj"] = holm(table["p"]) if len(table) else []
    table["significant"] = table["p_adj"] < ALPHA
    return table


def conditional_plan(done, axis, given, g, reference, axes) -> dict | None:
    """Each level of ``axis`` against ``reference`` among the trials with ``given == g``."""
    sub = done[done[given] == g]
    levels, cube = level_cube(sub, axis, [a for a in axes if a != given])
    if reference not in levels or len(levels) < 2:
        return None
    ref, rep = levels.index(reference), identical(cube)
    others = [v for v in range(len(levels)) if rep[v] != rep[ref]]  # identical: nothing to test
    if not others:
        return None
    best = levels[best_index(cube, list(range(len(levels))))]
    head = {"axis": axis, "given": given, "given_level": str(g), "reference": str(reference)}
    return {
        "head": head | {"best_level": str(best)},
        "levels": [levels[v] for v in others],
        "d": contrasts(cube, [(ref, v) for v in others]),
    }


def conditional_best(
    trials: pd.DataFrame,
    interactions: pd.DataFrame,
    effects: pd.DataFrame,
    axes: list[str],
    metric: str = DEFAULT,
) -> pd.DataFrame:
    """For each significant interaction, each axis's levels against its overall best level at
    every level of the other axis: :data:`CONDITIONAL_COLUMNS`, Bonferroni over all rows
    (``delta`` on the shown scale, > 0: worse than the overall best there)."""
    m, done = merit(metric), completed(trials, metric)
    hits = interactions[interactions["significant"].astype(bool)] if len(interactions) else []
    plans = []
    for a, b in zip(*(([], []) if len(hits) == 0 else (hits["axis_a"], hits["axis_b"]))):
        for axis, given in ((a, b), (b, a)):
            tops = effects[(effects["axis"] == axis) & effects["best"].astype(bool)]["level"]
            reference = next((v for v in ordered(done[axis]) if str(v) in set(tops)), None)
            for g in ordered(done[given]):
                plan = conditional_plan(done, axis, given, g, reference, axes)
                plans += [plan] if plan is not None else []
    family = sum(len(p["levels"]) for p in plans)
    rows = []
    for plan in plans:
        tests = seed_intervals(plan["d"], family)
        for i, level in enumerate(plan["levels"]):
            rows.append(
                plan["head"]
                | {"level": str(level), "seeds": int(tests["seeds"][i])}
                | {"delta": m.change(tests["mean"][i]), "p": tests["p"][i]}
                | {"delta_ci_low": m.change(tests["low"][i]), "p_adj": tests["p_adj"][i]}
                | {"delta_ci_high": m.change(tests["high"][i])}
            )
    table = pd.DataFrame(rows, columns=CONDITIONAL_COLUMNS)
    table["significant"] = table["p_adj"] < ALPHA
    return table
