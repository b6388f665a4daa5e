"""What a finished run found, in a few lines: the closing summary of ``symgrid run`` and ``resume``.

Read from the tables the run wrote (``trials.parquet`` for the counts, ``ranking.parquet``, the
ranking ``analysis.derive`` computed, for the best setting and its interval): nothing here
computes statistics. No Ray: the Python API returns the same :class:`RunResult`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from symgrid.analysis.merit import merit

__all__ = ["RunResult", "run_result", "conclude"]


@dataclass(frozen=True)
class RunResult:
    """A run's outcome: trial counts, the best setting and its score, where the report is."""

    out: str  # the run folder
    total: int  # trials in the plan
    completed: int
    diverged: int
    failed: int
    best: str | None = None  # the best setting's label ("scheduler=step, model.hidden=[8]")
    metric: str = "ber_ratio_map"  # the figure of merit the run was ranked by
    score: float | None = None  # the best setting's score on it (geometric-mean ratio, or gap)
    ci_low: float | None = None  # its 95 % interval
    ci_high: float | None = None
    interval: str = ""  # how the interval was made ("t over 3 seeds")
    report: str | None = None  # index.html, or None when not written

    @property
    def not_run(self) -> int:
        return self.total - self.completed - self.diverged - self.failed

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The closing lines a person reads (figures rounded; the tables keep full precision)."""
        counts = f"{self.completed} completed, {self.diverged} diverged, {self.failed} failed"
        text = [f"trials: {counts}" + (f", {self.not_run} not run" if self.not_run else "")]
        if self.best is None:
            text.append("best setting: none (no trial completed)")
        else:
            text.append(f"best setting: {self.best}")
            m, d = merit(self.metric), merit(self.metric).digits
            score = f"{m.label} {self.score:.{d}f}"
            if self.ci_low is not None and math.isfinite(self.ci_low):
                score += f", 95 % interval {self.ci_low:.{d}f} to {self.ci_high:.{d}f}"
            interval = self.interval or "no interval"
            text.append(f"  {score} ({interval}; {m.optimal:g} = optimal)")
        text.append(f"report: {self.report}" if self.report else "report: not written")
        return text


def run_result(out: Path, report: Path | None) -> RunResult:
    """The outcome of the run in ``out``, from its tables (written by ``grid.run.collect_run``)."""
    out = Path(out)
    trials = pd.read_parquet(out / "trials.parquet", columns=["status"])
    total = int(json.loads((out / "run.json").read_text())["trials"])
    status = trials["status"].value_counts()
    counts = {k: int(status.get(k, 0)) for k in ("completed", "diverged", "failed")}
    best = {}
    statistics = out / "statistics.json"
    if statistics.exists():
        best["metric"] = json.loads(statistics.read_text()).get("metric", "ber_ratio_map")
    ranking_path = out / "ranking.parquet"
    if ranking_path.exists():
        ranking = pd.read_parquet(ranking_path)
        if len(ranking):
            top = ranking.iloc[0]
            best |= {
                "best": str(top["setting"]),
                "score": float(top["score"]),
                "ci_low": float(top["ci_low"]),
                "ci_high": float(top["ci_high"]),
                "interval": str(top.get("interval", "")),
            }
    return RunResult(str(out), total, **counts, **best, report=str(report) if report else None)


def conclude(out: Path, code: int, skip_report: bool) -> tuple[RunResult | None, int]:
    """Write the run's report (unless ``skip_report``) and read its result, after its trials ran.

    Returns the result (None when its tables cannot be read) and the exit code: a report or
    table problem is one line on stderr saying how to rebuild them, and never hides the run's
    own code (a nonzero one is kept; 0 becomes 1).
    """
    out = Path(out)
    report, code = final_report(out, code, skip_report)
    try:
        return run_result(out, report), code
    except (OSError, ValueError, KeyError) as err:
        print(
            f"symgrid: the run's tables are not readable ({err}); `symgrid report {out}` rebuilds"
            " them",
            file=sys.stderr,
        )
        return None, code or 1


def final_report(out: Path, code: int, skip: bool) -> tuple[Path | None, int]:
    """Write the run's report unless ``skip``; returns its path (None: not written) and the code."""
    if skip:
        return None, code
    from symgrid.analysis.report import ReportError, write_report

    try:
        return write_report([out]), code
    except ReportError as err:
        print(f"symgrid: report not written: {err}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - the trials are safe; say how to get the report
        print(
            f"symgrid: report not written ({type(err).__name__}: {err}); `symgrid report {out}`"
            " rebuilds the tables and the report",
            file=sys.stderr,
        )
    return None, code or 1
