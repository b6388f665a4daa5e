"""A run's statistics, computed in one place from its tables and written beside them.

``analyze(run)`` turns a loaded run (``analysis.collect.load_run``) into :class:`Statistics`:
the ranking and the best-vs-runner-up test (``stats``), main effects (also per Eb/N0 point),
interactions and conditional effects (``effects``), the bias-variance table (``biasvar``) and,
for a confirmation run, the screening-vs-confirmed table (``confirmation``), and writes them:

    DIR/ranking.parquet            settings by the figure of merit, best first
    DIR/effects.parquet            main effects (seed-level, Bonferroni)
    DIR/effects_by_point.parquet   the same at each Eb/N0 point (column ebno_db)
    DIR/interactions.parquet       seed-level F-tests, untestable pairs with their reason
    DIR/conditional.parquet        conditional effects of significant interactions
    DIR/bias_variance.parquet      the bias-variance decomposition
    DIR/confirmation.parquet       a confirmation run only
    DIR/statistics.json            the metric, best vs runner-up, verdict, notes; written last

``statistics(run, metric)`` is what the report calls: it reads these files, and computes them
(here, once) only when they are missing, older than the run's tables (or its run.json and
spec.yaml), or for another metric.
``symgrid run`` and ``resume`` compute them when the trials end (:func:`build_all`). Figures and
pages read :class:`Statistics`; nothing here draws or renders.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from symgrid.analysis import biasvar, confirmation, effects, stats
from symgrid.analysis.collect import (
    ReportError,
    Run,
    Tables,
    build_tables,
    json_or_empty,
    load_run,
    read_table,
    table_metadata,
)
from symgrid.analysis.merit import METRICS, metric_of
from symgrid.trainables.storage_io import write_json, write_parquet

__all__ = ["Statistics", "analyze", "build_all", "check_metric", "statistics"]

TABLES = {  # Statistics field -> file in the run folder
    "ranking": "ranking.parquet",
    "effects": "effects.parquet",
    "effects_by_point": "effects_by_point.parquet",
    "interactions": "interactions.parquet",
    "conditional_best": "conditional.parquet",
    "biasvar": "bias_variance.parquet",
}
CONFIRMATION = "confirmation.parquet"
SUMMARY = "statistics.json"  # written last: its presence means the tables above are complete
# The statistics are stale when one of these is newer (run.json: a confirmation's parent link).
SOURCES = ("trials.parquet", "ber.parquet", "run.json", "spec.yaml")
CODE_KEY = "analysis_code"  # statistics.json: which analysis code computed them


@functools.cache
def analysis_code() -> str:
    """A fingerprint of the analysis modules' source: statistics written by other code (an older
    symgrid) are computed again, not read."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.name.encode() + module.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Statistics:
    """Everything the report says about one run, as tables and small dicts."""

    metric: str  # the figure of merit: "ber_ratio_map" | "rate_gap"
    ranking: pd.DataFrame
    best: dict | None  # stats.best_vs_runner_up
    effects: pd.DataFrame
    effects_by_point: pd.DataFrame
    interactions: pd.DataFrame
    conditional_best: pd.DataFrame
    biasvar: pd.DataFrame
    confirmation: pd.DataFrame | None = None  # None: not a confirmation run
    verdict: dict | None = None  # confirmation.verdict
    parent: str = ""  # the parent run's folder, for a confirmation run
    notes: list[str] = field(default_factory=list)  # what could not be computed, one line each


def confirm_against_parent(run: Run, result: Statistics) -> None:
    """Fill the confirmation fields when ``run.json`` names a parent run."""
    parent = run.info.get("parent")
    if not parent:
        return
    result.parent = str(parent)
    try:
        screening = load_run(Path(parent))
    except ReportError as err:
        result.notes.append(f"the parent run cannot be read, nothing to confirm against: {err}")
        return
    ranked = stats.ranking(screening.trials, screening.ber, screening.axes, result.metric)
    result.confirmation = confirmation.confirmation_table(
        ranked, run.trials, run.ber, run.axes, result.metric
    )
    result.verdict = confirmation.verdict(result.confirmation)


def check_metric(run: Run, metric: str) -> None:
    """A one-line :class:`ReportError` when the run's trials did not record ``metric``."""
    if metric not in METRICS:
        raise ReportError(
            f"metric: {metric!r} is not a figure of merit; allowed: {', '.join(METRICS)}"
        )
    m = METRICS[metric]
    recorded = m.column in run.trials and run.trials[m.column].notna().any()
    if not m.log and not recorded:
        raise ReportError(
            f"{run.path}: metric {metric!r}: the trials recorded no {m.column} (a run from before "
            "issue 16); allowed here: ber_ratio_map"
        )


def analyze(run: Run, metric: str | None = None, write: bool = True) -> Statistics:
    """Compute the run's statistics by ``metric`` (default: the spec's ``metric`` key); with
    ``write``, save them in the run folder."""
    metric = metric or metric_of(run.spec_text)
    check_metric(run, metric)
    t, b, axes = run.trials, run.ber, run.axes
    ranked = stats.ranking(t, b, axes, metric)
    main = effects.effects_table(t, axes, metric)
    inter = effects.interactions_table(t, axes, metric)
    result = Statistics(
        metric=metric,
        ranking=ranked,
        best=stats.best_vs_runner_up(t, ranked, axes, metric),
        effects=main,
        effects_by_point=effects.effects_by_point(t, b, axes, metric),
        interactions=inter,
        conditional_best=effects.conditional_best(t, inter, main, axes, metric),
        # A window of replicate groups' predictions in memory at a time, not every trial's.
        biasvar=biasvar.bias_variance_table(t, folder=run.path),
    )
    confirm_against_parent(run, result)
    if write:
        write_statistics(run.path, result)
    return result


def plain(value):
    """JSON-ready: numpy scalars as Python numbers, NaN as None, containers recursively."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not np.isfinite(value) else value


def write_statistics(out: Path, result: Statistics) -> None:
    meta = table_metadata(out)
    for name, file in TABLES.items():
        write_parquet(getattr(result, name), out / file, meta)
    if result.confirmation is not None:
        write_parquet(result.confirmation, out / CONFIRMATION, meta)
    summary = {k: v for k, v in asdict(result).items() if k not in (*TABLES, "confirmation")}
    summary["confirmation"] = result.confirmation is not None
    write_json({**plain(summary), CODE_KEY: analysis_code()}, out / SUMMARY)


def fresh(run: Run, metric: str) -> bool:
    """Whether the written statistics are for ``metric``, newer than the run's tables and
    computed by this code."""
    summary = run.path / SUMMARY
    if (
        run.rebuilt
        or not summary.exists()
        or not all((run.path / f).exists() for f in TABLES.values())
    ):
        return False
    built = summary.stat().st_mtime_ns
    sources = [run.path / s for s in SOURCES if (run.path / s).exists()]
    written = json_or_empty(summary)
    return all(s.stat().st_mtime_ns <= built for s in sources) and (
        written.get("metric") == metric and written.get(CODE_KEY) == analysis_code()
    )


def read_statistics(path: Path) -> Statistics:
    summary = json_or_empty(path / SUMMARY)
    summary.pop(CODE_KEY, None)
    tables = {name: read_table(path / file) for name, file in TABLES.items()}
    confirmed = read_table(path / CONFIRMATION) if summary.pop("confirmation") else None
    nan = lambda d: None if d is None else {k: np.nan if v is None else v for k, v in d.items()}  # noqa: E731
    summary["best"], summary["verdict"] = nan(summary.get("best")), nan(summary.get("verdict"))
    return Statistics(**summary, **tables, confirmation=confirmed)


def statistics(run: Run, metric: str | None = None) -> Statistics:
    """The run's statistics: read from its folder when fresh (:func:`fresh`), else computed and
    written by :func:`analyze` (the only place that computes them)."""
    metric = metric or metric_of(run.spec_text)
    return read_statistics(run.path) if fresh(run, metric) else analyze(run, metric)


def build_all(out: Path) -> Tables:
    """Collect the run's tables and write its statistics (``symgrid run`` and ``resume``)."""
    out = Path(out)
    tables = build_tables(out)
    if not tables.trials.empty:
        spec = out / "spec.yaml"
        run = Run(
            out, json_or_empty(out / "run.json"), spec.read_text() if spec.exists() else "", tables
        )
        analyze(run)
    return tables
