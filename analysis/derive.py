"""A run's statistics, computed once from its tables and written beside them.

``analyze(run)`` turns a loaded run (``analysis.collect.load_run``) into :class:`Statistics`:
the ranking and the best-vs-runner-up test (``stats``), main effects, interactions and the
conditional best levels (``effects``), the bias-variance table (``biasvar``) and, for a
confirmation run, the screening-vs-confirmed table (``confirmation``). It writes
``DIR/effects.parquet``, ``DIR/interactions.parquet`` and ``DIR/bias_variance.parquet``.
Figures and pages read :class:`Statistics`; nothing here draws or renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from symgrid.analysis import biasvar, confirmation, effects, stats
from symgrid.analysis.collect import (
    ReportError,
    Run,
    Tables,
    build_tables,
    load_run,
    read_json,
    table_metadata,
)
from symgrid.trainables.storage_io import write_parquet


@dataclass
class Statistics:
    """Everything the report says about one run, as tables and small dicts."""

    ranking: pd.DataFrame
    best: dict | None  # stats.best_vs_runner_up
    effects: pd.DataFrame
    interactions: pd.DataFrame
    conditional_best: pd.DataFrame
    biasvar: pd.DataFrame
    confirmation: pd.DataFrame | None = None  # None: not a confirmation run
    verdict: dict | None = None  # confirmation.verdict
    parent: str = ""  # the parent run's folder, for a confirmation run
    notes: list[str] = field(default_factory=list)  # what could not be computed, one line each


def bias_variance(run: Run) -> pd.DataFrame:
    """The run's bias-variance table: read when it is newer than the tables, else computed."""
    path = run.path / "bias_variance.parquet"
    trials = run.path / "trials.parquet"
    fresh = path.exists() and trials.exists() and path.stat().st_mtime >= trials.stat().st_mtime
    if fresh and not run.rebuilt:
        return pd.read_parquet(path)
    # A window of replicate groups' predictions in memory at a time, not every trial's at once.
    return biasvar.bias_variance_table(run.trials, folder=run.path)


def confirm_against_parent(run: Run, out: Statistics) -> None:
    """Fill the confirmation fields when ``run.json`` names a parent run."""
    parent = run.info.get("parent")
    if not parent:
        return
    out.parent = str(parent)
    try:
        screening = load_run(Path(parent))
    except ReportError as err:
        out.notes.append(f"the parent run cannot be read, nothing to confirm against: {err}")
        return
    ranked = stats.ranking(screening.trials, screening.ber, screening.axes)
    out.confirmation = confirmation.confirmation_table(ranked, run.trials, run.ber, run.axes)
    out.verdict = confirmation.verdict(out.confirmation)


def analyze(run: Run, write: bool = True) -> Statistics:
    """Compute the run's statistics; with ``write``, save the derived tables in the run folder."""
    ranked = stats.ranking(run.trials, run.ber, run.axes)
    inter = effects.interactions_table(run.trials, run.axes)
    result = Statistics(
        ranking=ranked,
        best=stats.best_vs_runner_up(run.trials, ranked, run.axes),
        effects=effects.effects_table(run.trials, run.axes),
        interactions=inter,
        conditional_best=effects.conditional_best(run.trials, inter),
        biasvar=bias_variance(run),
    )
    confirm_against_parent(run, result)
    if write:
        write_statistics(run.path, result)
    return result


def write_statistics(out: Path, result: Statistics) -> None:
    meta = table_metadata(out)
    write_parquet(result.effects, out / "effects.parquet", meta)
    write_parquet(result.interactions, out / "interactions.parquet", meta)
    write_parquet(result.biasvar, out / "bias_variance.parquet", meta)


def build_all(out: Path) -> Tables:
    """Collect the run's tables and write its statistics (``symgrid run`` and ``resume``)."""
    out = Path(out)
    tables = build_tables(out)
    if not tables.trials.empty:
        analyze(Run(out, read_json(out / "run.json"), "", tables, rebuilt=True))
    return tables
