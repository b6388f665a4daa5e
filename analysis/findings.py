"""Plain sentences generated from the statistics tables: the report's findings.

Every number in a sentence is read from a table (``analysis.effects``, ``analysis.stats``,
``analysis.confirmation``), so the report's prose cannot drift from its tables. Relative
differences are written as percentages: "none is 3.2 % worse (1.9–4.5 %)" means the geometric
mean BER ratio to MAP of ``none`` is 3.2 % above the best level's, 95 % interval 1.9 to 4.5 %.
"""

from __future__ import annotations

import pandas as pd


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def span(low: float, high: float) -> str:
    return f"{100 * low:.1f} to {100 * high:.1f} %"


def level_phrase(row: pd.Series, best: str) -> str:
    """How one level compares with the axis's best level."""
    if row["significant"]:
        word = "worse" if row["delta"] > 0 else "better"
        return (
            f"{row['level']} is {pct(abs(row['delta']))} {word} "
            f"({span(row['delta_ci_low'], row['delta_ci_high'])}, p_adj = {row['p_adj']:.2g})"
        )
    if pd.isna(row["p_adj"]):
        return f"{row['level']} cannot be compared with {best} (fewer than 2 matched blocks)"
    return (
        f"{row['level']} is not distinguishable from {best} "
        f"({'+' if row['delta'] >= 0 else '−'}{pct(abs(row['delta']))}, "
        f"{span(row['delta_ci_low'], row['delta_ci_high'])}, p_adj = {row['p_adj']:.2g})"
    )


def depends_on(interactions: pd.DataFrame, axis: str) -> list[str]:
    """The axes whose significant interaction with ``axis`` qualifies its main effect."""
    if interactions.empty:
        return []
    hits = interactions[interactions["significant"].astype(bool)]
    mine = hits[(hits["axis_a"] == axis) | (hits["axis_b"] == axis)]
    return [b if a == axis else a for a, b in zip(mine["axis_a"], mine["axis_b"])]


def qualifier(axis: str, given: str, best: pd.DataFrame) -> str:
    """How a significant interaction with ``given`` qualifies the main effect of ``axis``."""
    mine = best[(best["axis"] == axis) & (best["given"] == given)]
    if mine["best_level"].nunique() <= 1:
        level = mine["best_level"].iloc[0] if len(mine) else "?"
        return f"{level} is best at every {given}, but by a margin that depends on it"
    where = ", ".join(
        f"{b} at {given} = {g}" for g, b in zip(mine["given_level"], mine["best_level"])
    )
    return f"the level with the lowest mean ratio depends on {given}: {where}"


def axis_sentence(
    effects: pd.DataFrame, interactions: pd.DataFrame, axis: str, best: pd.DataFrame
) -> str:
    """One sentence for one axis: the best level, every other level against it, and any
    significant interaction that qualifies it (``best``: ``effects.conditional_best``)."""
    rows = effects[effects["axis"] == axis]
    top = rows[rows["best"].astype(bool)].iloc[0]
    others = rows[~rows["best"].astype(bool)]
    if others["p_adj"].isna().all():
        return (
            f"{axis}: {top['level']} has the lowest BER ratio to MAP ({top['ratio']:.4f}), but no "
            "other level shares a block with it (the same other axes and seed): the levels are "
            "not crossed with the other axes, so no difference can be tested."
        )
    head = f"{axis}: {top['level']} is best (BER ratio to MAP {top['ratio']:.4f})"
    if not others["significant"].astype(bool).any():
        head = (
            f"{axis}: no level is distinguishable from the best, {top['level']} "
            f"(BER ratio to MAP {top['ratio']:.4f})"
        )
    text = head + "; " + "; ".join(level_phrase(r, top["level"]) for _, r in others.iterrows())
    for given in depends_on(interactions, axis):
        text += f". Interaction with {given} (significant): {qualifier(axis, given, best)}"
    return text + "."


def axis_findings(
    effects: pd.DataFrame, interactions: pd.DataFrame, best: pd.DataFrame
) -> list[tuple[str, str]]:
    """(axis, sentence) for every axis of the effects table, in its order."""
    axes = list(dict.fromkeys(effects["axis"])) if not effects.empty else []
    return [(axis, axis_sentence(effects, interactions, axis, best)) for axis in axes]


def interaction_sentence(interactions: pd.DataFrame) -> str:
    if interactions.empty:
        return "No pair of axes could be tested for an interaction."
    hits = interactions[interactions["significant"].astype(bool)]
    tested = len(interactions)
    if hits.empty:
        return (
            f"None of the {tested} pairs of axes interacts significantly (F-test, Holm over "
            "pairs): each axis's best level holds across the other axes."
        )
    pairs = ", ".join(
        f"{a} × {b} (F = {f:.1f}, p_adj = {p:.2g})"
        for a, b, f, p in zip(hits["axis_a"], hits["axis_b"], hits["F"], hits["p_adj"])
    )
    return f"{len(hits)} of {tested} pairs of axes interact significantly: {pairs}."


def ranking_sentence(result: dict | None, table: pd.DataFrame, selected: bool = True) -> str:
    """The best setting, and plainly whether the seeds can separate it from the runner-up;
    ``selected``: the settings were picked from a larger grid on these data (winner's curse)."""
    if table.empty:
        return "No completed trials: nothing to rank."
    top = table.iloc[0]
    head = (
        f"Best setting: {top['setting']} (BER ratio to MAP {top['ber_ratio_map']:.4f}, "
        f"95 % CI {top['ci_low']:.4f}-{top['ci_high']:.4f}, {top['interval']})."
    )
    if result is None:
        return head + " It is the only setting."
    if result["seeds"] < 2:
        return head + (
            f" With {result['seeds']} matched seed(s) it cannot be tested against the runner-up "
            f"({result['runner_up']}): no seed-level test is possible."
        )
    test = (
        f"paired t-test over {result['seeds']} seeds, p = {result['p']:.3g}; the runner-up is "
        f"{pct(result['delta'])} worse, 95 % CI "
        f"{span(result['delta_ci_low'], result['delta_ci_high'])}"
    )
    if result["significant"]:
        verdict = f" It is significantly better than the runner-up ({result['runner_up']}): {test}."
    else:
        verdict = (
            f" {result['seeds']} seeds cannot separate it from the runner-up "
            f"({result['runner_up']}): {test}; {result['overlapping']} other settings' intervals "
            "reach its ratio."
        )
    if not selected:
        return head + verdict
    return (
        head + verdict + " Both were picked by sorting the same data, so their lead is optimistic; "
        "`symgrid confirm` re-measures the top settings on fresh seeds."
    )


def confirmation_sentence(result: dict | None, parent: str) -> str:
    """Whether the screening winner of ``parent`` held on the fresh seeds."""
    if result is None:
        return f"No setting of {parent} completed on the fresh seeds: nothing to confirm."
    n = result["seeds"]
    shift = (
        f"its BER ratio to MAP was {result['screening_ratio']:.4f} in screening and is "
        f"{result['confirmed_ratio']:.4f} on {n} fresh seeds"
    )
    if result["held"]:
        text = f"The screening winner held: {result['winner']} is best again ({shift})"
        worse = result["worse"]
        text += (
            f"; significantly better than {', '.join(worse)}"
            if worse
            else "; the fresh seeds do not separate it significantly from the others confirmed"
        )
        return text + "."
    beaten = result["beaten_by"]
    how = (
        f"significantly better than it: {', '.join(beaten)}"
        if beaten
        else "but the difference is not significant"
    )
    return (
        f"The screening winner did not hold: {result['winner']} is not the best on fresh seeds "
        f"({shift}); {result['best']} is best there, {how}."
    )
