"""The comparison report: ``index.html`` (self-contained), ``summary.md`` and the PNG figures.

``write_report([DIR, ...], out, metric)`` is the top of ``analysis/``: it loads each run
(``collect.load_run``, which rebuilds stale tables), reads its statistics
(``derive.statistics``: the tables ``symgrid run`` wrote, computed again only when they are
missing, older than the run's tables or for another figure of merit), draws the figures
(``plots``, ``effect_plots``) and renders the pages (``render``) into ``out``
(default ``DIR/report`` for one run). It works on partial runs and says what is missing; an
empty or unreadable run is a one-line :class:`ReportError`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from symgrid.analysis import compare, effect_plots, findings, plots, render
from symgrid.analysis.collect import ReportError, Run, load_run
from symgrid.analysis.derive import Statistics, check_metric, statistics
from symgrid.analysis.merit import metric_of
from symgrid.analysis.sections import Compared, Section

__all__ = ["ReportError", "write_report"]

GAP_PAIRS = [("scheduler", "loss"), ("loss", "regularization")]  # the lecture's heatmaps


def safe(name: str) -> str:
    return str(name).replace(".", "_").replace("/", "_")


def interaction_pairs(run: Run, result: Statistics) -> list[tuple[str, str, dict | None]]:
    """The heatmaps: every significant interaction, the lecture's pairs, else the first two
    scientific axes; each with its interaction test when one was made."""
    tests = {(r["axis_a"], r["axis_b"]): r for r in result.interactions.to_dict("records")}
    hits = [pair for pair, r in tests.items() if r["significant"]]
    sci = plots.scientific_axes(run.axes)
    pairs = hits + [p for p in GAP_PAIRS if set(p) <= set(run.axes) and p not in hits]
    if not pairs and len(sci) >= 2:
        pairs = [(sci[0], sci[1])]
    return [(a, b, tests.get((a, b), tests.get((b, a)))) for a, b in pairs]


def statistics_figures(run: Run, result: Statistics, f) -> dict:
    """Effects per axis, interaction heatmaps, the gap per Eb/N0 and one BER figure."""
    axes = list(dict.fromkeys(result.effects["axis"]))
    t, b, e, m = run.trials, run.ber, result.effects, result.metric
    return {
        "effects": [
            (f"Effect of {a}", effect_plots.effect_figure(e, a, f(f"effect_{a}"))) for a in axes
        ],
        "interactions": [
            (f"Gap to optimal: {r} x {c}", plots.gap_heatmap(t, r, c, f(f"gap_{r}_{c}"), test, m))
            for r, c, test in interaction_pairs(run, result)
        ],
        "gap": [
            (f"Gap to MAP vs Eb/N0 by {a}", effect_plots.gap_vs_ebno(t, b, a, f(f"ratio_{a}"), m))
            for a in axes
        ],
        "ber": [
            (f"BER vs Eb/N0 by {a}", plots.ber_vs_ebno(t, b, a, f(f"ber_{a}"))) for a in axes[:1]
        ],
    }


def training_figures(run: Run, result: Statistics, f) -> dict:
    """Overfitting curves, generalization gap, bias-variance and learning rates."""
    t, e, bv = run.trials, run.epochs, result.biasvar
    reg = "regularization" if "regularization" in run.axes else None
    over = plots.overfitting_curves(t, e, reg, f("overfitting"))
    gap = plots.generalization_gap(t, e, reg, f("gap_epochs"))
    params = plots.bias_variance_figure(bv, "num_params", f("biasvar_params"))
    symbols = plots.bias_variance_figure(bv, "train.symbols", f("biasvar_symbols"))
    return {
        "overfitting": [
            ("Overfitting: training vs validation", over),
            ("Generalization gap and early stopping", gap),
        ],
        "biasvar": [
            ("Bias-variance vs model capacity", params),
            ("Bias-variance vs training-set size", symbols),
        ],
        "training": [("Learning rate per epoch", plots.lr_schedules(t, e, f("lr")))],
    }


def make_figures(run: Run, result: Statistics, out: Path, prefix: str = "") -> dict:
    """Every figure the run's data supports, by report part: {part: [(title, PNG path)]}."""
    f = lambda name: out / f"{prefix}{safe(name)}.png"  # noqa: E731
    made = {**statistics_figures(run, result, f), **training_figures(run, result, f)}
    return {part: [(title, p) for title, p in figs if p is not None] for part, figs in made.items()}


def run_section(run: Run, out: Path, prefix: str, metric: str | None = None) -> Section:
    """One run's report content: statistics, sentences, figures, what is missing."""
    result = statistics(run, metric)
    bad = run.trials[run.trials["status"] != "completed"]
    problems = bad[["trial_id", "status", *run.axes, "error"]].fillna("") if "error" in bad else bad
    confirmed = None
    if result.parent:
        confirmed = findings.confirmation_sentence(result.verdict, result.parent, result.metric)
    return Section(
        run=run,
        stats=result,
        findings=findings.axis_findings(
            result.effects, result.interactions, result.conditional_best
        ),
        interactions=findings.interaction_sentence(result.interactions),
        best=findings.ranking_sentence(
            result.best, result.ranking, not result.parent, result.metric
        ),
        confirmed=confirmed,
        counts=run.trials["status"].value_counts().to_dict(),
        wall=wall_time(run),
        missing=missing(run) + result.notes,
        problems=problems,
        figures=make_figures(run, result, out, prefix),
    )


def wall_time(run: Run) -> str:
    info = run.info
    spent = pd.to_numeric(run.trials.get("wall_s"), errors="coerce").sum()
    if info.get("started_at") and info.get("finished_at"):
        seconds = (
            pd.Timestamp(info["finished_at"]) - pd.Timestamp(info["started_at"])
        ).total_seconds()
        return f"{seconds:.0f} s wall ({spent:.0f} s summed over trials)"
    return f"unfinished; {spent:.0f} s summed over the trials recorded"


def missing(run: Run) -> list[str]:
    """What a partial run lacks, one line each (empty for a complete run)."""
    lines, planned = [], run.info.get("trials")
    if not run.info:
        lines.append("no run.json: the planned trial count and the command are unknown")
    elif not run.info.get("finished_at"):
        lines.append("the run did not finish (run.json has no finished_at): results are partial")
    present = len(run.trials)
    if isinstance(planned, int) and present < planned:
        lines.append(f"{planned - present} of {planned} planned trials have no records")
    if run.unfinished:
        lines.append(f"started but without results: {', '.join(run.unfinished)}")
    completed = run.trials.loc[run.trials["status"] == "completed", "trial_id"]
    no_ber = sorted(set(completed) - set(run.ber["trial_id"]))
    if no_ber:  # e.g. a lost ber.parquet: say so rather than rank without them
        lines.append(f"completed but without BER points, left out: {', '.join(no_ber)}")
    return lines


def comparison(runs: list[Run], sections: list[Section], staging: Path) -> Compared:
    """The runs side by side: shared settings and axis levels, and the change figure."""
    names = unique_names(runs)
    return Compared(
        settings=compare.settings_across(
            {n: s.stats.ranking for n, s in zip(names, sections, strict=True)}
        ),
        levels=compare.levels_across(
            {n: s.stats.effects for n, s in zip(names, sections, strict=True)}
        ),
        figure=plots.compare_runs(
            {n: (r.trials, r.axes) for n, r in zip(names, runs, strict=True)},
            staging / "compare.png",
        ),
    )


def write_report(dirs: list[Path], out: Path | None = None, metric: str | None = None) -> Path:
    """Write ``index.html``, ``summary.md`` and the figures for one or several runs.

    Parameters
    ----------
    dirs : run folders (``symgrid run --out DIR``); several are compared over their shared axes
    out : the report folder; default ``DIR/report`` for one run, required for several
    metric : ``"ber_ratio_map" | "rate_gap"``: the figure of merit; default each run's spec key

    Output
    ------
    The path of ``index.html``. Raises :class:`ReportError` (one line) for an empty or
    unreadable run.
    """
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise ReportError("no run folders given")
    if out is None and len(dirs) > 1:
        raise ReportError("several run folders need --out for the report")
    out = Path(out) if out is not None else dirs[0] / "report"
    runs = [load_run(d) for d in dirs]  # every run readable before anything is written
    for run in runs:  # and every run able to give the figure of merit asked for
        check_metric(run, metric or metric_of(run.spec_text))
    out.mkdir(parents=True, exist_ok=True)
    # Everything is drawn into a staging folder, then each file is renamed into place (index.html
    # last): a crash or a full disk never leaves a half-written page or figure in the report.
    with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
        staging = Path(tmp)
        prefixes = [f"run{i + 1}_" if len(runs) > 1 else "" for i in range(len(runs))]
        sections = [run_section(r, staging, p, metric) for r, p in zip(runs, prefixes, strict=True)]
        compared = comparison(runs, sections, staging) if len(runs) > 1 else None
        (staging / "summary.md").write_text(render.markdown(sections, compared))
        (staging / "index.html").write_text(render.html_page(sections, compared))
        for made in sorted(staging.iterdir(), key=lambda f: f.name == "index.html"):
            os.replace(made, out / made.name)
    return out / "index.html"


def unique_names(runs: list[Run]) -> list[str]:
    names = [r.name for r in runs]
    return [
        n if names.count(n) == 1 else f"{n} ({r.path})" for n, r in zip(names, runs, strict=True)
    ]
