"""Plain sentences generated from the statistics tables: the report's findings.

Every number in a sentence is read from a table (``analysis.effects``, ``analysis.stats``,
``analysis.confirmation``), so the report's prose cannot drift from its tables, and each sentence
claims only what its test supports:

- a difference is "significant" exactly when its Bonferroni interval (printed beside it)
  excludes 0; "not distinguishable" comes with the largest difference the interval still allows;
- levels identical trial for trial are called identical, never tested;
- with fewer than ``stats.MIN_SEEDS`` seeds nothing is called a finding ("too few seeds");
- an axis whose interaction crosses (a level significantly better than the axis's best at one
  level of the other axis, significantly worse at another) is described by its conditional
  effects first; "the best level depends on X" is said only when a conditional test supports it;
- the best setting is reported as selected from N (optimistic: winner's curse), never as better
  than the optimal detector.

Relative differences of the BER ratio are percentages ("3.2 % worse (1.9 to 4.5 %)": the
geometric-mean ratio is 3.2 % above the best level's); rate gaps are in bits/symbol.
"""

from __future__ import annotations

import pandas as pd
from symgrid.analysis.merit import DEFAULT, Merit, merit
from symgrid.analysis.stats import MIN_SEEDS

__all__ = [
    "allowed",
    "axis_findings",
    "confirmation_sentence",
    "interaction_sentence",
    "ranking_sentence",
]

BONFERRONI = "Bonferroni 95 %"


def too_few(seeds: int) -> str:
    return f"too few seeds to separate settings ({seeds} seeds; at least {MIN_SEEDS} needed)"


def span(m: Merit, low: float, high: float) -> str:
    return f"{m.diff_text(low, signed=True)} to {m.diff_text(high, signed=True)}"


def allowed(m: Merit, low: float, high: float) -> str:
    """The largest difference an interval still allows, with its direction."""
    far = high if abs(high) >= abs(low) else low
    return f"up to {m.diff_text(far)} {'worse' if far > 0 else 'better'}"


def level_phrase(row: pd.Series, best: str, m: Merit) -> str:
    """How one level compares with the axis's best level."""
    if row["identical_to"]:
        return f"{row['level']} is identical to {row['identical_to']} trial for trial (not tested)"
    if pd.isna(row["p_adj"]):
        return f"{row['level']} cannot be compared with {best} (fewer than 2 seeds share a block)"
    interval = f"{span(m, row['delta_ci_low'], row['delta_ci_high'])}, {BONFERRONI}"
    if row["significant"]:
        word = "worse" if row["delta"] > 0 else "better"
        return (
            f"{row['level']} is {m.diff_text(row['delta'])} {word} "
            f"({interval}, p_adj = {row['p_adj']:.2g})"
        )
    return (
        f"{row['level']} is not distinguishable from {best} ({m.diff_text(row['delta'], True)}; "
        f"the data still allow {allowed(m, row['delta_ci_low'], row['delta_ci_high'])}: "
        f"{interval})"
    )


def depends_on(interactions: pd.DataFrame, axis: str) -> list[str]:
    """The axes whose significant interaction with ``axis`` qualifies its main effect."""
    if interactions.empty:
        return []
    hits = interactions[interactions["significant"].astype(bool)]
    mine = hits[(hits["axis_a"] == axis) | (hits["axis_b"] == axis)]
    return [b if a == axis else a for a, b in zip(mine["axis_a"], mine["axis_b"])]


def crosses(rows: pd.DataFrame) -> bool:
    """Whether some level is significantly worse than the reference at one level of the other
    axis and significantly better at another (conditional effects of opposite sign)."""
    sig = rows[rows["significant"].astype(bool)]
    return any((g["delta"] > 0).any() and (g["delta"] < 0).any() for _, g in sig.groupby("level"))


def conditional_phrases(rows: pd.DataFrame, m: Merit) -> str:
    """The significant conditional effects: "given x=1, b is 3.7 % worse than a (…)"."""
    sig = rows[rows["significant"].astype(bool)]
    return "; ".join(
        f"given {r['given']} = {r['given_level']}, {r['level']} is {m.diff_text(r['delta'])} "
        f"{'worse' if r['delta'] > 0 else 'better'} than {r['reference']} "
        f"({span(m, r['delta_ci_low'], r['delta_ci_high'])}, p_adj = {r['p_adj']:.2g})"
        for _, r in sig.iterrows()
    )


def qualifier(axis: str, given: str, conditional: pd.DataFrame, m: Merit) -> str:
    """How a significant interaction with ``given`` qualifies the main effect of ``axis``."""
    rows = conditional[(conditional["axis"] == axis) & (conditional["given"] == given)]
    if rows.empty:
        return f"no conditional effect of {axis} could be estimated at each {given}"
    ref = rows["reference"].iloc[0]
    beats = rows[rows["significant"].astype(bool) & (rows["delta"] < 0)]
    if beats.empty:
        return (
            f"no level is significantly better than {ref} at any {given} "
            f"({BONFERRONI}): the interaction changes margins, not the best level"
        )
    return f"the best level depends on {given} (tested): {conditional_phrases(beats, m)}"


def axis_sentence(
    effects: pd.DataFrame, interactions: pd.DataFrame, axis: str, conditional: pd.DataFrame
) -> str:
    """One sentence for one axis: its conditional effects first when an interaction crosses,
    then the best level and every other level against it (``conditional``:
    ``effects.conditional_best``)."""
    rows = effects[effects["axis"] == axis]
    m = merit(rows["metric"].iloc[0] if "metric" in rows else DEFAULT)
    top = rows[rows["best"].astype(bool)].iloc[0]
    others = rows[~rows["best"].astype(bool)]
    score = f"{m.label} {top['score']:.{m.digits}f}"
    seeds = int(pd.to_numeric(rows["seeds"], errors="coerce").max(skipna=True) or 0)
    if seeds < MIN_SEEDS:
        same = [level_phrase(r, top["level"], m) for _, r in others.iterrows() if r["identical_to"]]
        return (
            f"{axis}: {too_few(seeds)}; {top['level']} has the lowest mean ({score}), "
            "which is not a finding" + "".join(f"; {s}" for s in same) + "."
        )
    lead = ""
    for given in depends_on(interactions, axis):
        mine = conditional[(conditional["axis"] == axis) & (conditional["given"] == given)]
        if crosses(mine):
            lead += (
                f"{axis} acts in opposite directions by {given}: {conditional_phrases(mine, m)}. "
            )
    if others["p_adj"].isna().all() and not others["identical_to"].astype(bool).any():
        return lead + (
            f"{axis}: {top['level']} has the lowest {m.label} ({score}), but no other level "
            "shares a block with it (the same other axes and seed) in 2 seeds: no difference "
            "can be tested."
        )
    tested = others[~others["identical_to"].astype(bool)]
    head = f"{axis}: {top['level']} is best ({score})"
    if not tested["significant"].astype(bool).any():
        head = f"{axis}: no level is distinguishable from the best, {top['level']} ({score})"
    if lead:
        head = f"Averaged over the other axes, {head}"
    text = (
        lead
        + head
        + "; "
        + "; ".join(level_phrase(r, top["level"], m) for _, r in others.iterrows())
    )
    for given in depends_on(interactions, axis):
        text += (
            f". Interaction with {given} (significant): {qualifier(axis, given, conditional, m)}"
        )
    return text + "."


def axis_findings(
    effects: pd.DataFrame, interactions: pd.DataFrame, conditional: pd.DataFrame
) -> list[tuple[str, str]]:
    """(axis, sentence) for every axis of the effects table, in its order."""
    axes = list(dict.fromkeys(effects["axis"])) if not effects.empty else []
    return [(axis, axis_sentence(effects, interactions, axis, conditional)) for axis in axes]


def interaction_sentence(interactions: pd.DataFrame) -> str:
    """Which pairs interact (seed-level F-test, Holm), and which pairs could not be tested."""
    if interactions.empty:
        return "No pair of axes could be tested for an interaction."
    tested = interactions[interactions["reason"] == ""]
    untested = interactions[interactions["reason"] != ""]
    hits = tested[tested["significant"].astype(bool)]
    seeds = int(tested["seeds"].max()) if len(tested) else 0
    if len(tested) and seeds < MIN_SEEDS:
        text = f"Interactions: {too_few(seeds)}; the F-tests in the table are not findings"
    elif tested.empty:
        text = f"None of the {len(interactions)} pairs of axes could be tested"
    elif hits.empty:
        text = (
            f"None of the {len(tested)} pairs of axes tested interacts significantly (seed-level "
            "F-test, Holm over pairs): no pair shows that one axis's effect depends on the other"
        )
    else:
        pairs = ", ".join(
            f"{a} × {b} (F = {f:.1f}, p_adj = {p:.2g})"
            for a, b, f, p in zip(hits["axis_a"], hits["axis_b"], hits["F"], hits["p_adj"])
        )
        text = f"{len(hits)} of {len(tested)} pairs of axes tested interact significantly: {pairs}"
    if not untested.empty:
        text += "; not tested: " + "; ".join(
            f"{a} × {b} ({r})"
            for a, b, r in zip(untested["axis_a"], untested["axis_b"], untested["reason"])
        )
    return text + "."


def selection_note(top: pd.Series, result: dict | None, m: Merit, n_settings: int) -> str:
    """The winner's curse, said plainly: selected from N, optimistic, never better than MAP."""
    note = (
        f" It was selected as the lowest of {n_settings} settings on these same data, so its "
        "estimate is optimistic (winner's curse); `symgrid confirm DIR` re-measures the top "
        "settings on fresh seeds."
    )
    if top["score"] < m.optimal:
        note += (
            f" Its estimate below the optimal detector's ({m.optimal:g}) is sampling noise and "
            "selection, not a detector better than bitwise MAP, which no detector can beat."
        )
    return note


def ranking_sentence(
    result: dict | None, table: pd.DataFrame, selected: bool = True, metric: str = DEFAULT
) -> str:
    """The best setting, and plainly whether the seeds can separate it from the runner-up;
    ``selected``: the settings were picked from a larger grid on these data (winner's curse)."""
    m = merit(metric)
    if table.empty:
        return "No completed trials: nothing to rank."
    top = table.iloc[0]
    head = (
        f"Best setting: {top['setting']} ({m.label} {top['score']:.{m.digits}f}, "
        f"95 % CI {top['ci_low']:.{m.digits}f} to {top['ci_high']:.{m.digits}f}, "
        f"{top['interval']})."
    )
    note = selection_note(top, result, m, len(table)) if selected else ""
    if result is None:
        return head + " It is the only setting."
    n = int(result["seeds"])
    if result.get("identical"):
        return head + (
            f" The runner-up ({result['runner_up']}) gave identical results seed for seed (the "
            "same model): their order means nothing." + note
        )
    if n < MIN_SEEDS:
        return head + (
            f" Against the runner-up ({result['runner_up']}): {too_few(n)} matched; no "
            "difference between them is a finding." + note
        )
    test = (
        f"paired t-test over {n} seeds ({n - 1} df), p = {result['p']:.3g}; the runner-up is "
        f"{m.diff_text(result['delta'], True)}, 95 % CI "
        f"{span(m, result['delta_ci_low'], result['delta_ci_high'])}"
    )
    if result["significant"]:
        verdict = f" It is significantly better than the runner-up ({result['runner_up']}): {test}."
    else:
        verdict = (
            f" {n} seeds cannot separate it from the runner-up ({result['runner_up']}): {test}; "
            f"{result['overlapping']} other settings' intervals reach its score."
        )
    return head + verdict + note


def confirmation_sentence(result: dict | None, parent: str, metric: str = DEFAULT) -> str:
    """Whether the screening winner of ``parent`` held on the fresh seeds."""
    m = merit(metric)
    if result is None:
        return f"No setting of {parent} completed on the fresh seeds: nothing to confirm."
    n = result["seeds"]
    shift = (
        f"its {m.label} was {result['screening_score']:.{m.digits}f} in screening and is "
        f"{result['confirmed_score']:.{m.digits}f} on {n} fresh seeds"
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
