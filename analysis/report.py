"""The comparison report: ``index.html`` (self-contained), ``summary.md`` and the PNG figures.

``write_report([DIR, ...], out)`` reads each run folder's Parquet tables (or, when they are
missing or stale, its trial folders), ranks the settings (``analysis.stats``), draws the figures
(``analysis.plots``) and writes them to ``out`` (default ``DIR/report`` for one run). It works on
partial runs and says what is missing; an empty or unreadable run is a one-line
:class:`ReportError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from analysis import biasvar, collect, plots, render, stats
from trainables.records import BER_COLUMNS, EPOCH_COLUMNS

GAP_PAIRS = [("scheduler", "loss"), ("loss", "regularization")]  # the heatmaps


class ReportError(RuntimeError):
    """A run the report cannot read (one line, exit code 2 from the CLI)."""


@dataclass
class Run:
    path: Path
    info: dict
    spec_text: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    ber: pd.DataFrame
    biasvar: pd.DataFrame
    unfinished: list[str] = field(default_factory=list)  # trial folders without trial.json

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.path.name)

    @property
    def axes(self) -> list[str]:
        return [
            a
            for a in self.info.get("axes") or biasvar.axis_columns(self.trials)
            if a in self.trials
        ]


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file, or a ReportError naming it when it is unreadable."""
    if not path.exists():
        return pd.DataFrame(columns=columns or [])
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ReportError(f"{path}: unreadable Parquet file ({one_line(err)})") from err


def one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def load_run(path: Path) -> Run:
    """Read a run folder; prefer its tables, re-collect from trial folders when they are stale."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such run folder")
    info = read_json(path / "run.json")
    records = [read_json(p) for p in sorted((path / "trials").glob("*/trial.json"))]
    trials = read_table(path / "trials.parquet")
    tables = [path / f"{name}.parquet" for name in ("trials", "epochs", "ber")]
    stale = len(records) != len(trials) or not all(t.exists() for t in tables)
    if records and stale:  # an interrupted run, tables not built yet, or one of them lost
        trials = collect.trials_frame(records)
        epochs = collect.read_parquets(path, "epochs.parquet", EPOCH_COLUMNS, read_table)
        ber = collect.read_parquets(path, "ber.parquet", BER_COLUMNS, read_table)
        table = biasvar.bias_variance_table(
            trials, biasvar.read_predictions(path, trials["trial_id"])
        )
    else:
        epochs = read_table(path / "epochs.parquet", EPOCH_COLUMNS)
        ber = read_table(path / "ber.parquet", BER_COLUMNS)
        table = read_table(path / "bias_variance.parquet")
    if trials.empty:
        raise ReportError(f"{path}: no trials (no trials.parquet rows and no trials/*/trial.json)")
    spec = path / "spec.yaml"
    unfinished = sorted(
        p.name for p in (path / "trials").glob("*") if not (p / "trial.json").exists()
    )
    return Run(
        path,
        info,
        spec.read_text() if spec.exists() else "",
        trials,
        epochs,
        ber,
        table,
        unfinished,
    )


def read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"{path}: unreadable JSON ({one_line(err)})") from err


def make_figures(run: Run, out: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """Every figure the run's data supports: (title, PNG path)."""
    axes, sci = run.axes, plots.scientific_axes(run.axes)
    f = lambda name: out / f"{prefix}{name}.png"  # noqa: E731
    reg = "regularization" if "regularization" in axes else None
    pairs = [p for p in GAP_PAIRS if set(p) <= set(axes)]
    if not pairs and len(sci) >= 2:  # neither pair was varied: the first two scientific axes
        pairs = [(sci[0], sci[1])]
    safe = lambda a: a.replace(".", "_")  # noqa: E731
    made = [
        (f"BER vs Eb/N0 by {a}", plots.ber_vs_ebno(run.trials, run.ber, a, f(f"ber_{safe(a)}")))
        for a in sci
    ]
    made += [
        (
            f"Gap to optimal: {r} x {c}",
            plots.gap_heatmap(run.trials, axes, r, c, f(f"gap_{safe(r)}_{safe(c)}")),
        )
        for r, c in pairs
    ]
    made += [
        (
            "Overfitting: training vs validation",
            plots.overfitting_curves(run.trials, run.epochs, reg, f("overfitting")),
        ),
        (
            "Generalization gap and early stopping",
            plots.generalization_gap(run.trials, run.epochs, reg, f("gap_epochs")),
        ),
        (
            "Bias-variance vs model capacity",
            plots.bias_variance(run.biasvar, "num_params", f("biasvar_params")),
        ),
        (
            "Bias-variance vs training-set size",
            plots.bias_variance(run.biasvar, "train.symbols", f("biasvar_symbols")),
        ),
        ("Learning rate per epoch", plots.lr_schedules(run.trials, run.epochs, f("lr"))),
    ]
    return [(title, path) for title, path in made if path is not None]


@dataclass
class Section:
    """One run's report content, shared by the HTML and Markdown writers."""

    run: Run
    ranking: pd.DataFrame
    best: str
    counts: dict
    wall: str
    missing: list[str]
    problems: pd.DataFrame
    figures: list[tuple[str, Path]]


def summarize(run: Run, out: Path, prefix: str) -> Section:
    table = stats.ranking(run.trials, run.ber, run.axes)
    best = stats.best_sentence(stats.best_vs_runner_up(run.trials, run.ber, table, run.axes), table)
    counts = run.trials["status"].value_counts().to_dict()
    bad = run.trials[run.trials["status"] != "completed"]
    problems = bad[["trial_id", "status", *run.axes, "error"]].fillna("") if "error" in bad else bad
    return Section(
        run,
        table,
        best,
        counts,
        wall_time(run),
        missing(run),
        problems,
        make_figures(run, out, prefix),
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


def write_report(dirs: list[Path], out: Path | None = None) -> Path:
    """Write ``index.html``, ``summary.md`` and the figures for one or several runs.

    Parameters
    ----------
    dirs : run folders (``symgrid run --out DIR``); several are compared over their shared axes
    out : the report folder; default ``DIR/report`` for one run, required for several

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
    out.mkdir(parents=True, exist_ok=True)
    # Everything is drawn into a staging folder, then each file is renamed into place (index.html
    # last): a crash or a full disk never leaves a half-written page or figure in the report.
    with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
        staging = Path(tmp)
        prefixes = [f"run{i + 1}_" if len(runs) > 1 else "" for i in range(len(runs))]
        sections = [summarize(r, staging, p) for r, p in zip(runs, prefixes, strict=True)]
        names = unique_names(runs)
        compared = plots.compare_runs(
            {n: (r.trials, r.axes) for n, r in zip(names, runs, strict=True)},
            staging / "compare.png",
        )
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
