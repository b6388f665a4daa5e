"""The report's content for one run, as plain tables and sentences, shared by both pages.

``analysis.render`` writes a :class:`Section` per run (and :class:`Compared` for several runs) as
HTML and as Markdown; the formatting of numbers and table columns lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from symgrid.analysis.collect import Run
from symgrid.analysis.derive import Statistics
from symgrid.analysis.merit import merit
from symgrid.analysis.stats import MIN_SEEDS, NO_MAP_ERRORS, VERDICT

__all__ = [
    "Compared",
    "Section",
    "description",
    "format_confirmation",
    "format_effects",
    "format_interactions",
    "format_ranking",
    "header_rows",
]

RANKING_COLUMNS = ["rank", "setting", "network", "seeds", NO_MAP_ERRORS, "score", "ci_low"]
RANKING_COLUMNS += ["ci_high", "interval", VERDICT]  # NO_MAP_ERRORS: where the trials have it


@dataclass
class Section:
    """One run's report content, shared by the HTML and Markdown writers."""

    run: Run
    stats: Statistics
    findings: list[tuple[str, str]]  # (axis, sentence)
    interactions: str
    best: str
    confirmed: str | None  # the confirmation sentence, for a confirmation run
    counts: dict
    wall: str
    missing: list[str]
    problems: pd.DataFrame
    figures: dict[str, list[tuple[str, Path]]]  # part -> [(title, PNG path)]


@dataclass
class Compared:
    """Several runs side by side (``analysis.compare``)."""

    settings: pd.DataFrame
    levels: pd.DataFrame
    figure: Path | None


def num(value, digits: int = 4) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}f}"


def signed_pct(value) -> str:
    return "" if pd.isna(value) else f"{100 * value:+.1f} %"


def header_rows(s: Section) -> list[tuple[str, str]]:
    info = s.run.info
    counts = ", ".join(f"{n} {status}" for status, n in sorted(s.counts.items()))
    rows = [
        ("folder", str(s.run.path)),
        ("description", description(s.run.spec_text)),
        ("spec hash", info.get("spec_hash", "")),
        ("trials", f"{len(s.run.trials)} recorded of {info.get('trials', '?')} planned: {counts}"),
        ("axes", ", ".join(s.run.axes)),
        ("figure of merit", figure_of_merit(s.stats.metric)),
        ("inference", INFERENCE),
        ("networks", networks(s.run.trials)),
        ("wall time", s.wall),
        ("reproduce", info.get("command") or "(unknown)"),
    ]
    return rows + ([("parent run", s.stats.parent)] if s.stats.parent else [])


INFERENCE = (
    "the seed is the unit of replication: each contrast is averaged within a seed, then a t "
    "interval over seeds (n_seeds - 1 df); main effects: Bonferroni intervals and tests over "
    "every pair of levels of every axis (significant exactly when the interval excludes 0); "
    "interactions: seed-level F-test, Holm over pairs; levels identical trial for trial are "
    f"not tested; fewer than {MIN_SEEDS} seeds separate nothing"
)


def figure_of_merit(metric: str) -> str:
    m = merit(metric)
    scale = "log scale (log_ratio_map), shown as a ratio" if m.log else "bits/symbol"
    return f"{metric}: {m.label}, analysed on the {scale}; {m.optimal:g} = optimal"


def networks(trials: pd.DataFrame) -> str:
    """The detectors the trials trained, with their arguments (``mlp``, ``nets:ResMLP(...)``)."""
    names = trials["network"].dropna().unique() if "network" in trials else []
    return ", ".join(sorted(map(str, names))) or "(not recorded)"


def description(spec_text: str) -> str:
    try:
        spec = yaml.safe_load(spec_text)
    except yaml.YAMLError:
        return ""
    return str(spec.get("description", "")) if isinstance(spec, dict) else ""


def format_ranking(s: Section) -> pd.DataFrame:
    table = s.stats.ranking[[c for c in RANKING_COLUMNS if c in s.stats.ranking]].copy()
    for col in ("score", "ci_low", "ci_high"):
        table[col] = table[col].map(num)
    return table.rename(columns={"score": s.stats.metric})  # the figure of merit's own name


def difference(metric: str, value) -> str:
    if pd.isna(value):
        return ""
    return signed_pct(value) if merit(metric).log else f"{value:+.4f}"


def format_effects(s: Section) -> pd.DataFrame:
    e, metric = s.stats.effects, s.stats.metric
    if e.empty:
        return e
    unit = "%" if merit(metric).log else "bits/symbol"
    return pd.DataFrame(
        {
            "axis": e["axis"],
            "level": e["level"],
            "trials": e["trials"],
            "not completed": e["failed"],
            "seeds": e["seeds"].map(lambda n: "" if pd.isna(n) else f"{int(n)}"),
            merit(metric).label: e["score"].map(num),
            "95 % CI over seeds": [f"{num(a)}-{num(b)}" for a, b in zip(e["ci_low"], e["ci_high"])],
            f"vs best ({unit})": [
                "best" if b else (f"identical to {i}" if i else difference(metric, d))
                for b, i, d in zip(e["best"], e["identical_to"], e["delta"])
            ],
            "Bonferroni 95 % CI of difference": [
                "" if b or pd.isna(a) else f"{difference(metric, a)} to {difference(metric, c)}"
                for b, a, c in zip(e["best"], e["delta_ci_low"], e["delta_ci_high"])
            ],
            "p_adj (Bonferroni)": e["p_adj"].map(lambda p: "" if pd.isna(p) else f"{p:.2g}"),
            "significant": [
                "" if pd.isna(p) else ("yes" if sig else "no")
                for p, sig in zip(e["p_adj"], e["significant"])
            ],
        }
    )


def format_interactions(s: Section) -> pd.DataFrame:
    i = s.stats.interactions
    if i.empty:
        return i
    text = lambda fmt: lambda v: "" if pd.isna(v) else format(v, fmt)  # noqa: E731
    return i.assign(
        F=i["F"].map(text(".2f")),
        df_num=i["df_num"].map(text(".0f")),
        df_den=i["df_den"].map(text(".0f")),
        p=i["p"].map(text(".2g")),
        p_adj=i["p_adj"].map(text(".2g")),
        significant=[
            "not tested" if r else ("yes" if sig else "no")
            for r, sig in zip(i["reason"], i["significant"])
        ],
    )


def format_confirmation(s: Section) -> pd.DataFrame:
    c = s.stats.confirmation
    return pd.DataFrame(
        {
            "setting": c["setting"],
            "screening rank": c["screening_rank"],
            "screening (CI)": [
                f"{num(r)} ({num(a)}-{num(b)}), {n} seeds"
                for r, a, b, n in zip(
                    c["screening_score"],
                    c["screening_ci_low"],
                    c["screening_ci_high"],
                    c["screening_seeds"],
                )
            ],
            "confirmed rank": c["confirmed_rank"],
            "confirmed (CI)": [
                f"{num(r)} ({num(a)}-{num(b)}), {n} fresh seeds"
                for r, a, b, n in zip(
                    c["confirmed_score"],
                    c["confirmed_ci_low"],
                    c["confirmed_ci_high"],
                    c["confirmed_seeds"],
                )
            ],
            "vs screening winner": ["winner"]
            + [difference(s.stats.metric, d) for d in c["delta_vs_winner"][1:]],
            "Bonferroni 95 % CI": [""]
            + [
                f"{difference(s.stats.metric, a)} to {difference(s.stats.metric, b)}"
                for a, b in zip(c["delta_ci_low"][1:], c["delta_ci_high"][1:])
            ],
            "p_adj (Bonferroni)": c["p_adj"].map(lambda p: "" if pd.isna(p) else f"{p:.2g}"),
        }
    )
